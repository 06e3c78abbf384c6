/**
 * Project commands of `maskloop`: init, status, models, pretrain, train, prelabel. The work itself
 * is in src/jobs/workflows, which the app's job process runs too.
 */
import path from 'node:path';
import { pretextTask, pretextTaskNames } from '../engine/pretext/registry';
import { MAX_BUDGET_SECONDS, TRAINING } from '../shared/training';
import { DEFAULT_PRETEXT_TASKS } from '../shared/types';
import { prelabel } from '../jobs/workflows/prelabel';
import { pretrainEncoder } from '../jobs/workflows/pretrainEncoder';
import { trainModel } from '../jobs/workflows/trainModel';
import { createProject, type Project } from '../store';
import { EXIT, UsageError, intOption, numberOption, type Command, type CommandContext } from './command';
import { createReporter } from './progress';
import { PROJECT_OPTION, openFromOptions, parseTargetOption, resolveShard } from './projectData';

function out(json: boolean, text: string, value: unknown): void {
  console.log(json ? JSON.stringify(value) : text);
}

async function withProject<T>(values: CommandContext['values'], fn: (p: Project) => Promise<T>): Promise<T> {
  const project = openFromOptions(values);
  try {
    for (const run of project.interruptedRuns) console.error(`maskloop: run ${run.id} (${run.kind}) was interrupted; it can be resumed`);
    return await fn(project);
  } finally {
    project.close();
  }
}

export const initCommand: Command = {
  name: 'init',
  summary: 'create a project folder (project.sqlite + cache/)',
  usage: 'init [dir] [--name <name>]',
  options: { name: { type: 'string', description: 'project name (default: the folder name)', valueName: 'name' } },
  async run({ positionals, values, json }) {
    const dir = path.resolve(positionals[0] ?? '.');
    const project = createProject(dir, { name: String(values.name ?? path.basename(dir)) });
    out(json, `created project '${project.info.name}' in ${dir}`, { event: 'created', dir, ...project.info });
    project.close();
  },
};

export const statusCommand: Command = {
  name: 'status',
  summary: 'images by status and split, labels, models, runs',
  usage: 'status [--verify [--search <dir>]] [--project <dir>]',
  options: {
    ...PROJECT_OPTION,
    verify: { type: 'boolean', description: 'check every image file: missing, changed (content hash), moved, duplicates' },
    search: { type: 'string', description: 'with --verify: folder to look for moved files in', valueName: 'dir' },
  },
  async run({ values, json }) {
    await withProject(values, async (project) => {
      if (values.verify) {
        const report = await project.verifyImages({ searchDir: typeof values.search === 'string' ? path.resolve(values.search) : undefined });
        const brief = {
          checked: report.checked, ok: report.ok,
          missing: report.missing.map((im) => im.path),
          changed: report.changed.map((c) => c.image.path),
          moved: report.moved.map((m) => ({ from: m.image.path, to: m.newPath })),
          duplicates: report.duplicates.map((d) => d.images.map((im) => im.path)),
        };
        if (json) console.log(JSON.stringify({ event: 'verified', ...brief }));
        else {
          console.log(`${brief.checked} image file(s) checked, ${brief.ok} ok`);
          for (const m of brief.missing) console.log(`missing: ${m}`);
          for (const c of brief.changed) console.log(`changed since import: ${c}`);
          for (const m of brief.moved) console.log(`moved: ${m.from} -> ${m.to}`);
          for (const d of brief.duplicates) console.log(`duplicates: ${d.join(', ')}`);
        }
        return;
      }
      const counts = project.countImages();
      const promoted = project.promotedModel();
      const runs = project.listRuns({ limit: 5 });
      const summary = { project: project.info, images: counts, promotedModel: promoted, models: project.listModels().length, recentRuns: runs, annotation: project.annotationSummary() };
      if (json) return console.log(JSON.stringify(summary));
      console.log(`project '${project.info.name}' (${project.dir})`);
      console.log(`images: ${counts.total} — ${Object.entries(counts.byStatus).map(([k, v]) => `${v} ${k}`).join(', ')}`);
      console.log(`splits: ${Object.entries(counts.bySplit).map(([k, v]) => `${v} ${k}`).join(', ')}`);
      console.log(`models: ${summary.models}; promoted: ${promoted ? `#${promoted.id} (${promoted.pretextInit ?? 'scratch'}, val ${JSON.stringify(promoted.valMetrics)})` : 'none'}`);
      for (const r of runs) console.log(`run #${r.id} ${r.kind} ${r.status} ${r.step}/${r.total ?? '?'}${r.message ? ` — ${r.message}` : ''}`);
    });
  },
};

export const modelsCommand: Command = {
  name: 'models',
  summary: 'list models, promote one, or roll back to the previously promoted one',
  usage: 'models [list | promote <id> | rollback] [--project <dir>]',
  options: { ...PROJECT_OPTION },
  async run({ values, positionals, json }) {
    const [action = 'list', id] = positionals;
    await withProject(values, async (project) => {
      if (action === 'list') {
        const models = project.listModels();
        if (json) return console.log(JSON.stringify(models));
        for (const m of models) {
          console.log(`${m.promoted ? '*' : ' '} #${m.id} ${m.kind.padEnd(12)} init ${String(m.pretextInit ?? 'scratch').padEnd(12)} val ${JSON.stringify(m.valMetrics ?? {})} parent ${m.parentId ?? '-'}`);
        }
      } else if (action === 'promote') {
        if (!id || !/^\d+$/.test(id)) throw new UsageError('models promote needs a model id');
        const m = project.promoteModel(Number(id), { reason: 'promoted by hand' });
        out(json, `promoted model #${m.id}`, { event: 'promoted', model: m });
      } else if (action === 'rollback') {
        const m = project.rollbackModel();
        out(json, `rolled back: model #${m.id} is promoted again`, { event: 'rolled-back', model: m });
      } else {
        throw new UsageError(`unknown models action '${action}' (list, promote, rollback)`);
      }
    });
  },
};

export const pretrainCommand: Command = {
  name: 'pretrain',
  summary: "self-supervised pretraining of the encoder on the project's images (labels unused)",
  usage: 'pretrain [--tasks inpainting[+contrastive…]] [--budget s | --steps n] [--probe s] [--resume] [--project <dir>]',
  options: {
    ...PROJECT_OPTION,
    tasks: { type: 'string', default: DEFAULT_PRETEXT_TASKS.join('+'), description: `pretext tasks joined by + (${pretextTaskNames().join(', ')})`, valueName: 'tasks' },
    budget: { type: 'string', description: `wall-clock seconds to pretrain for (default ${TRAINING.pretrainSeconds} unless --steps is given; with --steps, whichever ends first)`, valueName: 's' },
    steps: { type: 'string', description: 'training steps (batch 8, 128x128 crops) instead of a time budget', valueName: 'n' },
    'max-images': { type: 'string', default: String(TRAINING.pretrainMaxImages), description: 'images held in memory at once; a project with more streams them through, a quarter of them every ' + TRAINING.pretrainTurnoverSteps + ' steps', valueName: 'n' },
    'learning-rate': { type: 'string', default: String(TRAINING.pretrainLearningRate), description: 'learning rate', valueName: 'lr' },
    resume: { type: 'boolean', description: 'continue the last interrupted or cancelled pretraining run' },
    probe: { type: 'string', default: String(TRAINING.pretrainProbeSeconds), description: 'seconds of a quick fine-tune from scratch and from the new weights, scored on val, that says what the pretraining is worth (0: none)', valueName: 's' },
  },
  async run({ values, json, signal }) {
    const tasks = String(values.tasks).split('+');
    tasks.forEach(pretextTask);
    return withProject(values, async (project) => {
      const report = createReporter({ json });
      const result = await pretrainEncoder(
        project,
        {
          tasks, budgetSeconds: optionalBudget(values), steps: values.steps === undefined ? undefined : intOption(values, 'steps'),
          maxImages: intOption(values, 'max-images'), learningRate: numberOption(values, 'learning-rate'), resume: Boolean(values.resume),
          probeSeconds: intOption(values, 'probe', 0),
        },
        { signal, logBackend: !json, onProgress: (p) => report.training(p) },
      );
      if (result.status === 'cancelled') return EXIT.cancelled;
      out(json, result.message, { event: 'pretrained', modelId: result.modelId, checkpoint: result.checkpoint, finalLoss: result.finalLoss, imagesSeen: result.imagesSeen, imagesUnreadable: result.imagesUnreadable, ...(result.probe ? { probe: result.probe } : {}) });
    });
  },
};

export const trainCommand: Command = {
  name: 'train',
  summary: 'fine-tune on all current labels; promote the new model only if it beats the promoted one on val',
  usage: 'train [--budget s | --steps n] [--fresh] [--semi] [--target semantic|semantic:K|instance] [--auto [--after n]] [--resume] [--project <dir>]',
  options: {
    ...PROJECT_OPTION,
    budget: { type: 'string', description: `wall-clock seconds for the whole run (default ${TRAINING.firstModelSeconds} for a first model, ${TRAINING.retrainSeconds} when continuing the promoted one)`, valueName: 's' },
    steps: { type: 'string', description: 'fine-tuning steps per candidate initialisation, instead of a time budget', valueName: 'n' },
    fresh: { type: 'boolean', description: 'choose the initialisation again (scratch and each pretext checkpoint) instead of continuing the promoted model' },
    semi: { type: 'boolean', description: "also try consistency training on the project's unlabeled images as a candidate (off by default: it measured worse within the budget)" },
    target: { type: 'string', default: 'semantic', description: "'semantic', 'semantic:K' (K classes) or 'instance'", valueName: 'kind' },
    'learning-rate': { type: 'string', default: String(TRAINING.learningRate), description: 'learning rate', valueName: 'lr' },
    auto: { type: 'boolean', description: "train only if enough new labels arrived since the last training (project setting 'autoRetrainAfterLabels' or --after)" },
    after: { type: 'string', description: 'with --auto: new labels needed', valueName: 'n' },
    resume: { type: 'boolean', description: 'continue the last interrupted, cancelled or failed training from its checkpoints' },
  },
  async run({ values, json, signal }) {
    const target = parseTargetOption(values.target);
    const steps = values.steps === undefined ? undefined : intOption(values, 'steps');
    const budgetSeconds = optionalBudget(values);
    const learningRate = numberOption(values, 'learning-rate');
    const after = values.auto && values.after !== undefined ? intOption(values, 'after') : undefined;
    return withProject(values, async (project) => {
      const report = createReporter({ json });
      const result = await trainModel(
        project,
        { steps, budgetSeconds, target, learningRate, warmStart: !values.fresh, semiSupervised: Boolean(values.semi), when: values.auto ? 'ifDue' : 'now', after, resume: Boolean(values.resume) },
        { signal, logBackend: !json, onProgress: (p) => report.training(p) },
      );
      if (result.status === 'skipped') {
        out(json, `not retraining: ${result.newLabels} new label(s), ${result.needed || 'no'} needed`, { event: 'skipped', newLabels: result.newLabels, needed: result.needed });
        return;
      }
      if (result.status === 'cancelled') return EXIT.cancelled;
      out(json, result.message, {
        event: 'trained', modelId: result.modelId, init: result.init, valDice: result.valDice, incumbentId: result.incumbentId, incumbentDice: result.incumbentDice,
        ...(result.valF1 !== null ? { valF1: result.valF1, incumbentF1: result.incumbentF1 } : {}),
        promoted: result.promoted, decision: result.decision, trainImages: result.trainImages, valImages: result.valImages, candidates: result.candidates, steps: result.steps, ...(result.semiSteps !== null ? { semiSteps: result.semiSteps } : {}),
        ...(result.plan ? { budgetSeconds: result.plan.budgetSeconds, secondsPerStep: result.plan.secondsPerStep } : {}),
      });
    });
  },
};

export const prelabelCommand: Command = {
  name: 'prelabel',
  summary: 'write masks for every image of a folder (or the project) with the promoted model; resumable and shardable',
  usage: 'prelabel [folder] [--out <dir>] [--shard i/N] [--project <dir>]',
  options: {
    ...PROJECT_OPTION,
    out: { type: 'string', description: 'folder for the masks (default: <folder>-masks); without a folder argument, proposals go into the project', valueName: 'dir' },
    shard: { type: 'string', description: 'this machine does shard i of N (else SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX with MASKLOOP_SHARD_COUNT)', valueName: 'i/N' },
    tile: { type: 'string', description: 'tile size (default: whole image up to 1024 px, else 512)', valueName: 'px' },
  },
  async run({ values, positionals, json, signal }) {
    const shard = resolveShard(values.shard);
    const tile = values.tile === undefined ? undefined : intOption(values, 'tile');
    return withProject(values, async (project) => {
      const report = createReporter({ json });
      const folder = positionals[0] ? path.resolve(positionals[0]) : null;
      const result = await prelabel(
        project,
        { folder, out: folder && typeof values.out === 'string' ? values.out : null, shard, tile },
        { signal, logBackend: !json, onProgress: (p) => report.training(p), onMessage: (text, fields) => report.message(text, fields) },
      );
      report.done();
      const summary = { event: 'prelabeled', images: result.images, skipped: result.skipped, failed: result.failed, megapixelsPerSecond: result.megapixelsPerSecond, seconds: result.seconds };
      out(json, `prelabeled ${summary.images} image(s) (${summary.skipped} already done${result.failed.length ? `, ${result.failed.length} without a mask: see above` : ''}), ${summary.megapixelsPerSecond.toFixed(2)} MP/s`, summary);
      return result.status === 'cancelled' ? EXIT.cancelled : EXIT.ok;
    });
  },
};

/** --budget in seconds, or undefined when not given. */
function optionalBudget(values: CommandContext['values']): number | undefined {
  if (values.budget === undefined) return undefined;
  const seconds = numberOption(values, 'budget');
  if (!(seconds > 0) || seconds > MAX_BUDGET_SECONDS) throw new UsageError(`--budget must be between 0 and ${MAX_BUDGET_SECONDS} seconds, got ${values.budget}`);
  return seconds;
}
