/**
 * Self-supervised pretraining: one or several pretext tasks (their losses summed) train a U-Net's
 * encoder — and its decoder where a dense task asks for it — on unlabeled images.
 */
import * as tf from '@tensorflow/tfjs';
import { randomCrop, type EngineImage } from '../data';
import { isEncoderParam, UNet, type Params, type Architecture, type UNetConfig } from '../model/unet';
import { pretextTask } from '../pretext/registry';
import { createHead, disposeBatch, type PretextTask } from '../pretext/task';
import { Rng } from '../../shared/rng';
import { TRAINING } from '../../shared/training';
import { loadCheckpoint, disposeCheckpoint } from '../checkpoint';
import { loopOptionsFor, runLoop, type TrainingRunOptions } from './loop';
import { createOptimizer, networkToTrain, resumePoint, saveTrainingCheckpoint } from './optimizerState';

/** Images that change as pretraining goes on: a project's, streamed (jobs/imageStream.ts). */
export interface ImageStream {
  /** The images to crop from at `step`; the same for the same step, so a resumed run draws what an uninterrupted one would. */
  forStep(step: number): Promise<readonly EngineImage[]>;
}

export interface PretrainOptions extends TrainingRunOptions {
  /** Names from the pretext registry; several are trained jointly. */
  tasks: string[];
  images: readonly EngineImage[] | ImageStream;
  /** Architecture; inChannels is taken from the images. */
  config: Architecture;
}

export interface PretextCheckpointMeta {
  kind: 'pretext';
  tasks: string[];
  /** Which U-Net parts the tasks trained and fine-tuning may therefore reuse. */
  trained: 'encoder' | 'unet';
  config: UNetConfig;
  step: number;
  totalSteps: number;
  seed: number;
  batchSize: number;
  patchSize: number;
  learningRate: number;
  losses: number[];
}

export interface PretrainResult {
  model: UNet;
  status: 'completed' | 'cancelled';
  stepsDone: number;
  losses: number[];
  imagesPerSecond: number;
  /** Which U-Net parts the tasks trained, as recorded in the checkpoint. */
  trained: PretextCheckpointMeta['trained'];
}

/**
 * The images of each step from a list or a stream, checked when they change (at least one, all
 * with the first's channels): a stream hands back the same list until its window moves.
 */
function stepImages(source: PretrainOptions['images']): (step: number) => Promise<readonly EngineImage[]> {
  let checked: readonly EngineImage[] | null = null;
  let channels: number | undefined;
  return async (step) => {
    const images = 'forStep' in source ? await source.forStep(step) : source;
    if (images === checked) return images;
    if (images.length === 0) throw new Error('pretraining needs at least one image');
    channels ??= images[0].channels;
    if (images.some((im) => im.channels !== channels)) throw new Error('pretraining images must all have the same number of channels');
    checked = images;
    return images;
  };
}

export async function pretrain(options: PretrainOptions): Promise<PretrainResult> {
  const imagesFor = stepImages(options.images);
  const { channels } = (await imagesFor(0))[0];
  const tasks = options.tasks.map(pretextTask);
  if (tasks.length === 0) throw new Error('choose at least one pretext task');
  for (const t of tasks) {
    if (!t.appliesTo(channels)) throw new Error(`pretext task '${t.name}' does not apply to ${channels}-channel images`);
  }
  const batchSize = options.batchSize ?? 8;
  const patchSize = options.patchSize ?? 128;
  const learningRate = options.learningRate ?? TRAINING.pretrainLearningRate;
  const seed = options.seed ?? 1;
  const config: UNetConfig = { ...networkToTrain(options, options.config), inChannels: channels, outChannels: 1 };
  const trained = tasks.some((t) => t.trains === 'unet') ? 'unet' : 'encoder';

  const model = UNet.create(config, seed);
  const heads = new Map(tasks.map((t) => [t.name, createHead(t, model.config, seed)] as const));
  const optimizer = createOptimizer(learningRate);
  const { startStep, history } = await resumePoint<PretextCheckpointMeta>(options, optimizer, (ckpt) => {
    if (ckpt.meta.kind !== 'pretext' || ckpt.meta.tasks.join('+') !== options.tasks.join('+')) {
      throw new Error(`checkpoint ${options.checkpointFile} is for '${ckpt.meta.tasks?.join('+')}', not '${options.tasks.join('+')}'`);
    }
    const weights = ckpt.groups.weights;
    model.loadMatching(weights);
    for (const head of heads.values()) for (const [name, v] of head) v.assign(weights.get(name) as tf.Tensor);
  });

  const trainable = [...model.variables((name) => trained === 'unet' || isEncoderParam(name)), ...[...heads.values()].flatMap((h) => [...h.values()])];

  const save = async (stepsDone: number, losses: number[]) => {
    if (!options.checkpointFile) return;
    const weights = new Map(model.weights());
    for (const head of heads.values()) for (const [name, v] of head) weights.set(name, v);
    const meta: PretextCheckpointMeta = {
      // A run given time rather than steps is whole at whatever step its time ran out.
      kind: 'pretext', tasks: options.tasks, trained, config, step: stepsDone, totalSteps: options.seconds !== undefined ? stepsDone : options.steps,
      seed, batchSize, patchSize, learningRate, losses: [...history, ...losses],
    };
    await saveTrainingCheckpoint(options.checkpointFile, meta, weights, optimizer);
  };

  const losses: number[] = [];
  const result = await runLoop(
    async (i) => {
      // Reseeding per step makes a resumed run draw the same patches as an uninterrupted one.
      const rng = new Rng(seed * 100_003 + i);
      const images = await imagesFor(i);
      const patches = Array.from({ length: batchSize }, () => randomCrop(images[rng.int(images.length)], patchSize, rng).pixels);
      const loss = await pretextStep(model, tasks, heads, patches, patchSize, channels, rng, optimizer, trainable);
      losses.push(loss);
      return loss;
    },
    loopOptionsFor(options, `pretrain:${options.tasks.join('+')}`, startStep, batchSize, (done) => save(done, losses)),
  );

  optimizer.dispose();
  for (const head of heads.values()) for (const v of head.values()) v.dispose();
  return { model, status: result.status, stepsDone: result.stepsDone, losses: result.losses, imagesPerSecond: result.imagesPerSecond, trained };
}

async function pretextStep(
  model: UNet,
  tasks: PretextTask[],
  heads: Map<string, Params>,
  patches: Float32Array[],
  size: number,
  channels: number,
  rng: Rng,
  optimizer: tf.Optimizer,
  trainable: tf.Variable[],
): Promise<number> {
  const batches = tasks.map((t) => t.makeBatch(patches, size, channels, rng));
  try {
    const cost = optimizer.minimize(
      () => tasks.map((t, k) => t.loss(model, heads.get(t.name) as Params, batches[k])).reduce((a, b) => a.add(b)) as tf.Scalar,
      true,
      trainable,
    );
    const value = (await (cost as tf.Scalar).data())[0];
    cost?.dispose();
    return value;
  } finally {
    batches.forEach(disposeBatch);
  }
}

/** Loads a pretext checkpoint's weights (for initialising fine-tuning); the caller disposes them. */
export function loadPretextWeights(file: string): { meta: PretextCheckpointMeta; weights: Map<string, tf.Tensor> } {
  const ckpt = loadCheckpoint<PretextCheckpointMeta>(file);
  if (ckpt.meta.kind !== 'pretext') {
    disposeCheckpoint(ckpt);
    throw new Error(`${file} is not a pretext checkpoint`);
  }
  for (const [group, tensors] of Object.entries(ckpt.groups)) {
    if (group !== 'weights') for (const t of tensors.values()) t.dispose();
  }
  return { meta: ckpt.meta, weights: ckpt.groups.weights };
}
