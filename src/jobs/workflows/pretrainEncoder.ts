/** Pretrain: self-supervised training of the encoder on the project's images (labels unused), resumable. */
import { initEngine } from '../../engine/backend';
import { DEFAULT_ARCH } from '../../engine/model/unet';
import { pretextTask } from '../../engine/pretext/registry';
import { pretrain } from '../../engine/train/pretrain';
import type { Project } from '../../store';
import { loadImage, projectSpanFloor } from '../data';
import { NEVER_ABORTED, type WorkHooks, type WorkStatus } from '../hooks';
import { runToContinue } from './continuable';

export interface PretrainEncoderOptions {
  tasks: string[];
  steps: number;
  maxImages: number;
  learningRate: number;
  /** Save a resumable checkpoint every this many steps (default 50). */
  checkpointEvery?: number;
  /** true: continue the last unfinished run of the same tasks; a number: continue that run. */
  resume?: boolean | number;
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
  const records = project.listImages({ limit: options.maxImages });
  if (records.length === 0) throw new Error('the project has no images: run maskloop import first');
  const previous = runToContinue(project, 'pretrain', options.resume, (r) => r.config.tasks === joined);
  const checkpoint = previous ? String(previous.config.checkpoint) : project.cachePath('checkpoints', `pretext-${Date.now()}.mlckpt`);
  const run = project.startRun({ kind: 'pretrain', config: { tasks: previous ? String(previous.config.tasks) : joined, checkpoint, checkpointEvery: options.checkpointEvery ?? 50, resumes: previous?.id ?? null }, total: options.steps });
  hooks.onRun?.(run);
  try {
    const minSpans = await projectSpanFloor(project);
    const images = [];
    for (const r of records) images.push(await loadImage(r, minSpans));
    const result = await pretrain({
      tasks: previous ? String(previous.config.tasks).split('+') : tasks, images, config: DEFAULT_ARCH, steps: options.steps, learningRate: options.learningRate,
      checkpointFile: checkpoint, checkpointEvery: options.checkpointEvery ?? 50, resume: Boolean(previous), signal, progressEvery: 5,
      onProgress: (p) => {
        // Recorded before it is announced: whoever sees step n may rely on the store saying n.
        project.updateRunProgress(run.id, { step: p.step });
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
