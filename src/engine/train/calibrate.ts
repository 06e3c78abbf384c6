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
import { diceOf, labeledObjectF1, labeledObjects, matchInstances } from '../metrics';
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

/**
 * A threshold other than the default is kept only where choosing it generalises: each calibration
 * image is cut into UNITS_PER_SIDE² units (quadrants), every unit is scored at the threshold chosen
 * on the other units, and that must beat the default by CALIBRATION_MIN_GAIN. With one or two val
 * images the best threshold is mostly those images' quirks: in BBBC039 sessions with one val image
 * the chosen foreground threshold swung between 0.15 and 0.9 from one retraining to the next, and
 * a model thresholded on one unusual image proposed 17 spurious objects per 100 nuclei.
 */
export const UNITS_PER_SIDE = 2;

/** Which unit (UNITS_PER_SIDE² per image) pixel (x, y) of a width × height image belongs to. */
function unitOf(x: number, y: number, width: number, height: number): number {
  return Math.min(UNITS_PER_SIDE - 1, Math.floor((y * UNITS_PER_SIDE) / height)) * UNITS_PER_SIDE + Math.min(UNITS_PER_SIDE - 1, Math.floor((x * UNITS_PER_SIDE) / width));
}

/** The rectangles of an image's units, in unitOf's order. */
function unitRects(width: number, height: number): Array<{ x0: number; y0: number; w: number; h: number }> {
  const edges = (n: number) => Array.from({ length: UNITS_PER_SIDE + 1 }, (_, i) => Math.ceil((i * n) / UNITS_PER_SIDE));
  const [xs, ys] = [edges(width), edges(height)];
  return Array.from({ length: UNITS_PER_SIDE ** 2 }, (_, u) => {
    const [i, j] = [u % UNITS_PER_SIDE, Math.floor(u / UNITS_PER_SIDE)];
    return { x0: xs[i], y0: ys[j], w: xs[i + 1] - xs[i], h: ys[j + 1] - ys[j] };
  });
}

/** A rectangle of a row-major map. */
function cropMap<T extends Int32Array | Uint8Array>(map: T, width: number, r: { x0: number; y0: number; w: number; h: number }): T {
  const out = new (map.constructor as { new (n: number): T })(r.w * r.h);
  for (let y = 0; y < r.h; y++) out.set(map.subarray((r.y0 + y) * width + r.x0, (r.y0 + y) * width + r.x0 + r.w), y * r.w);
  return out;
}

/** Matches at one threshold: pixels for the foreground, objects at IoU 0.5 for seeds. */
interface Counts {
  tp: number;
  fp: number;
  fn: number;
}

/** Dice of pixel counts, F1 of object counts: the same formula. */
function overlapOf(c: Counts): number {
  return c.tp + c.fp + c.fn === 0 ? 1 : (2 * c.tp) / (2 * c.tp + c.fp + c.fn);
}

/**
 * The index of the best score, kept at the default's unless another gains CALIBRATION_MIN_GAIN
 * over it: where thresholds score about the same, the images cannot tell them apart.
 */
function bestOf(scores: number[], defaultIndex: number): number {
  let best = defaultIndex;
  scores.forEach((v, k) => {
    if (v > scores[best] && v >= scores[defaultIndex] + CALIBRATION_MIN_GAIN) best = k;
  });
  return best;
}

/**
 * Leave one unit out: whether each unit, counted at the threshold chosen (bestOf, pooled) on the
 * other units, beats the default by CALIBRATION_MIN_GAIN, pooled over all units.
 * `unitCounts[u][k]`: unit u's counts at threshold k.
 */
function choiceGeneralises(unitCounts: Counts[][], defaultIndex: number): boolean {
  if (unitCounts.length < 2) return false;
  const sum = (cs: Counts[]) => cs.reduce((a, c) => ({ tp: a.tp + c.tp, fp: a.fp + c.fp, fn: a.fn + c.fn }), { tp: 0, fp: 0, fn: 0 });
  const totals = unitCounts[0].map((_, k) => sum(unitCounts.map((row) => row[k])));
  const heldOut = sum(unitCounts.map((row) => {
    const others = totals.map((t, k) => overlapOf({ tp: t.tp - row[k].tp, fp: t.fp - row[k].fp, fn: t.fn - row[k].fn }));
    return row[bestOf(others, defaultIndex)];
  }));
  return overlapOf(heldOut) >= overlapOf(totals[defaultIndex]) + CALIBRATION_MIN_GAIN;
}

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
 * Histograms of the foreground probability over labeled foreground and background pixels, per
 * unit of each image, and the counts of the most-probable-class decision (the multi-class rule).
 */
async function probabilityHistograms(model: UNet, images: LabeledImage[]) {
  const units: PixelHistograms[] = [];
  const mostProbable = { tp: 0, fp: 0, fn: 0, tn: 0 };
  const channels = model.config.outChannels;
  for (const full of images) {
    const image = windowOf(full);
    const mine = Array.from({ length: UNITS_PER_SIDE ** 2 }, () => ({ foreground: new Float64Array(BINS), background: new Float64Array(BINS) }));
    units.push(...mine);
    await predictTiled(model, imageSource(image), (y0, rows, probs) => {
      const base = y0 * image.width;
      for (let i = 0; i < rows * image.width; i++) {
        const label = image.labels[base + i];
        if (label === UNKNOWN) continue;
        const p = foregroundProbability(probs, i * channels, channels);
        const bin = Math.min(BINS - 1, Math.max(0, Math.floor(p * BINS)));
        const unit = mine[unitOf(i % image.width, y0 + Math.floor(i / image.width), image.width, image.height)];
        (label > 0 ? unit.foreground : unit.background)[bin]++;
        const marked = pixelClass(probs, i * channels, channels) > 0;
        if (marked && label > 0) mostProbable.tp++;
        else if (marked) mostProbable.fp++;
        else if (label > 0) mostProbable.fn++;
        else mostProbable.tn++;
      }
    });
  }
  return { units, mostProbable };
}

function windowOf(image: LabeledImage): LabeledImage {
  const w = Math.min(image.width, CALIBRATION_WINDOW);
  const h = Math.min(image.height, CALIBRATION_WINDOW);
  if (w === image.width && h === image.height) return image;
  const crop = cropRect(image, (image.width - w) >> 1, (image.height - h) >> 1, w, h, image.labels);
  return { ...image, width: w, height: h, pixels: crop.pixels, labels: crop.labels as Uint8Array };
}

/** Pixel counts of "probability ≥ threshold" from the two histograms. */
function countsAt(threshold: number, foreground: Float64Array, background: Float64Array): Counts {
  const from = Math.round(threshold * BINS);
  const c = { tp: 0, fp: 0, fn: 0 };
  for (let b = 0; b < BINS; b++) {
    if (b >= from) {
      c.tp += foreground[b];
      c.fp += background[b];
    } else {
      c.fn += foreground[b];
    }
  }
  return c;
}

/** Pooled Dice of "probability ≥ threshold" from the two histograms. */
function diceAt(threshold: number, foreground: Float64Array, background: Float64Array): number {
  return overlapOf(countsAt(threshold, foreground, background));
}

/** Histograms of the foreground probability over labeled foreground and background pixels. */
export interface PixelHistograms {
  foreground: Float64Array;
  background: Float64Array;
}

function pooledHistograms(units: PixelHistograms[]): PixelHistograms {
  const pooled = { foreground: new Float64Array(BINS), background: new Float64Array(BINS) };
  for (const u of units) {
    for (let b = 0; b < BINS; b++) {
      pooled.foreground[b] += u.foreground[b];
      pooled.background[b] += u.background[b];
    }
  }
  return pooled;
}

/**
 * The threshold with the best pooled Dice over the calibration units, kept at 0.5 unless another
 * gains CALIBRATION_MIN_GAIN and choosing it generalises from some units to the others (UNITS_PER_SIDE).
 */
export function chooseThreshold(units: PixelHistograms[]): Calibration {
  const { foreground, background } = pooledHistograms(units);
  const defaultIndex = CALIBRATION_THRESHOLDS.indexOf(0.5);
  const scores = CALIBRATION_THRESHOLDS.map((t) => diceAt(t, foreground, background));
  const [diceBefore, best] = [scores[defaultIndex], bestOf(scores, defaultIndex)];
  const generalises = best !== defaultIndex && choiceGeneralises(units.map((u) => CALIBRATION_THRESHOLDS.map((t) => countsAt(t, u.foreground, u.background))), defaultIndex);
  return generalises ? { threshold: CALIBRATION_THRESHOLDS[best], diceBefore, diceAfter: scores[best] } : { threshold: 0.5, diceBefore, diceAfter: diceBefore };
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
  const { units, mostProbable } = await probabilityHistograms(model, evenlySpread(images, CALIBRATION_IMAGES));
  if (!hasForegroundThreshold(target)) return diceOf(mostProbable);
  if (calibrated) return chooseThreshold(units).diceAfter;
  const { foreground, background } = pooledHistograms(units);
  return diceAt(0.5, foreground, background);
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
  /** Object matches per unit (unitOf) and threshold: whether the choice generalises across units. */
  const unitCounts: Counts[][] = [];
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
    const rects = unitRects(image.width, image.height);
    const mine = rects.map(() => [] as Counts[]);
    unitCounts.push(...mine);
    SEED_THRESHOLDS.forEach((t, k) => {
      const seeds = Uint8Array.from(interior, (p) => (p >= t ? 1 : 0));
      const objects = separateObjects(seeds, foreground, image.width, image.height);
      totals[k] += labeledObjectF1(objects, image, truth);
      // An object cut by a unit's edge is cut the same way in the truth.
      rects.forEach((r, u) => {
        const labels = cropMap(image.labels, image.width, r);
        const { tp, fp, fn } = matchInstances(cropMap(objects, image.width, r).map((id, i) => (labels[i] === UNKNOWN ? 0 : id)), cropMap(truth, image.width, r), [0.5])[0];
        mine[u].push({ tp, fp, fn });
      });
    });
  }
  const f1 = totals.map((total) => total / calibrationImages.length);
  const defaultIndex = SEED_THRESHOLDS.indexOf(DEFAULT_SEED_THRESHOLD);
  const best = bestOf(f1, defaultIndex);
  const generalises = best !== defaultIndex && choiceGeneralises(unitCounts, defaultIndex);
  return { threshold: SEED_THRESHOLDS[generalises ? best : defaultIndex], f1Before: f1[defaultIndex], f1After: f1[generalises ? best : defaultIndex] };
}

/** Chooses the foreground threshold on (up to CALIBRATION_IMAGES of) the given labeled images and folds it into the model. */
export async function calibrateForeground(model: UNet, target: SegmentationTarget, images: LabeledImage[]): Promise<Calibration> {
  const unchanged = { threshold: 0.5, diceBefore: NaN, diceAfter: NaN };
  if (!hasForegroundThreshold(target) || images.length === 0) return unchanged;
  const { units } = await probabilityHistograms(model, evenlySpread(images, CALIBRATION_IMAGES));
  const { foreground, background } = pooledHistograms(units);
  // Without both kinds of labeled pixels no threshold is better than another.
  if (foreground.every((v) => v === 0) || background.every((v) => v === 0)) return unchanged;
  const calibration = chooseThreshold(units);
  foldThreshold(model, calibration.threshold);
  return calibration;
}
