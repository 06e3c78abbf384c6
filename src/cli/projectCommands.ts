/** Project commands of `maskloop`: init, status, models, pretrain, train, prelabel. */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../engine/backend';
import { propose } from '../engine/infer/propose';
import { pretextTask, pretextTaskNames } from '../engine/pretext/registry';
import { loadSegmentationModel, saveSegmentationModel, type Initialisation } from '../engine/train/finetune';
import { loadPretextWeights, pretrain } from '../engine/train/pretrain';
import { evaluateDice, selectInitialisation } from '../engine/train/select';
import { writeLabelImage } from '../imaging/export';
import { fileSource } from '../imaging/region';
import { createProject, type JsonObject, type Project } from '../store';
import { EXIT, UsageError, intOption, numberOption, type Command, type CommandContext } from './command';
import { createReporter } from './progress';
import { PROJECT_OPTION, inShard, loadImage, loadLabeled, openFromOptions, parseTarget, resolveShard } from './projectData';

const ARCH = { depth: 4, baseFilters: 16 };

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
  usage: 'pretrain [--tasks inpainting[+contrastive…]] [--steps n] [--resume] [--project <dir>]',
  options: {
    ...PROJECT_OPTION,
    tasks: { type: 'string', default: 'inpainting', description: `pretext tasks joined by + (${pretextTaskNames().join(', ')})`, valueName: 'tasks' },
    steps: { type: 'string', default: '1000', description: 'training steps (batch 8, 128x128 crops)', valueName: 'n' },
    'max-images': { type: 'string', default: '256', description: 'images held in memory for sampling crops', valueName: 'n' },
    'learning-rate': { type: 'string', default: '0.001', description: 'learning rate', valueName: 'lr' },
    resume: { type: 'boolean', description: 'continue the last interrupted or cancelled pretraining run' },
  },
  async run({ values, json, signal }) {
    const tasks = String(values.tasks).split('+');
    tasks.forEach(pretextTask);
    return withProject(values, async (project) => {
      const report = createReporter({ json });
      await initEngine({ log: !json });
      const records = project.listImages({ limit: intOption(values, 'max-images') });
      if (records.length === 0) throw new Error('the project has no images: run maskloop import first');
      const previous = values.resume ? project.listRuns({ kind: 'pretrain' }).find((r) => r.status !== 'completed' && r.config.tasks === tasks.join('+')) : undefined;
      const checkpoint = previous ? String(previous.config.checkpoint) : project.cachePath('checkpoints', `pretext-${Date.now()}.mlckpt`);
      const run = project.startRun({ kind: 'pretrain', config: { tasks: tasks.join('+'), checkpoint, resumes: previous?.id ?? null }, total: intOption(values, 'steps') });
      try {
        const images = [];
        for (const r of records) images.push(await loadImage(r));
        const result = await pretrain({
          tasks, images, config: ARCH, steps: intOption(values, 'steps'), learningRate: numberOption(values, 'learning-rate'),
          checkpointFile: checkpoint, checkpointEvery: 50, resume: Boolean(previous), signal, progressEvery: 5,
          onProgress: (p) => {
            report.training(p);
            project.updateRunProgress(run.id, { step: p.step });
          },
        });
        result.model.dispose();
        if (result.status === 'cancelled') {
          project.finishRun(run.id, { status: 'cancelled', message: `stopped at step ${result.stepsDone}; resume with --resume` });
          return EXIT.cancelled;
        }
        const model = project.addModel({ kind: 'pretext', checkpointPath: checkpoint, pretextInit: tasks.join('+'), config: { ...ARCH, tasks: tasks.join('+') } });
        project.finishRun(run.id, { status: 'completed', modelId: model.id, message: `final loss ${result.losses.at(-1)?.toFixed(4)}` });
        out(json, `pretext checkpoint saved as model #${model.id}`, { event: 'pretrained', modelId: model.id, checkpoint });
      } catch (err) {
        project.finishRun(run.id, { status: 'failed', message: (err as Error).message });
        throw err;
      }
    });
  },
};

/** Assigns roughly a fifth of the labeled, unassigned images to val so promotion has something to judge by. */
function ensureValidationSplit(project: Project): void {
  const labeled = project.labeledImages({ split: ['unassigned', 'train', 'val'] }).map((l) => l.image);
  if (labeled.some((im) => im.split === 'val') || labeled.length < 2) return;
  const unassigned = labeled.filter((im) => im.split === 'unassigned').sort((a, b) => a.contentHash.localeCompare(b.contentHash));
  const val = unassigned.filter((_, i) => i % 5 === 0).map((im) => im.id);
  if (val.length) project.setImageSplit(val, 'val');
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'fine-tune on all current labels; promote the new model only if it beats the promoted one on val',
  usage: 'train [--steps n] [--target semantic|semantic:K|instance] [--auto [--after n]] [--project <dir>]',
  options: {
    ...PROJECT_OPTION,
    steps: { type: 'string', default: '600', description: 'fine-tuning steps per candidate initialisation', valueName: 'n' },
    target: { type: 'string', default: 'semantic', description: "'semantic', 'semantic:K' (K classes) or 'instance'", valueName: 'kind' },
    'learning-rate': { type: 'string', default: '0.002', description: 'learning rate', valueName: 'lr' },
    auto: { type: 'boolean', description: "train only if enough new labels arrived since the last training (project setting 'autoRetrainAfterLabels' or --after)" },
    after: { type: 'string', description: 'with --auto: new labels needed', valueName: 'n' },
  },
  async run({ values, json, signal }) {
    const target = parseTarget(values.target);
    const steps = intOption(values, 'steps');
    const learningRate = numberOption(values, 'learning-rate');
    return withProject(values, async (project) => {
      if (values.auto) {
        const needed = values.after !== undefined ? intOption(values, 'after') : project.getSetting('autoRetrainAfterLabels');
        const last = project.listRuns({ kind: 'train', status: 'completed', limit: 1 })[0];
        const fresh = project.countLabelVersionsSince(last?.startedAt ?? 0);
        if (needed === 0 || fresh < needed) {
          out(json, `not retraining: ${fresh} new label(s), ${needed || 'no'} needed`, { event: 'skipped', newLabels: fresh, needed });
          return;
        }
      }
      ensureValidationSplit(project);
      const report = createReporter({ json });
      await initEngine({ log: !json });
      const train = await loadLabeled(project, ['train', 'unassigned'], target);
      const val = await loadLabeled(project, ['val'], target);
      if (train.images.length === 0) throw new Error('no labeled training images: label some, or import labels (maskloop labels import)');
      if (val.images.length === 0) throw new Error('no labeled images in the val split to judge a model by (maskloop needs at least 2 labeled images)');
      const run = project.startRun({ kind: 'train', config: { target: JSON.stringify(target), steps, train: train.images.length, val: val.images.length } });
      try {
        // Candidates: scratch and the latest pretext checkpoint of each task combination.
        const candidates: Initialisation[] = [{ name: 'scratch' }];
        const seen = new Set<string>();
        const loaded: Array<Map<string, tf.Tensor>> = [];
        for (const m of project.listModels({ kind: 'pretext' }).sort((a, b) => b.createdAt - a.createdAt)) {
          if (!m.pretextInit || seen.has(m.pretextInit) || !fs.existsSync(m.absoluteCheckpointPath)) continue;
          seen.add(m.pretextInit);
          const { meta, weights } = loadPretextWeights(m.absoluteCheckpointPath);
          loaded.push(weights);
          candidates.push({ name: m.pretextInit, weights, trained: meta.trained });
        }
        const selection = await selectInitialisation(
          candidates,
          { images: train.images, target, config: ARCH, steps, learningRate, signal, progressEvery: 5, onProgress: (p) => report.training(p) },
          val.images,
        );
        loaded.forEach((w) => tf.dispose([...w.values()]));
        const { best, bestName, scores } = selection;
        if (signal.aborted) {
          best.model.dispose();
          project.finishRun(run.id, { status: 'cancelled', message: 'cancelled; nothing saved' });
          return EXIT.cancelled;
        }
        const valDice = scores.find((s) => s.name === bestName)?.valDice ?? 0;
        const file = project.cachePath('checkpoints', `model-run${run.id}.mlckpt`);
        await saveSegmentationModel(file, best.model, best.meta);
        best.model.dispose();
        const promoted = project.promotedModel();
        // The promoted model is re-scored on today's val split: the split may have grown since.
        let incumbent: number | null = null;
        if (promoted && fs.existsSync(promoted.absoluteCheckpointPath)) {
          const old = loadSegmentationModel(promoted.absoluteCheckpointPath);
          incumbent = JSON.stringify(old.meta.target) === JSON.stringify(target) ? evaluateDice(old.model, val.images) : null;
          old.model.dispose();
        }
        const metrics: JsonObject = { dice: valDice, valImages: val.images.length, candidates: scores.map((s) => ({ name: s.name, dice: s.valDice })) };
        const model = project.addModel({ kind: 'segmentation', checkpointPath: file, parentId: promoted?.id ?? null, pretextInit: bestName === 'scratch' ? null : bestName, config: { ...ARCH, target: JSON.stringify(target) }, valMetrics: metrics });
        const better = incumbent === null || valDice > incumbent;
        if (better) project.promoteModel(model.id, { reason: `val Dice ${valDice.toFixed(4)} vs ${incumbent === null ? 'none' : incumbent.toFixed(4)}` });
        const message = `model #${model.id} (${bestName}): val Dice ${valDice.toFixed(4)}${incumbent === null ? '' : ` vs promoted ${incumbent.toFixed(4)}`} — ${better ? 'promoted' : 'kept for comparison, not promoted'}`;
        project.finishRun(run.id, { status: 'completed', modelId: model.id, message });
        out(json, message, { event: 'trained', modelId: model.id, init: bestName, valDice, incumbentDice: incumbent, promoted: better, candidates: scores });
      } catch (err) {
        project.finishRun(run.id, { status: 'failed', message: (err as Error).message });
        throw err;
      }
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
    return withProject(values, async (project) => {
      const promoted = project.promotedModel();
      if (!promoted) throw new Error('no promoted model: run maskloop train first');
      await initEngine({ log: !json });
      const { model, meta } = loadSegmentationModel(promoted.absoluteCheckpointPath);
      const report = createReporter({ json });
      const folder = positionals[0] ? path.resolve(positionals[0]) : null;
      const outDir = folder ? path.resolve(String(values.out ?? `${folder}-masks`)) : null;
      type Item = { key: string; file: string; imageId?: number };
      let items: Item[];
      if (folder) {
        const { scanFolder } = await import('../imaging/import');
        items = [];
        for await (const e of scanFolder(folder)) if (e.kind === 'image') items.push({ key: path.relative(folder, e.path), file: e.path });
      } else {
        items = project.listImages().map((im) => ({ key: im.path, file: im.absolutePath, imageId: im.id }));
      }
      items = items.filter((it) => inShard(it.key, shard)).sort((a, b) => a.key.localeCompare(b.key));
      const maskPath = (it: Item) => path.join(outDir as string, it.key.replace(/\.[^./\\]+$/, '') + '.png');
      const done = (it: Item) => (outDir ? fs.existsSync(maskPath(it)) : project.listPredictions(it.imageId as number).some((p) => p.modelId === promoted.id));
      const todo = items.filter((it) => !done(it));
      const run = project.startRun({ kind: 'prelabel', config: { folder, out: outDir, shard: `${shard.index}/${shard.count}`, modelId: promoted.id }, total: todo.length });
      const t0 = performance.now();
      let megapixels = 0;
      try {
        for (const [i, it] of todo.entries()) {
          if (signal.aborted) break;
          const source = await fileSource(it.file);
          let proposal;
          try {
            proposal = propose(model, meta.target, source, { tile: values.tile === undefined ? undefined : intOption(values, 'tile'), keepUncertainty: !outDir });
          } finally {
            source.close();
          }
          const mask = proposal.mask;
          if (outDir) {
            const file = maskPath(it);
            fs.mkdirSync(path.dirname(file), { recursive: true });
            // Written beside its final name and renamed: a crash leaves no half mask that a re-run would skip.
            const tmp = `${file}.tmp-${process.pid}.png`;
            await writeLabelImage(tmp, { width: source.width, height: source.height, data: mask instanceof Int32Array ? mask : Uint16Array.from(mask) });
            fs.renameSync(tmp, file);
          } else {
            const uncertainty = { width: source.width, height: source.height, data: proposal.uncertainty as Float32Array };
            project.addPrediction({ imageId: it.imageId as number, modelId: promoted.id, mask: { width: source.width, height: source.height, data: mask }, uncertainty, uncertaintyScore: proposal.score });
          }
          megapixels += (source.width * source.height) / 1e6;
          project.updateRunProgress(run.id, { step: i + 1 });
          const elapsed = (performance.now() - t0) / 1000;
          report.training({ phase: 'prelabel', step: i + 1, totalSteps: todo.length, loss: proposal.score, smoothedLoss: proposal.score, imagesPerSecond: (i + 1) / elapsed, etaSeconds: (elapsed / (i + 1)) * (todo.length - i - 1), elapsedSeconds: elapsed });
        }
        const seconds = (performance.now() - t0) / 1000;
        const summary = { event: 'prelabeled', images: todo.length, skipped: items.length - todo.length, megapixelsPerSecond: megapixels / Math.max(seconds, 1e-9), seconds };
        project.finishRun(run.id, { status: signal.aborted ? 'cancelled' : 'completed', message: JSON.stringify(summary) });
        report.done();
        out(json, `prelabeled ${todo.length} image(s) (${summary.skipped} already done), ${summary.megapixelsPerSecond.toFixed(2)} MP/s`, summary);
      } catch (err) {
        project.finishRun(run.id, { status: 'failed', message: (err as Error).message });
        throw err;
      } finally {
        model.dispose();
      }
      return signal.aborted ? EXIT.cancelled : EXIT.ok;
    });
  },
};

