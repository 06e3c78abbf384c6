/** Pretrain: self-supervised training of the encoder on the project's images (labels unused), resumable. */
import { initEngine } from '../../engine/backend';
import { DEFAULT_ARCH } from '../../engine/model/unet';
import { pretextTask } from '../../engine/pretext/registry';
import { loadPretextWeights, pretrain } from '../../engine/train/pretrain';
import type { Project, RunRecord } from '../../store';
import { TRAINING } from '../../shared/training';
import { loadLabeled, projectSpanFloor } from '../data';
import { ProjectImageStream } from '../imageStream';
import * as tf from '@tensorflow/tfjs';
import { planSteps } from '../../engine/train/budget';
import { candidateRecord, formatValScore, selectInitialisation, type CandidateScore } from '../../engine/train/select';
import { recordedTarget } from '../../shared/target';
import { NEVER_ABORTED, type WorkHooks, type WorkStatus } from '../hooks';
import { runToContinue } from './continuable';
import { ensureValidationSplit } from './trainModel';

export interface PretrainEncoderOptions {
  tasks: string[];
  /** Wall-clock seconds (default TRAINING.pretrainSeconds when no steps are given); with steps, whichever ends first. */
  budgetSeconds?: number;
  steps?: number;
  /** Images held in memory at once (default TRAINING.pretrainMaxImages); a project with more streams them through (ProjectImageStream). */
  maxImages?: number;
  /** Default TRAINING.pretrainLearningRate. */
  learningRate?: number;
  /** Save a resumable checkpoint every this many steps (default TRAINING.pretrainCheckpointEvery). */
  checkpointEvery?: number;
  /** true: continue the last unfinished run of the same tasks; a number: continue that run. */
  resume?: boolean | number;
  /** Seconds of the quick fine-tune that says what the pretraining is worth (default TRAINING.pretrainProbeSeconds; 0: none). */
  probeSeconds?: number;
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
  /** What the pretraining is worth where labels exist (probeFineTune); absent otherwise. */
  probe?: PretrainProbe | null;
  /** A completed run: how many of the project's images it cropped from (this run, not its predecessors), and how many could not be read. */
  imagesSeen?: number;
  imagesUnreadable?: number;
  /** One line for the user: the checkpoint, its final loss and what it is worth. */
  message: string;
}

export interface PretrainProbe {
  steps: number;
  /** Val scores of the quick fine-tune from scratch, then from the pretrained weights. */
  scores: CandidateScore[];
}

/**
 * A quick fine-tune from scratch and from the new pretext weights, within `seconds` together,
 * scored on the val split: what the pretraining is worth on the project's own labels. Null when
 * there are no labels to learn from and judge by. The val split is completed as training would;
 * the target is the promoted model's, else one foreground class.
 */
async function probeFineTune(project: Project, name: string, checkpoint: string, seconds: number, minSpans: number[], hooks: WorkHooks): Promise<PretrainProbe | null> {
  ensureValidationSplit(project);
  const target = recordedTarget(project.promotedModel()?.config.target);
  const train = await loadLabeled(project, ['train', 'unassigned'], target, minSpans);
  const val = await loadLabeled(project, ['val'], target, minSpans);
  if (train.images.length === 0 || val.images.length === 0) return null;
  const { meta, weights } = loadPretextWeights(checkpoint);
  try {
    const plan = await planSteps({ budgetSeconds: seconds, candidates: 2, races: false, choosesAugmentation: false, images: train.images, valImages: val.images, target, config: DEFAULT_ARCH });
    const { best, scores } = await selectInitialisation(
      [{ name: 'scratch' }, { name, weights, trained: meta.trained }],
      { images: train.images, target, config: DEFAULT_ARCH, steps: plan.steps, signal: hooks.signal, progressEvery: 5, onProgress: (p) => hooks.onProgress?.({ ...p, phase: `probe ${p.phase}` }) },
      val.images,
    );
    best.model.dispose();
    // A probe cut short says nothing about the pretraining.
    return hooks.signal?.aborted ? null : { steps: plan.steps, scores };
  } finally {
    tf.dispose([...weights.values()]);
  }
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
  const probeSeconds = recorded('probeSeconds') ?? options.probeSeconds ?? TRAINING.pretrainProbeSeconds;
  const steps = previous ? (recorded('steps') ?? previous.total ?? undefined) : options.steps;
  const budget = previous ? recorded('budgetSeconds') : (options.budgetSeconds ?? (steps === undefined ? TRAINING.pretrainSeconds : undefined));
  const seconds = budget === undefined ? undefined : Math.max(0, budget - (previous ? ranSeconds(previous) : 0));
  const records = project.listImages();
  if (records.length === 0) throw new Error('the project has no images: run maskloop import first');
  const checkpoint = previous ? String(previous.config.checkpoint) : project.cachePath('checkpoints', `pretext-${Date.now()}.mlckpt`);
  const run = project.startRun({
    kind: 'pretrain',
    config: { tasks: previous ? String(previous.config.tasks) : joined, checkpoint, checkpointEvery, maxImages, learningRate, steps: steps ?? null, budgetSeconds: seconds ?? null, probeSeconds, resumes: previous?.id ?? null },
    total: steps ?? null,
  });
  hooks.onRun?.(run);
  try {
    const minSpans = await projectSpanFloor(project);
    const images = new ProjectImageStream(records, { images: maxImages, pixels: TRAINING.pretrainMaxPixels, region: TRAINING.pretrainRegionPixels, turnover: TRAINING.pretrainTurnoverSteps }, minSpans);
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
      const message = `stopped at step ${result.stepsDone}; it can be resumed`;
      project.finishRun(run.id, { status: 'cancelled', message });
      return { runId: run.id, status: 'cancelled', stepsDone: result.stepsDone, modelId: null, checkpoint, finalLoss: result.losses.at(-1) ?? null, message };
    }
    const finalLoss = result.losses.at(-1) ?? null;
    const pretextName = previous ? String(previous.config.tasks) : joined;
    const probe = probeSeconds > 0 ? await probeFineTune(project, pretextName, checkpoint, probeSeconds, minSpans, hooks) : null;
    const model = project.addModel({
      kind: 'pretext', checkpointPath: checkpoint, pretextInit: pretextName, config: { depth, baseFilters, norm, tasks: pretextName },
      ...(probe ? { valMetrics: { probeSteps: probe.steps, candidates: probe.scores.map(candidateRecord) } } : {}),
    });
    const worth = probe
      ? `; a ${probeSeconds} s fine-tune (${probe.steps} steps each) from it: ${formatValScore(probe.scores[1])}, from scratch: ${formatValScore(probe.scores[0])}`
      : probeSeconds > 0 ? '; label a few images to see what it is worth' : '';
    const unreadable = images.unreadable.size > 0 ? ` (${images.unreadable.size} could not be read and were left out)` : '';
    const message = `pretext checkpoint saved as model #${model.id}: final pretext loss ${finalLoss?.toFixed(4)}, from ${images.seen.size} of the project's ${records.length} images${unreadable}${worth}`;
    project.finishRun(run.id, { status: 'completed', modelId: model.id, message });
    return { runId: run.id, status: 'completed', stepsDone: result.stepsDone, modelId: model.id, checkpoint, finalLoss, probe, imagesSeen: images.seen.size, imagesUnreadable: images.unreadable.size, message };
  } catch (err) {
    project.finishRun(run.id, { status: 'failed', message: (err as Error).message });
    throw err;
  }
}
