/**
 * Fine-tuning a segmentation U-Net on the few labeled images, from a pretext checkpoint or from
 * scratch: Dice + cross-entropy on labeled pixels only, with augmentation.
 */
import * as tf from '@tensorflow/tfjs';
import { augmentPatch, cropAt, DEFAULT_AUGMENT, knownPixels, type EngineImage, randomCrop, stackLabels, stackPixels, UNKNOWN, type AugmentOptions, type LabeledImage } from '../data';
import { isEncoderParam, isHeadParam, normalisationOf, UNet, type Architecture, type Params, type UNetConfig } from '../model/unet';
import type { PretextBatch } from '../pretext/task';
import { Rng } from '../../shared/rng';
import { disposeCheckpoint, loadCheckpoint, saveCheckpoint } from '../checkpoint';
import { calibrateForeground, calibrateSeeds, heldOutDice } from './calibrate';
import type { ProposalOptions } from '../infer/propose';
import { DEFAULT_LOSS_WEIGHTS, segmentationLoss, type LossWeights } from './losses';
import { loopOptionsFor, runLoop, type TrainingRunOptions } from './loop';
import { createOptimizer, DEFAULT_SCHEDULE, learningRateAt, networkToTrain, setLearningRate, type LearningRateSchedule, resumePoint, saveTrainingCheckpoint } from './optimizerState';
import { TRAINING } from '../../shared/training';
import { outputChannels, type SegmentationTarget } from '../target';
import { consistencyBatch, consistencyStart, unlabeledBatchSize, type ConsistencyOptions } from './consistency';
import { unlabeledPool } from './semi';
import { blindSpotBatch, denoisingHead, segmentAndDenoise, unlabeledPatch, unlabeledPlaces, type JointDenoisingOptions } from './jointDenoising';

export interface Initialisation {
  /** Where the weights came from, for the record: 'scratch' or the pretext task names. */
  name: string;
  weights?: Map<string, tf.Tensor>;
  /**
   * Which parts were trained: a pretext task's encoder or U-Net (a decoder trained by an
   * encoder-only task is noise), or a whole segmentation model of the same target, head included,
   * which a warm start continues from.
   */
  trained?: 'encoder' | 'unet' | 'segmentation';
}

export interface FinetuneOptions extends TrainingRunOptions {
  images: LabeledImage[];
  target: SegmentationTarget;
  config: Architecture;
  init?: Initialisation;
  augment?: AugmentOptions;
  lossWeights?: LossWeights;
  /**
   * Steps at the start during which a pretrained encoder stays frozen while the new decoder and
   * head settle, so that their random initial gradients do not wash out pretrained features.
   * Default encoderWarmupFor(init, steps).
   */
  encoderWarmupSteps?: number;
  /**
   * A pretrained encoder's learning rate after the warmup, as a share of the decoder's (default 1):
   * discriminative fine-tuning, so that the few labels adapt the pretrained features more gently
   * than they train the new decoder. Measured worse on ISBI and PFC (docs/results/history-2026-12-03.md), so only the
   * evaluations set it, and they keep no training checkpoint: a checkpointed run refuses it rather
   * than save one optimizer's state of two.
   */
  encoderRateFactor?: number;
  /** Default DEFAULT_SCHEDULE. Pretraining keeps a constant rate: the decay was measured for fine-tuning only. */
  schedule?: LearningRateSchedule;
  /**
   * Held-out labeled images (a val split), never the training images: a model that has seen them
   * is more sure of their foreground than of new images' (measured on ISBI with one label:
   * Dice-best threshold 0.8 on its training image, 0.4 on val and test). What they decide:
   * - `calibrate` (default true): a completed fine-tuning chooses its foreground threshold on them
   *   and folds it into the head (calibrate.ts); otherwise the model decides at 0.5.
   * - `keepBest` (default true): the weights are scored on them every BEST_CHECK_EVERY steps and
   *   at the end, and the best (the later on a tie) are returned rather than the last. Runs of at
   *   most BEST_CHECK_EVERY steps are not checked.
   */
  valImages?: LabeledImage[];
  calibrate?: boolean;
  keepBest?: boolean;
  /**
   * Semi-supervised fine-tuning (consistency.ts): every step also trains on unlabeled patches
   * from `unlabeled` and from the unknown pixels of sparse labels. Off when absent.
   */
  consistency?: ConsistencyOptions;
  /**
   * Semi-supervised fine-tuning by joint denoising (jointDenoising.ts): the network also learns
   * blind-spot denoising, on its labeled patches and on patches from `unlabeled` and from sparse
   * labels' images, which take some of the batch's places. Off when absent.
   */
  jointDenoising?: JointDenoisingOptions;
  /** Images without labels, for `consistency` and `jointDenoising`; never val or test images. */
  unlabeled?: EngineImage[];
  /**
   * Stop after this many steps of the `steps`-long schedule, as a race between initialisations
   * does (select.ts): the state is saved to checkpointFile, the weights are scored on the val
   * images (`pausedValDice`), and a later call with `resume` continues exactly where this one
   * stopped. Must fall after the frozen-encoder warmup, whose optimizer is not saved.
   */
  pauseAt?: number;
}

/** The consistency loss is cross-entropy alone: soft Dice over a few confident pixels would weigh them as much as a whole labeled batch. */
const CONSISTENCY_LOSS: LossWeights = { crossEntropy: 1, dice: 0 };

/**
 * Steps between two checks of the weights on the val images. A long fine-tuning on few labels
 * overfits: on ISBI with one labeled image, 400 steps ended at test Dice 0.46 and 0.72 on two
 * label subsets where 50 steps reached 0.75 and 0.74.
 */
export const BEST_CHECK_EVERY = 50;

/**
 * Learning-rate factor for fine-tuning that continues a trained segmentation model (a warm start).
 * A fresh Adam takes full-size steps at once; on an already trained model that undoes what it
 * learned (measured: a BBBC039 session's proposals collapsed to Dice 0.09 after a warm retrain at
 * the from-scratch rate), so warm starts move more gently.
 */
export const WARM_START_RATE = 0.25;

/** The best weights the val checks have seen: their step, pooled val Dice and a copy of them. */
class BestWeights {
  step = -1;
  valDice = -Infinity;
  weights: Map<string, tf.Tensor> | null = null;

  /** Keeps the model's weights if they score at least as well as the best so far (later wins ties). */
  offer(model: UNet, step: number, valDice: number): void {
    if (valDice < this.valDice) return;
    this.take(step, valDice, model.snapshot());
  }

  /** Takes ownership of the weights. */
  take(step: number, valDice: number, weights: Map<string, tf.Tensor>): void {
    this.dispose();
    Object.assign(this, { step, valDice, weights });
  }

  record(): { step: number; valDice: number } | undefined {
    return this.weights ? { step: this.step, valDice: this.valDice } : undefined;
  }

  dispose(): void {
    tf.dispose([...(this.weights?.values() ?? [])]);
    this.weights = null;
  }
}

export interface SegmentationModelMeta {
  kind: 'segmentation';
  config: UNetConfig;
  target: SegmentationTarget;
  init: string;
  step: number;
  totalSteps: number;
  seed: number;
  patchSize: number;
  losses: number[];
  trainedOn: number;
  /**
   * The window floor its training images were normalised with (minSpans of percentileRanges),
   * for prediction to use the same; absent in models from before the floor, and from finetune itself.
   */
  minSpans?: number[];
  /**
   * The foreground threshold calibrated on held-out labeled images, already folded into the head's
   * bias (so the model decides at 0.5); for the record. Absent in uncalibrated models.
   */
  foregroundThreshold?: number;
  /** Whether proposals use test-time augmentation (chooseAugmentation); absent: no. */
  tta?: boolean;
  /**
   * Instance targets: the interior probability from which proposals seed an object, chosen on
   * held-out labeled images (calibrateSeeds) when the fine-tuning calibrates; absent: DEFAULT_SEED_THRESHOLD.
   */
  seedThreshold?: number;
  /** The consistency training it was fine-tuned with (semi-supervised); absent: without. */
  consistency?: ConsistencyOptions;
  /** The joint denoising it was fine-tuned with (semi-supervised); absent: without. */
  jointDenoising?: JointDenoisingOptions;
  /**
   * With val checks (keepBest): the step whose weights these are and their pooled val Dice. In a
   * training checkpoint, the best weights so far (saved alongside as the group 'best').
   */
  best?: { step: number; valDice: number };
}

/** How a model's proposals are made: its test-time augmentation and seed threshold as recorded in its meta. */
export function proposalSettings(meta: Pick<SegmentationModelMeta, 'tta' | 'seedThreshold'>): ProposalOptions {
  return { tta: meta.tta, seedThreshold: meta.seedThreshold };
}

export interface FinetuneResult {
  model: UNet;
  meta: SegmentationModelMeta;
  status: 'completed' | 'cancelled' | 'paused';
  losses: number[];
  imagesPerSecond: number;
  /** A paused run's val Dice at the step it stopped (heldOutDice, calibrated as the checks are). */
  pausedValDice?: number;
}

/**
 * Frozen-encoder steps by default: a tenth of the run from pretext weights, whose decoder and head
 * are new; none from scratch, or when continuing a segmentation model, which has nothing new to
 * settle. The curves measure initialisations with this, so `maskloop train` uses it too.
 */
/** The progress phase of fine-tuning from one initialisation ('finetune:scratch', 'finetune:inpainting'). */
export function finetunePhase(init: Initialisation | undefined): string {
  return `finetune:${init?.name ?? 'scratch'}`;
}

export function encoderWarmupFor(init: Initialisation | undefined, steps: number): number {
  return fromPretextEncoder(init) ? pretextWarmupSteps(steps) : 0;
}

/** The frozen-encoder warmup of a run of `steps` from a pretext task's weights: a tenth. */
export function pretextWarmupSteps(steps: number): number {
  return Math.floor(steps / 10);
}

/** Whether fine-tuning starts from a pretext task's encoder, under a decoder and head that are new to the segmentation. */
function fromPretextEncoder(init: Initialisation | undefined): boolean {
  return Boolean(init?.weights) && init?.trained !== 'segmentation';
}

export async function finetune(options: FinetuneOptions): Promise<FinetuneResult> {
  const images = options.images;
  if (images.length === 0) throw new Error('fine-tuning needs at least one labeled image');
  if (options.seconds !== undefined) throw new Error('fine-tuning runs a planned number of steps: turn a budget into steps with planSteps');
  const channels = images[0].channels;
  if (images.some((im) => im.channels !== channels)) throw new Error('labeled images must all have the same number of channels');
  if (images.every((im) => knownPixels(im.labels) === 0)) throw new Error('the labels mark no pixel as known');
  const batchSize = options.batchSize ?? 8;
  const patchSize = options.patchSize ?? 128;
  // A warm start continues a trained segmentation model at a gentler rate (WARM_START_RATE).
  const learningRate = (options.learningRate ?? TRAINING.learningRate) * (options.init?.trained === 'segmentation' ? WARM_START_RATE : 1);
  const seed = options.seed ?? 1;
  const augment = options.augment ?? DEFAULT_AUGMENT;
  // Pretrained weights only mean something inside the kind of network they were trained in (a
  // project may keep a pretext checkpoint from before normalisation existed).
  const arch = options.init?.weights ? { ...options.config, norm: normalisationOf(options.init.weights) } : options.config;
  const config: UNetConfig = { ...networkToTrain(options, arch), inChannels: channels, outChannels: outputChannels(options.target) };
  const classCount = Math.max(2, config.outChannels);
  for (const im of images) assertLabelRange(im.labels, classCount);

  const pool = options.consistency || options.jointDenoising ? unlabeledPool(options.unlabeled ?? [], images) : [];
  if (options.consistency && pool.length === 0) throw new Error('consistency training needs unlabeled images or sparse labels');
  if (pool.some((im) => im.channels !== channels)) throw new Error('unlabeled images must have as many channels as the labeled ones');
  const consistencyFrom = options.consistency ? consistencyStart(options.steps, options.consistency, options.init?.trained === 'segmentation') : Infinity;

  const model = UNet.create(config, seed);
  const initName = options.init?.name ?? 'scratch';
  let pretrained = false;
  if (options.init?.weights) {
    const fromEncoderTask = options.init.trained === 'encoder';
    const copied = model.loadMatching(options.init.weights, (name) => !fromEncoderTask || isEncoderParam(name));
    if (copied.length === 0) throw new Error(`initialisation '${initName}' shares no weights with this U-Net config`);
    if (options.init.trained === 'segmentation') assignHead(model, options.init.weights);
    pretrained = true;
  }

  // Joint denoising's reconstruction head: trained with the network, dropped from the model it returns.
  const denoiser = options.jointDenoising ? denoisingHead(model, seed, options.init?.weights) : null;
  const denoiserVariables = [...(denoiser?.values() ?? [])];
  const unlabeledCount = options.jointDenoising ? unlabeledPlaces(batchSize, options.jointDenoising, pool.length) : 0;

  const valImages = options.valImages?.length ? options.valImages : undefined;
  const calibrate = Boolean(valImages) && options.calibrate !== false;
  const best = valImages && options.keepBest !== false ? new BestWeights() : null;

  const optimizer = createOptimizer(learningRate);
  const { startStep, history } = await resumePoint<SegmentationModelMeta>(options, optimizer, (ckpt) => {
    model.loadMatching(ckpt.groups.weights);
    assignHead(model, ckpt.groups.weights);
    for (const [name, v] of denoiser ?? []) {
      const saved = ckpt.groups.denoiser?.get(name);
      if (saved) v.assign(saved);
    }
    // The best weights from before an interruption still compete.
    const saved = ckpt.groups.best;
    if (best && ckpt.meta.best && saved) best.take(ckpt.meta.best.step, ckpt.meta.best.valDice, new Map([...saved].map(([k, v]) => [k, tf.clone(v)])));
  });
  // The val Dice of the weights after `step` steps, measured once: a pause at a check's step reuses the check.
  let lastCheck: { step: number; valDice: number } | null = null;
  const valDiceAt = async (step: number) => {
    if (lastCheck?.step !== step) lastCheck = { step, valDice: await heldOutDice(model, options.target, valImages as LabeledImage[], calibrate) };
    return lastCheck.valDice;
  };
  const checkOnVal = async (step: number) => {
    if (best) best.offer(model, step, await valDiceAt(step));
  };

  const warmup = pretrained ? (options.encoderWarmupSteps ?? encoderWarmupFor(options.init, options.steps)) : 0;
  const pauseAt = options.pauseAt;
  if (pauseAt !== undefined) {
    if (!options.checkpointFile) throw new Error('a fine-tuning can pause only with a checkpoint file to continue from');
    if (!valImages) throw new Error('a paused fine-tuning is scored on val images: give some');
    if (!(Number.isInteger(pauseAt) && pauseAt > warmup && pauseAt < options.steps)) {
      throw new Error(`pauseAt must be a step after the encoder warmup (${warmup}) and before the end (${options.steps}), got ${pauseAt}`);
    }
  }
  const everything = [...model.variables(), ...denoiserVariables];
  const withoutEncoder = [...model.variables((name) => !isEncoderParam(name)), ...denoiserVariables];
  // Adam keeps its slots by position, so frozen-encoder steps use a separate optimizer.
  const warmupOptimizer = warmup > 0 ? createOptimizer(learningRate) : null;
  const encoderRateFactor = fromPretextEncoder(options.init) ? (options.encoderRateFactor ?? 1) : 1;
  if (!(encoderRateFactor > 0)) throw new Error(`encoderRateFactor must be > 0, got ${encoderRateFactor}`);
  if (encoderRateFactor !== 1 && options.checkpointFile) throw new Error('encoderRateFactor cannot be combined with a training checkpoint');
  // Adam ignores the scale of its gradients, so a slower encoder needs an optimizer of its own.
  const encoderOptimizer = encoderRateFactor !== 1 ? createOptimizer(learningRate * encoderRateFactor) : null;
  const encoder = model.variables(isEncoderParam);

  const losses: number[] = [];
  const meta = (step: number): SegmentationModelMeta => ({
    kind: 'segmentation', config, target: options.target, init: initName, step, totalSteps: options.steps,
    seed, patchSize, losses: [...history, ...losses], trainedOn: images.length, best: best?.record(),
    ...(options.consistency ? { consistency: options.consistency } : {}),
    ...(options.jointDenoising ? { jointDenoising: options.jointDenoising } : {}),
  });

  const result = await runLoop(
    async (i) => {
      const rng = new Rng(seed * 100_003 + i);
      const pixels: Float32Array[] = [];
      const labels: Uint8Array[] = [];
      for (let b = 0; b < batchSize - unlabeledCount; b++) {
        const patch = sampleLabeledPatch(images, patchSize, rng);
        const aug = augmentPatch(patch, patchSize, channels, rng, augment);
        pixels.push(aug.pixels);
        labels.push(aug.labels as Uint8Array);
      }
      let blindSpots: PretextBatch | null = null;
      if (denoiser) {
        // Its own random stream, so the labeled patches are those plain fine-tuning draws first.
        const denoiseRng = new Rng((seed * 100_003 + i) ^ 0x2545f491);
        for (let b = 0; b < unlabeledCount; b++) {
          const patch = unlabeledPatch(pool, patchSize, channels, denoiseRng, augment);
          pixels.push(patch.pixels);
          labels.push(patch.labels);
        }
        blindSpots = blindSpotBatch(pixels, patchSize, channels, denoiseRng);
      }
      const x = blindSpots ? blindSpots.inputs : stackPixels(pixels, patchSize, channels);
      const y = stackLabels(labels, patchSize);
      // Its own random stream, so the labeled batches are the same with and without it (paired comparisons).
      const unlabeledBatch = options.consistency && i >= consistencyFrom
        ? consistencyBatch(model, pool, unlabeledBatchSize(batchSize, options.consistency), patchSize, options.consistency, new Rng((seed * 100_003 + i) ^ 0x5bd1e995))
        : null;
      try {
        const frozen = i < warmup && warmupOptimizer;
        const rate = learningRateAt(learningRate, i, options.steps, options.schedule ?? DEFAULT_SCHEDULE);
        const lossWeights = options.lossWeights ?? DEFAULT_LOSS_WEIGHTS;
        const supervised = (): tf.Scalar => {
          if (!blindSpots) return segmentationLoss(model.forward(x, true), y, lossWeights);
          const { logits, denoisingLoss } = segmentAndDenoise(model, denoiser as Params, blindSpots);
          return segmentationLoss(logits, y, lossWeights).add(denoisingLoss.mul((options.jointDenoising as JointDenoisingOptions).weight));
        };
        const loss = unlabeledBatch
          ? () => supervised().add(segmentationLoss(model.forward(unlabeledBatch.strong, true), unlabeledBatch.labels, CONSISTENCY_LOSS).mul((options.consistency as ConsistencyOptions).weight)) as tf.Scalar
          : supervised;
        let cost: tf.Scalar;
        if (!frozen && encoderOptimizer) {
          setLearningRate(optimizer, rate);
          setLearningRate(encoderOptimizer, rate * encoderRateFactor);
          const { value: c, grads } = tf.variableGrads(loss, everything);
          optimizer.applyGradients(pick(grads, withoutEncoder));
          encoderOptimizer.applyGradients(pick(grads, encoder));
          tf.dispose(grads);
          cost = c;
        } else {
          const opt = frozen ? warmupOptimizer : optimizer;
          setLearningRate(opt, rate);
          cost = opt.minimize(loss, true, frozen ? withoutEncoder : everything) as tf.Scalar;
        }
        const value = (await cost.data())[0];
        cost.dispose();
        losses.push(value);
        if ((i + 1) % BEST_CHECK_EVERY === 0 && i + 1 < options.steps) await checkOnVal(i + 1);
        return value;
      } finally {
        tf.dispose([x, y, unlabeledBatch?.strong, unlabeledBatch?.labels, blindSpots?.targets, blindSpots?.weights]);
      }
    },
    loopOptionsFor({ ...options, steps: Math.min(options.steps, pauseAt ?? Infinity) }, finetunePhase(options.init), startStep, batchSize, (done) =>
      saveTrainingCheckpoint(options.checkpointFile as string, meta(done), model.weights(), optimizer, { ...(best?.weights ? { best: best.weights } : {}), ...(denoiser ? { denoiser } : {}) })),
  );
  optimizer.dispose();
  tf.dispose(denoiserVariables);
  warmupOptimizer?.dispose();
  encoderOptimizer?.dispose();
  if (pauseAt !== undefined && result.status === 'completed') {
    const pausedValDice = await valDiceAt(result.stepsDone);
    best?.dispose();
    return { model, meta: meta(result.stepsDone), status: 'paused', losses: result.losses, imagesPerSecond: result.imagesPerSecond, pausedValDice };
  }
  // A run too short for a check along the way has nothing to compare its last weights with.
  if (result.status === 'completed' && best?.weights) {
    await checkOnVal(result.stepsDone);
    if (best.step !== result.stepsDone) model.restore(best.weights);
  }
  const finalMeta = meta(result.stepsDone);
  best?.dispose();
  if (result.status === 'completed' && calibrate) {
    finalMeta.foregroundThreshold = (await calibrateForeground(model, options.target, valImages as LabeledImage[])).threshold;
    if (options.target.kind === 'instance') finalMeta.seedThreshold = (await calibrateSeeds(model, options.target, valImages as LabeledImage[])).threshold;
  }
  return { model, meta: finalMeta, status: result.status, losses: result.losses, imagesPerSecond: result.imagesPerSecond };
}

/**
 * Share of training patches centred on a labeled foreground pixel. Where objects are sparse
 * (neurons cover 7% of a PFC image) uniform crops are mostly background, and a short fine-tuning
 * then settles on predicting no foreground at all (measured: PFC test Dice 0 on some label subsets).
 */
export const FOREGROUND_PATCH_SHARE = 1 / 3;

const foregroundCache = new WeakMap<Uint8Array, Uint32Array>();

/** Indices of the pixels labeled with a class > 0 (not background, not unknown). */
function foregroundPixels(labels: Uint8Array): Uint32Array {
  let found = foregroundCache.get(labels);
  if (!found) {
    const list: number[] = [];
    for (let i = 0; i < labels.length; i++) if (labels[i] > 0 && labels[i] !== UNKNOWN) list.push(i);
    found = Uint32Array.from(list);
    foregroundCache.set(labels, found);
  }
  return found;
}

/** A crop around a random foreground pixel (placed randomly within the crop), or null if there is none. */
function foregroundPatch(image: LabeledImage, size: number, rng: Rng) {
  const pixels = foregroundPixels(image.labels);
  if (pixels.length === 0) return null;
  const i = pixels[rng.int(pixels.length)];
  const place = (c: number, length: number) => (length > size ? Math.min(Math.max(c - rng.int(size), 0), length - size) : -Math.floor((size - length) / 2));
  return cropAt(image, place(i % image.width, image.width), place(Math.floor(i / image.width), image.height), size, image.labels);
}

/**
 * A random crop that contains labeled pixels (sparse labels may leave whole regions unknown);
 * FOREGROUND_PATCH_SHARE of them centred on foreground.
 */
export function sampleLabeledPatch(images: LabeledImage[], size: number, rng: Rng) {
  if (rng.next() < FOREGROUND_PATCH_SHARE) {
    const patch = foregroundPatch(images[rng.int(images.length)], size, rng);
    if (patch) return patch;
  }
  for (let attempt = 0; ; attempt++) {
    const image = images[rng.int(images.length)];
    const patch = randomCrop(image, size, rng, image.labels);
    if (attempt === 7 || knownPixels(patch.labels as Uint8Array) > 0.01 * size * size) return patch;
  }
}

function pick(grads: tf.NamedTensorMap, variables: tf.Variable[]): Array<{ name: string; tensor: tf.Tensor }> {
  return variables.map((v) => ({ name: v.name, tensor: grads[v.name] }));
}

function assertLabelRange(labels: Uint8Array, classCount: number): void {
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (v !== 255 && v >= classCount) throw new Error(`label value ${v} is outside 0..${classCount - 1} (255 = unknown)`);
  }
}

function assignHead(model: UNet, weights: Map<string, tf.Tensor>): void {
  for (const [name, v] of model.params) {
    const w = weights.get(name);
    if (!isHeadParam(name) || !w) continue;
    if (!tf.util.arraysEqual(w.shape, v.shape)) throw new Error(`head weight '${name}' has shape [${w.shape}], this model needs [${v.shape}]`);
    v.assign(w);
  }
}

/** Saves a trained segmentation model (weights and meta, no optimizer state). */
export async function saveSegmentationModel(file: string, model: UNet, meta: SegmentationModelMeta): Promise<void> {
  await saveCheckpoint(file, { meta, groups: { weights: model.weights() } });
}

export function loadSegmentationModel(file: string): { model: UNet; meta: SegmentationModelMeta } {
  const ckpt = loadCheckpoint<SegmentationModelMeta>(file);
  try {
    if (ckpt.meta.kind !== 'segmentation') throw new Error(`${file} is not a segmentation model`);
    return { model: UNet.fromWeights(ckpt.meta.config, ckpt.groups.weights), meta: ckpt.meta };
  } finally {
    disposeCheckpoint(ckpt);
  }
}
