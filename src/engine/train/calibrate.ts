/**
 * Calibrating the foreground decision after fine-tuning. A short fine-tuning ends with a network
 * whose probabilities are off by a run-dependent bias: measured on BBBC039 and ISBI, 50-step
 * models at 0.5 marked up to 4x more false-positive than false-negative pixels, and the
 * Dice-best threshold on the test split ranged from 0.4 to 0.8 between runs. The threshold that
 * is best on held-out labeled images (the val split) is chosen and folded into the head's
 * background bias: every consumer of the model (proposals, exports, the app) then gets the
 * calibrated decision at its usual 0.5.
 */
import * as tf from '@tensorflow/tfjs';
import type { LabeledImage } from '../data';
import { cropRect, evenlySpread, UNKNOWN } from '../data';
import { foregroundProbability, imageSource, pixelClass, predictTiled } from '../infer/predict';
import { DEFAULT_SEED_THRESHOLD, isForegroundPixel, separateObjects } from '../infer/propose';
import { diceOf, labeledObjectF1, labeledObjects } from '../metrics';
import type { UNet } from '../model/unet';
import type { SegmentationTarget } from '../target';

/** Labeled images predicted for the calibration, spread over those given. */
export const CALIBRATION_IMAGES = 16;
/** Larger images are calibrated on a central window of this edge, which bounds its time. */
export const CALIBRATION_WINDOW = 2048;
/** Thresholds considered: 0.1 to 0.9 in steps of 0.05. */
export const CALIBRATION_THRESHOLDS = Array.from({ length: 17 }, (_, i) => Math.round((0.1 + 0.05 * i) * 100) / 100);
/**
 * Dice on the calibration images a threshold must gain over 0.5 to replace it: where several
 * thresholds score about the same, the images say nothing about which is better.
 */
export const CALIBRATION_MIN_GAIN = 0.002;

const BINS = 200;

export interface Calibration {
  /** The foreground threshold chosen (0.5 = unchanged). */
  threshold: number;
  /** Pooled foreground Dice on the calibration images at 0.5 and at the chosen threshold. */
  diceBefore: number;
  diceAfter: number;
}

/**
 * Whether the foreground decision is a threshold on one probability (a binary model's sigmoid,
 * or 1 − background for the instance target); a multi-class model takes the most probable class.
 */
function hasForegroundThreshold(target: SegmentationTarget): boolean {
  return target.kind === 'instance' || target.classes === 1;
}

/**
 * Histograms of the foreground probability over labeled foreground and background pixels, and
 * the counts of the most-probable-class decision (the multi-class rule).
 */
async function probabilityHistograms(model: UNet, images: LabeledImage[]) {
  const foreground = new Float64Array(BINS);
  const background = new Float64Array(BINS);
  const mostProbable = { tp: 0, fp: 0, fn: 0, tn: 0 };
  const channels = model.config.outChannels;
  for (const full of images) {
    const image = windowOf(full);
    await predictTiled(model, imageSource(image), (y0, rows, probs) => {
      const base = y0 * image.width;
      for (let i = 0; i < rows * image.width; i++) {
        const label = image.labels[base + i];
        if (label === UNKNOWN) continue;
        const p = foregroundProbability(probs, i * channels, channels);
        const bin = Math.min(BINS - 1, Math.max(0, Math.floor(p * BINS)));
        (label > 0 ? foreground : background)[bin]++;
        const marked = pixelClass(probs, i * channels, channels) > 0;
        if (marked && label > 0) mostProbable.tp++;
        else if (marked) mostProbable.fp++;
        else if (label > 0) mostProbable.fn++;
        else mostProbable.tn++;
      }
    });
  }
  return { foreground, background, mostProbable };
}

function windowOf(image: LabeledImage): LabeledImage {
  const w = Math.min(image.width, CALIBRATION_WINDOW);
  const h = Math.min(image.height, CALIBRATION_WINDOW);
  if (w === image.width && h === image.height) return image;
  const crop = cropRect(image, (image.width - w) >> 1, (image.height - h) >> 1, w, h, image.labels);
  return { ...image, width: w, height: h, pixels: crop.pixels, labels: crop.labels as Uint8Array };
}

/** Pooled Dice of "probability ≥ threshold" from the two histograms. */
function diceAt(threshold: number, foreground: Float64Array, background: Float64Array): number {
  const from = Math.round(threshold * BINS);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let b = 0; b < BINS; b++) {
    if (b >= from) {
      tp += foreground[b];
      fp += background[b];
    } else {
      fn += foreground[b];
    }
  }
  return tp + fp + fn === 0 ? 1 : (2 * tp) / (2 * tp + fp + fn);
}

/** The threshold with the best Dice, kept at 0.5 unless another gains CALIBRATION_MIN_GAIN. */
export function chooseThreshold(foreground: Float64Array, background: Float64Array): Calibration {
  const diceBefore = diceAt(0.5, foreground, background);
  let best = { threshold: 0.5, diceBefore, diceAfter: diceBefore };
  for (const t of CALIBRATION_THRESHOLDS) {
    const d = diceAt(t, foreground, background);
    if (d > best.diceAfter && d >= diceBefore + CALIBRATION_MIN_GAIN) best = { threshold: t, diceBefore, diceAfter: d };
  }
  return best;
}

/**
 * Folds a foreground threshold into the head's bias so that the model's 0.5 decision becomes the
 * threshold t. Binary: the foreground logit moves by −logit(t). Softmax: 1 − p(background) ≥ t
 * exactly when the background logit, moved by +logit(t), no longer has half the probability.
 */
export function foldThreshold(model: UNet, threshold: number): void {
  if (threshold === 0.5) return;
  const shift = Math.log(threshold / (1 - threshold));
  const bias = model.params.get('head.b');
  if (!bias) throw new Error('the U-Net has no head bias to fold a threshold into');
  const values = bias.dataSync().slice() as Float32Array;
  values[0] += model.config.outChannels === 1 ? -shift : shift;
  const shifted = tf.tensor(values, bias.shape);
  bias.assign(shifted);
  shifted.dispose();
}

/**
 * Pooled foreground Dice on (up to CALIBRATION_IMAGES of) held-out labeled images: what the model
 * scores there once calibrated (`calibrated`), or as it decides now. Fine-tuning compares its
 * weights along the way by it.
 */
export async function heldOutDice(model: UNet, target: SegmentationTarget, images: LabeledImage[], calibrated: boolean): Promise<number> {
  const { foreground, background, mostProbable } = await probabilityHistograms(model, evenlySpread(images, CALIBRATION_IMAGES));
  if (!hasForegroundThreshold(target)) return diceOf(mostProbable);
  return calibrated ? chooseThreshold(foreground, background).diceAfter : diceAt(0.5, foreground, background);
}

/**
 * Seed thresholds considered for the instance target. High ones belong in the list: a network
 * trained on interior/boundary labels is sure of an object's core and unsure towards its rim, so
 * touching objects whose interiors join at 0.5 often separate at 0.9 and more (measured on
 * BBBC039 with five labels: test F1 0.86 at 0.5, 0.88–0.90 at 0.95, and val agreed).
 */
export const SEED_THRESHOLDS = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99];

export interface SeedCalibration {
  /** The interior probability from which a pixel seeds an object (DEFAULT_SEED_THRESHOLD = unchanged). */
  threshold: number;
  /** Mean F1 at IoU 0.5 on the calibration images at the default and at the chosen threshold. */
  f1Before: number;
  f1After: number;
}

/**
 * Instance target: chooses the seed threshold on (up to CALIBRATION_IMAGES of) held-out labeled
 * images by the F1 of the objects proposals would make there, keeping the default unless another
 * gains CALIBRATION_MIN_GAIN. Call it after calibrateForeground: the objects grow into the
 * foreground the model then decides.
 */
export async function calibrateSeeds(model: UNet, target: SegmentationTarget, images: LabeledImage[]): Promise<SeedCalibration> {
  const unchanged = { threshold: DEFAULT_SEED_THRESHOLD, f1Before: NaN, f1After: NaN };
  if (target.kind !== 'instance' || images.length === 0) return unchanged;
  const channels = model.config.outChannels;
  // Every threshold is scored on an image before the next is predicted, so one image's maps are held at a time.
  const totals = SEED_THRESHOLDS.map(() => 0);
  const calibrationImages = evenlySpread(images, CALIBRATION_IMAGES);
  for (const full of calibrationImages) {
    const image = windowOf(full);
    const interior = new Float32Array(image.width * image.height);
    const foreground = new Uint8Array(interior.length);
    await predictTiled(model, imageSource(image), (y0, rows, probs) => {
      const base = y0 * image.width;
      for (let i = 0; i < rows * image.width; i++) {
        interior[base + i] = probs[i * channels + 1];
        foreground[base + i] = isForegroundPixel(target, probs, i * channels, channels) ? 1 : 0;
      }
    });
    const truth = labeledObjects(image);
    SEED_THRESHOLDS.forEach((t, k) => {
      const seeds = Uint8Array.from(interior, (p) => (p >= t ? 1 : 0));
      totals[k] += labeledObjectF1(separateObjects(seeds, foreground, image.width, image.height), image, truth);
    });
  }
  const f1 = totals.map((total) => total / calibrationImages.length);
  const f1Before = f1[SEED_THRESHOLDS.indexOf(DEFAULT_SEED_THRESHOLD)];
  let best = { threshold: DEFAULT_SEED_THRESHOLD, f1Before, f1After: f1Before };
  SEED_THRESHOLDS.forEach((t, k) => {
    if (f1[k] > best.f1After && f1[k] >= f1Before + CALIBRATION_MIN_GAIN) best = { threshold: t, f1Before, f1After: f1[k] };
  });
  return best;
}

/** Chooses the foreground threshold on (up to CALIBRATION_IMAGES of) the given labeled images and folds it into the model. */
export async function calibrateForeground(model: UNet, target: SegmentationTarget, images: LabeledImage[]): Promise<Calibration> {
  const unchanged = { threshold: 0.5, diceBefore: NaN, diceAfter: NaN };
  if (!hasForegroundThreshold(target) || images.length === 0) return unchanged;
  const { foreground, background } = await probabilityHistograms(model, evenlySpread(images, CALIBRATION_IMAGES));
  // Without both kinds of labeled pixels no threshold is better than another.
  if (foreground.every((v) => v === 0) || background.every((v) => v === 0)) return unchanged;
  const calibration = chooseThreshold(foreground, background);
  foldThreshold(model, calibration.threshold);
  return calibration;
}
