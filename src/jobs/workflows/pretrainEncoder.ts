/** Pretrain: self-supervised training of the encoder on the project's images (labels unused), resumable. */
import { initEngine } from '../../engine/backend';
import { DEFAULT_ARCH } from '../../engine/model/unet';
import { pretextTask } from '../../engine/pretext/registry';
import { pretrain } from '../../engine/train/pretrain';
import type { Project, RunRecord } from '../../store';
import { TRAINING } from '../../shared/training';
import { loadImage, projectSpanFloor } from '../data';
import { NEVER_ABORTED, type WorkHooks, type WorkStatus } from '../hooks';
import { runToContinue } from './continuable';

export interface PretrainEncoderOptions {
  tasks: string[];
  /** Wall-clock seconds (default TRAINING.pretrainSeconds when no steps are given); with steps, whichever ends first. */
  budgetSeconds?: number;
  steps?: number;
  /** Default TRAINING.pretrainMaxImages. */
  maxImages?: number;
  /** Default TRAINING.pretrainLearningRate. */
  learningRate?: number;
  /** Save a resumable checkpoint every this many steps (default TRAINING.pretrainCheckpointEvery). */
  checkpointEvery?: number;
  /** true: continue the last unfinished run of the same tasks; a number: continue that run. */
  resume?: boolean | number;
}

/** The step cap of a pretraining given only time. */
const MAX_PRETRAIN_STEPS = 10_000_000;

/** Seconds a stopped run trained for (its start to its last record), which its successor's budget excludes. */
function ranSeconds(run: RunRecord): number {
  return Math.max(0, ((run.finishedAt ?? run.updatedAt) - run.startedAt) / 1000);
}

export interface PretrainEncoderResult {
  runId: number;
  status: WorkStatus;
  stepsDone: number;
  modelId: number | null;
  checkpoint: string;
  finalLoss: number | null;
}

export async function pretrainEncoder(project: Project, options: PretrainEncoderOptions, hooks: WorkHooks = {}): Promise<PretrainEncoderResult> {
  const signal = hooks.signal ?? NEVER_ABORTED;
  const tasks = options.tasks;
  tasks.forEach(pretextTask);
  const joined = tasks.join('+');
  await initEngine({ log: Boolean(hooks.logBackend) });
  const previous = runToContinue(project, 'pretrain', options.resume, (r) => r.config.tasks === joined);
  // A resumed run goes on with the settings its run recorded, and with what is left of its time.
  const recorded = (key: string) => (typeof previous?.config[key] === 'number' ? (previous.config[key] as number) : undefined);
  const maxImages = recorded('maxImages') ?? options.maxImages ?? TRAINING.pretrainMaxImages;
  const learningRate = recorded('learningRate') ?? options.learningRate ?? TRAINING.pretrainLearningRate;
  const checkpointEvery = recorded('checkpointEvery') ?? options.checkpointEvery ?? TRAINING.pretrainCheckpointEvery;
  const steps = previous ? (recorded('steps') ?? previous.total ?? undefined) : options.steps;
  const budget = previous ? recorded('budgetSeconds') : (options.budgetSeconds ?? (steps === undefined ? TRAINING.pretrainSeconds : undefined));
  const seconds = budget === undefined ? undefined : Math.max(0, budget - (previous ? ranSeconds(previous) : 0));
  const records = project.listImages({ limit: maxImages });
  if (records.length === 0) throw new Error('the project has no images: run maskloop import first');
  const checkpoint = previous ? String(previous.config.checkpoint) : project.cachePath('checkpoints', `pretext-${Date.now()}.mlckpt`);
  const run = project.startRun({
    kind: 'pretrain',
    config: { tasks: previous ? String(previous.config.tasks) : joined, checkpoint, checkpointEvery, maxImages, learningRate, steps: steps ?? null, budgetSeconds: seconds ?? null, resumes: previous?.id ?? null },
    total: steps ?? null,
  });
  hooks.onRun?.(run);
  try {
    const minSpans = await projectSpanFloor(project);
    const images = [];
    for (const r of records) images.push(await loadImage(r, minSpans));
    const result = await pretrain({
      tasks: previous ? String(previous.config.tasks).split('+') : tasks, images, config: DEFAULT_ARCH, steps: steps ?? MAX_PRETRAIN_STEPS, seconds, learningRate,
      checkpointFile: checkpoint, checkpointEvery, resume: Boolean(previous), signal, progressEvery: 5,
      onProgress: (p) => {
        // Recorded before it is announced: whoever sees step n may rely on the store saying n
        // (with a time budget the total is the loop's estimate).
        project.updateRunProgress(run.id, { step: p.step, total: p.totalSteps });
        hooks.onProgress?.(p);
      },
    });
    // The network that was trained: a resumed run keeps the one it started in.
    const { depth, baseFilters, norm } = result.model.config;
    result.model.dispose();
    if (result.status === 'cancelled') {
      project.finishRun(run.id, { status: 'cancelled', message: `stopped at step ${result.stepsDone}; resume with --resume` });
      return { runId: run.id, status: 'cancelled', stepsDone: result.stepsDone, modelId: null, checkpoint, finalLoss: result.losses.at(-1) ?? null };
    }
    const model = project.addModel({ kind: 'pretext', checkpointPath: checkpoint, pretextInit: joined, config: { depth, baseFilters, norm, tasks: joined } });
    project.finishRun(run.id, { status: 'completed', modelId: model.id, message: `final loss ${result.losses.at(-1)?.toFixed(4)}` });
    return { runId: run.id, status: 'completed', stepsDone: result.stepsDone, modelId: model.id, checkpoint, finalLoss: result.losses.at(-1) ?? null };
  } catch (err) {
    project.finishRun(run.id, { status: 'failed', message: (err as Error).message });
    throw err;
  }
}
