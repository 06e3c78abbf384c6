/**
 * The building blocks every evaluation shares: a dataset with ground truth prepared once
 * (normalised images, training labels, Otsu baselines), pretraining cached on disk per task set,
 * fine-tuning on a labeled subset, and scoring a split. `maskloop eval`, `eval curve` and
 * `eval loop` are compositions of these.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { evenlySpread, UNKNOWN, type LabeledImage } from '../engine/data';
import { imageSource } from '../engine/infer/predict';
import { foregroundOf, propose, type Proposal, type ProposalOptions } from '../engine/infer/propose';
import { instanceLabels, labeled, prepareImage, semanticLabels, type PreparedImage } from '../engine/input';
import { confusion, diceOf, iouOf, matchInstances, otsuSegment } from '../engine/metrics';
import type { Architecture } from '../engine/model/unet';
import { Rng } from '../shared/rng';
import { finetune, type FinetuneOptions, type Initialisation } from '../engine/train/finetune';
import type { ConsistencyOptions } from '../engine/train/consistency';
import type { JointDenoisingOptions } from '../engine/train/jointDenoising';
import type { TrainingProgress } from '../engine/train/loop';
import type { LearningRateSchedule } from '../engine/train/optimizerState';
import { loadPretextWeights, pretrain } from '../engine/train/pretrain';
import { choosesAugmentation, evaluateOnVal, raceStep } from '../engine/train/select';
import { TRAINING } from '../shared/training';
import { connectedComponents } from '../imaging/instances';
import { percentileRanges, spanFloor } from '../imaging/normalize';
import { downsampleMask, downsamplePixels, upsampleMask } from '../imaging/resample';
import type { Dataset, LabeledImage as GroundTruth } from '../imaging/datasets';
import type { RawImage } from '../imaging/types';
import { bandChangedPixels, objectEdits, type ObjectEdits } from './correction';
import { filterBank, PixelForest } from './pixelClassifier';
import { parseTarget } from '../shared/target';

export type TargetKind = 'semantic' | 'instance';

/** One ground-truth image ready for the engine. */
export interface EvalImage {
  name: string;
  /** Full-resolution ground truth: every score is computed at this resolution. */
  gt: GroundTruth;
  /** The normalised image at the working scale. */
  image: PreparedImage;
  /** Training labels for the target (semantic classes or background/interior/boundary), at the working scale. */
  labels: Uint8Array;
}

export interface EvalDataset {
  name: string;
  target: TargetKind;
  polarity: Dataset['polarity'];
  /** Working scale: images are processed downsampled by this integer factor. */
  downsample: number;
  train: EvalImage[];
  val: EvalImage[];
  test: EvalImage[];
  /** Images without labels (the set's unlabeled folder), for pretraining only. */
  unlabeled: PreparedImage[];
}


function targetLabels(gt: GroundTruth, target: TargetKind, factor: number): Uint8Array {
  const { width, height } = gt.image;
  const [w, h] = [Math.ceil(width / factor), Math.ceil(height / factor)];
  if (target === 'instance') {
    if (!gt.instances) throw new Error(`${gt.name} has no instance labels; use the semantic target`);
    return instanceLabels(factor > 1 ? downsampleMask(gt.instances, width, height, factor) : gt.instances, w, h);
  }
  return semanticLabels(factor > 1 ? downsampleMask(gt.foreground, width, height, factor) : gt.foreground);
}

function workingImage(raw: RawImage, factor: number, minSpans: number[]): PreparedImage {
  const full = prepareImage(raw, { minSpans });
  if (factor === 1) return full;
  const small = downsamplePixels(full.pixels, full.width, full.height, full.channels, factor);
  return { ...full, ...small };
}

/**
 * Normalises every image of the set once, at the working scale (`downsample`, default 1);
 * `valImages` caps the val split and `testImages` the test split (quick runs); the test images
 * kept are spread evenly over the split, so a capped BBBC039 test still spans its plates.
 */
export function prepareDataset(data: Dataset, target: TargetKind, options: { valImages?: number; testImages?: number; downsample?: number } = {}): EvalDataset {
  const factor = options.downsample ?? 1;
  if (!Number.isInteger(factor) || factor < 1) throw new Error(`downsample must be a positive integer, got ${factor}`);
  // The window floor comes from the images a user would have unlabeled (pretraining's pool), not from val or test.
  const minSpans = spanFloor([...(data.splits.train ?? []), ...data.unlabeled].map((im) => percentileRanges(im.image)));
  const prep = (list: GroundTruth[] | undefined): EvalImage[] =>
    (list ?? []).map((gt) => ({ name: gt.name, gt, image: workingImage(gt.image, factor, minSpans), labels: targetLabels(gt, target, factor) }));
  const val = data.splits.val ?? [];
  return {
    name: data.name,
    target,
    polarity: data.polarity,
    downsample: factor,
    train: prep(data.splits.train),
    val: prep(options.valImages ? val.slice(0, options.valImages) : val),
    test: prep(evenlySpread(data.splits.test ?? [], options.testImages)),
    unlabeled: data.unlabeled.map((u) => workingImage(u.image, factor, minSpans)),
  };
}

/** The k training images of a run: a seeded random subset, so several seeds give several subsets. */
export function chooseLabeled<T>(train: T[], k: number | undefined, seed: number): T[] {
  if (!k || k >= train.length) return train;
  return new Rng(seed).shuffle([...train]).slice(0, k);
}

export function asLabeled(images: EvalImage[]): LabeledImage[] {
  return images.map((im) => labeled(im.image, im.labels));
}

/** Training settings shared by pretraining and fine-tuning in one evaluation. */
export interface EvalTraining {
  arch: Architecture;
  batchSize: number;
  patchSize: number;
  learningRate: number;
  /** Fine-tuning's learning-rate schedule. */
  schedule: LearningRateSchedule;
  /** Pretraining's (constant) learning rate. */
  pretrainLearningRate: number;
  /** A pretrained encoder's fine-tuning rate as a share of the decoder's (FinetuneOptions.encoderRateFactor). */
  encoderRateFactor?: number;
  /** false: never try test-time augmentation (default: chosen on val, as maskloop train does). */
  tta?: boolean;
  onProgress?: (p: TrainingProgress) => void;
  signal?: AbortSignal;
}

export interface PretrainedInit {
  init: Initialisation;
  /** Wall time of the pretraining itself (0 when read from the cache). */
  seconds: number;
  cached: boolean;
}

/**
 * Pretrains on the set's train split and unlabeled folder with their labels unused (val and test
 * stay unseen) and returns the weights as an initialisation. With a
 * cache folder the checkpoint is kept there and reused by later runs with the same settings;
 * an interrupted pretraining resumes from it.
 */
export async function pretrainedInit(
  ds: EvalDataset,
  tasks: string[],
  options: EvalTraining & { steps: number; seed: number; cacheDir?: string },
): Promise<PretrainedInit> {
  const name = tasks.join('+');
  const file = options.cacheDir
    ? path.join(options.cacheDir, `${ds.name}-${name}-${options.steps}steps-b${options.batchSize}p${options.patchSize}-seed${options.seed}${options.arch.norm === 'batch' ? '-bn' : ''}${options.pretrainLearningRate === TRAINING.pretrainLearningRate ? '' : `-lr${options.pretrainLearningRate}`}.mlckpt`)
    : undefined;
  if (file && fs.existsSync(file)) {
    const ckpt = loadPretextWeights(file);
    if (ckpt.meta.step >= ckpt.meta.totalSteps) return { init: { name, weights: ckpt.weights, trained: ckpt.meta.trained }, seconds: 0, cached: true };
    for (const t of ckpt.weights.values()) t.dispose();
  }
  if (file) fs.mkdirSync(path.dirname(file), { recursive: true });
  const t0 = performance.now();
  const images = [...ds.train.map((im) => im.image), ...ds.unlabeled];
  const result = await pretrain({
    tasks, images, config: options.arch, steps: options.steps, batchSize: options.batchSize, patchSize: options.patchSize, learningRate: options.pretrainLearningRate,
    seed: options.seed, checkpointFile: file, resume: true, checkpointEvery: 100, onProgress: options.onProgress, signal: options.signal,
  });
  const weights = new Map<string, tf.Tensor>([...result.model.weights()].map(([n, v]) => [n, tf.clone(v)]));
  result.model.dispose();
  if (result.status === 'cancelled') {
    for (const t of weights.values()) t.dispose();
    throw new EvalCancelled();
  }
  return { init: { name, weights, trained: result.trained }, seconds: (performance.now() - t0) / 1000, cached: false };
}

export class EvalCancelled extends Error {
  constructor() {
    super('evaluation cancelled');
    this.name = 'EvalCancelled';
  }
}

export function disposeInit(init: Initialisation): void {
  for (const t of init.weights?.values() ?? []) t.dispose();
}

/** Fine-tunes on the given labeled images from an initialisation (undefined = scratch). */
export async function finetuneOn(
  ds: EvalDataset,
  images: EvalImage[],
  init: Initialisation | undefined,
  options: EvalTraining & {
    steps: number;
    seed: number;
    /** Held-out images (the val split): what they decide is FinetuneOptions' `calibrate` and `keepBest`. */
    valImages?: EvalImage[];
    calibrate?: boolean;
    keepBest?: boolean;
    /** Consistency training and joint denoising on `unlabeled` (semi-supervised; FinetuneOptions). */
    consistency?: ConsistencyOptions;
    jointDenoising?: JointDenoisingOptions;
    unlabeled?: PreparedImage[];
    /** A scratch file: where given, the run pauses at its race step (raceStep) and records the val Dice there as `raceValDice`. */
    raceCheckpoint?: string;
  },
) {
  const target = parseTarget(ds.target);
  const val = options.valImages ? asLabeled(options.valImages) : undefined;
  const run: FinetuneOptions = {
    images: asLabeled(images), target, config: options.arch, init,
    steps: options.steps, batchSize: options.batchSize, patchSize: options.patchSize,
    // A warm start (init.trained 'segmentation') continues at finetune's gentler rate.
    learningRate: options.learningRate,
    schedule: options.schedule, encoderRateFactor: options.encoderRateFactor,
    valImages: val, calibrate: options.calibrate, keepBest: options.keepBest,
    consistency: options.consistency, jointDenoising: options.jointDenoising, unlabeled: options.unlabeled,
    seed: options.seed,
    onProgress: options.onProgress, signal: options.signal,
  };
  // Paused at the race step and continued: the same run (a resumed fine-tuning continues exactly),
  // and the val Dice the product's race (selectInitialisation) would decide on. (A slower encoder
  // keeps no checkpoint: those runs do not race.)
  const pauseAt = options.raceCheckpoint && val && (options.encoderRateFactor ?? 1) === 1 ? raceStep(options.steps) : null;
  let raceValDice: number | undefined;
  if (pauseAt !== null && options.raceCheckpoint) {
    fs.rmSync(options.raceCheckpoint, { force: true });
    const paused = await finetune({ ...run, checkpointFile: options.raceCheckpoint, pauseAt });
    paused.model.dispose();
    if (paused.status === 'cancelled') throw new EvalCancelled();
    raceValDice = paused.pausedValDice;
  }
  const result = await finetune(pauseAt !== null ? { ...run, checkpointFile: options.raceCheckpoint, resume: true } : run);
  if (pauseAt !== null) fs.rmSync(options.raceCheckpoint as string, { force: true });
  if (result.status === 'cancelled') {
    result.model.dispose();
    throw new EvalCancelled();
  }
  // As maskloop train does: a first model decides on test-time augmentation, a warm start keeps its parent's decision.
  if (val && options.tta !== false && init?.trained !== 'segmentation') {
    const seedThreshold = result.meta.seedThreshold;
    result.meta.tta = (await choosesAugmentation(result.model, target, val, await evaluateOnVal(result.model, target, val, { seedThreshold }), seedThreshold)).tta;
  }
  return { model: result.model, meta: result.meta, raceValDice };
}

export interface SplitScores {
  /** Means over the images that have ground-truth foreground (all images when none has). */
  dice: number;
  iou: number;
  f1?: number;
  ap?: number;
  /** Images without ground-truth foreground, when the split has any. */
  emptyImages?: number;
  /** Their mean share of pixels segmented as foreground (what a user would have to erase). */
  emptyForeground?: number;
}

/** The model's proposal for an image, its mask brought back to full resolution. */
export async function proposalFor(model: Parameters<typeof propose>[0], ds: EvalDataset, im: EvalImage, tiling: ProposalOptions = {}): Promise<Proposal> {
  // Default tiling: a whole image per pass up to 1024 px, tiles beyond.
  const p = await propose(model, parseTarget(ds.target), imageSource(im.image), tiling);
  if (ds.downsample === 1) return p;
  const { width, height } = im.gt.image;
  return { ...p, width, height, mask: upsampleMask(p.mask, ds.downsample, width, height) };
}

/** A segmentation of one image: its foreground, and its objects where the set is scored as instances. */
interface Segmentation {
  foreground: Uint8Array;
  objects?: Int32Array;
}

interface ImageScores {
  dice: number;
  iou: number;
  f1: number;
  ap: number;
  /** The ground truth marks no pixel as foreground (an empty field of view). */
  empty: boolean;
  /** Share of the image's pixels segmented as foreground. */
  foregroundShare: number;
  /** Pixels to correct (false positives and negatives) and pixels to draw (ground-truth foreground). */
  changedPixels: number;
  drawPixels: number;
  /** Pixels to correct outside the band around the true boundary (correction.ts, BOUNDARY_TOLERANCE). */
  bandChangedPixels: number;
  /** Instance sets: the object edits from the segmentation's objects to the true ones, and how many true objects there are. */
  edits?: ObjectEdits;
  trueObjects?: number;
}

/** Foreground Dice and IoU, and F1/AP at IoU 0.5 when there are objects, against the ground truth. */
function imageScores(seg: Segmentation, im: EvalImage): ImageScores {
  const counts = confusion(seg.foreground, im.gt.foreground);
  const scores: ImageScores = {
    dice: diceOf(counts), iou: iouOf(counts), f1: 0, ap: 0,
    empty: counts.tp + counts.fn === 0, foregroundShare: (counts.tp + counts.fp) / seg.foreground.length,
    changedPixels: counts.fp + counts.fn, drawPixels: counts.tp + counts.fn,
    bandChangedPixels: bandChangedPixels(seg.foreground, im.gt.foreground, im.gt.image.width, im.gt.image.height),
  };
  if (seg.objects && im.gt.instances) {
    const [m] = matchInstances(seg.objects, im.gt.instances, [0.5]);
    scores.f1 = m.f1;
    scores.ap = m.ap;
    scores.edits = objectEdits(seg.objects, im.gt.instances);
    scores.trueObjects = im.gt.instanceCount ?? new Set(im.gt.instances.filter((v) => v > 0)).size;
  }
  return scores;
}

/**
 * Mean per-image scores; F1 and AP only for instance sets. Images without ground-truth foreground
 * are left out of the means and reported by the share of their pixels segmented as foreground:
 * on them Dice is 1 or 0 depending on whether a single pixel is marked, which made one empty
 * field of BBBC039's 20 quick test images swing a run's mean Dice by 0.05.
 */
function meanScores(ds: EvalDataset, perImage: ImageScores[]): SplitScores {
  const empty = perImage.filter((s) => s.empty);
  const scored = empty.length < perImage.length ? perImage.filter((s) => !s.empty) : perImage;
  const mean = (list: ImageScores[], key: 'dice' | 'iou' | 'f1' | 'ap' | 'foregroundShare') => list.reduce((a, s) => a + s[key], 0) / list.length;
  return {
    dice: mean(scored, 'dice'), iou: mean(scored, 'iou'),
    ...(ds.target === 'instance' ? { f1: mean(scored, 'f1'), ap: mean(scored, 'ap') } : {}),
    ...(empty.length ? { emptyImages: empty.length, emptyForeground: mean(empty, 'foregroundShare') } : {}),
  };
}

export interface ProposalScores extends SplitScores {
  /**
   * What correcting the proposals into the ground truth costs against drawing it from nothing:
   * pixels whose foreground state is wrong over ground-truth foreground pixels, pooled over every
   * image (an empty field's pixels to erase included).
   */
  correctionFraction: number;
  /** The same, forgiving pixels within BOUNDARY_TOLERANCE of the true boundary. */
  bandCorrectionFraction: number;
  /** Instance sets: object edits summed over the images, and the true objects there are. */
  objectEdits?: ObjectEdits & { trueObjects: number };
}

/** Mean per-image scores of the model's proposals on a split, and what correcting them costs. */
export async function scoreSplit(model: Parameters<typeof propose>[0], ds: EvalDataset, images: EvalImage[], tiling: ProposalOptions = {}): Promise<ProposalScores> {
  const perImage: ImageScores[] = [];
  for (const im of images) {
    const { mask } = await proposalFor(model, ds, im, tiling);
    perImage.push(imageScores({ foreground: foregroundOf(mask), objects: ds.target === 'instance' && mask instanceof Int32Array ? mask : undefined }, im));
    // Progress events and cancellation get a turn between images.
    await new Promise((r) => setImmediate(r));
  }
  const drawn = perImage.reduce((a, s) => a + s.drawPixels, 0);
  const pooled = (key: 'changedPixels' | 'bandChangedPixels') => (drawn > 0 ? perImage.reduce((a, s) => a + s[key], 0) / drawn : NaN);
  const edits = perImage.filter((s) => s.edits);
  const sum = (key: keyof ObjectEdits) => edits.reduce((a, s) => a + (s.edits as ObjectEdits)[key], 0);
  return {
    ...meanScores(ds, perImage), correctionFraction: pooled('changedPixels'), bandCorrectionFraction: pooled('bandChangedPixels'),
    ...(edits.length ? { objectEdits: { add: sum('add'), delete: sum('delete'), split: sum('split'), merge: sum('merge'), trueObjects: edits.reduce((a, s) => a + (s.trueObjects as number), 0) } } : {}),
  };
}

/** Otsu's threshold on the raw image, the baseline every learned figure is compared with. */
export function otsuScores(ds: EvalDataset, images: EvalImage[]): SplitScores {
  return meanScores(ds, images.map((im) => {
    const foreground = otsuSegment(im.gt.image, { polarity: ds.polarity });
    const objects = ds.target === 'instance' ? connectedComponents(foreground, im.gt.image.width, im.gt.image.height).labels : undefined;
    return imageScores({ foreground, objects }, im);
  }));
}

/**
 * The ilastik-style pixel classifier (pixelClassifier.ts) trained on each of several label
 * subsets, scored like Otsu on `images`: its foreground at 0.5, objects as connected components
 * (what an ilastik user gets from pixel classification then thresholding). Each scored image's
 * filters are computed once for all the forests.
 */
export function pixelClassifierScores(ds: EvalDataset, subsets: { images: EvalImage[]; seed: number }[], images: EvalImage[]): SplitScores[] {
  const featuresOf = (im: EvalImage) => filterBank(im.image.pixels, im.image.width, im.image.height, im.image.channels);
  // Training labels to foreground (1), background (0) and left out (anything else: unknown pixels).
  const forests = subsets.map(({ images: labeledImages, seed }) => PixelForest.train(labeledImages.map((im) => ({
    features: featuresOf(im),
    labels: Uint8Array.from(im.labels, (v) => (v === UNKNOWN ? 2 : v > 0 ? 1 : 0)),
  })), { seed }));
  const perImage = forests.map((): ImageScores[] => []);
  for (const im of images) {
    const features = featuresOf(im);
    const { width, height } = im.gt.image;
    forests.forEach((forest, f) => {
      const working = Uint8Array.from(forest.predict(features), (p) => (p >= 0.5 ? 1 : 0));
      const foreground = ds.downsample === 1 ? working : upsampleMask(working, ds.downsample, width, height);
      const objects = ds.target === 'instance' ? connectedComponents(foreground, width, height).labels : undefined;
      perImage[f].push(imageScores({ foreground, objects }, im));
    });
  }
  return perImage.map((scores) => meanScores(ds, scores));
}
