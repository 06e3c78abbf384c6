/**
 * Scores for masks and instances, and the Otsu baseline every learned model has to beat.
 * Plain typed arrays, no tensors: these run on decoded images and on predictions read back.
 */
import type { RawImage } from '../imaging/types';
import { instancesFromInterior, relabelSequential } from '../imaging/instances';
import { UNKNOWN, type LabeledImage } from './data';

export interface Confusion {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

/**
 * Pixel counts of a binary prediction against a binary target (non-zero = positive). Pixels where
 * `ignore` is non-zero (unlabeled, or outside the scored region) are not counted.
 */
export function confusion(
  prediction: ArrayLike<number>,
  target: ArrayLike<number>,
  ignore?: ArrayLike<number>,
): Confusion {
  if (prediction.length !== target.length || (ignore && ignore.length !== target.length)) {
    throw new RangeError(
      `length mismatch: prediction ${prediction.length}, target ${target.length}` +
        (ignore ? `, ignore ${ignore.length}` : ''),
    );
  }
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (let i = 0; i < target.length; i++) {
    if (ignore && ignore[i]) continue;
    const p = prediction[i] !== 0;
    const t = target[i] !== 0;
    if (p) {
      if (t) tp++;
      else fp++;
    } else if (t) fn++;
    else tn++;
  }
  return { tp, fp, fn, tn };
}

/** 2|P∩T| / (|P| + |T|); 1 when both are empty (nothing to find, nothing found). */
export function dice(prediction: ArrayLike<number>, target: ArrayLike<number>, ignore?: ArrayLike<number>): number {
  return diceOf(confusion(prediction, target, ignore));
}

/** |P∩T| / |P∪T|; 1 when both are empty. */
export function iou(prediction: ArrayLike<number>, target: ArrayLike<number>, ignore?: ArrayLike<number>): number {
  return iouOf(confusion(prediction, target, ignore));
}

/** Dice from counts already taken. */
export function diceOf({ tp, fp, fn }: Confusion): number {
  const denominator = 2 * tp + fp + fn;
  return denominator === 0 ? 1 : (2 * tp) / denominator;
}

/** IoU from counts already taken. */
export function iouOf({ tp, fp, fn }: Confusion): number {
  const denominator = tp + fp + fn;
  return denominator === 0 ? 1 : tp / denominator;
}

/**
 * Otsu's threshold of a histogram: the bin index k maximising the between-class variance when
 * class 0 is bins 0..k and class 1 the rest. With several maxima (an empty valley between the
 * modes) the middle of them, which may be a half bin. Returns -1 when fewer than two bins are populated.
 */
export function otsuBinFromHistogram(histogram: ArrayLike<number>): number {
  let total = 0;
  let weightedTotal = 0;
  for (let b = 0; b < histogram.length; b++) {
    total += histogram[b];
    weightedTotal += b * histogram[b];
  }
  let weight0 = 0;
  let weighted0 = 0;
  let best = -1;
  let bestFirst = -1;
  let bestLast = -1;
  for (let k = 0; k < histogram.length - 1; k++) {
    weight0 += histogram[k];
    weighted0 += k * histogram[k];
    const weight1 = total - weight0;
    if (weight0 === 0 || weight1 === 0) continue;
    const mean0 = weighted0 / weight0;
    const mean1 = (weightedTotal - weighted0) / weight1;
    const between = weight0 * weight1 * (mean0 - mean1) ** 2;
    // A relative tolerance, so that equal variances computed in different orders tie.
    if (between > best * (1 + 1e-12)) {
      best = between;
      bestFirst = k;
      bestLast = k;
    } else if (between >= best * (1 - 1e-12)) {
      bestLast = k;
    }
  }
  return bestFirst < 0 ? -1 : (bestFirst + bestLast) / 2;
}

export interface OtsuOptions {
  /** Bins for float data (default 256; integer data uses one bin per value). */
  bins?: number;
}

/**
 * Otsu's threshold of intensities: foreground is `value > threshold`. Integer data (Uint8Array,
 * Uint16Array, Int32Array...) is counted exactly, one bin per value between its min and max;
 * float data in `bins` equal bins, the threshold being the upper edge of the last class-0 bin.
 * Non-finite values are ignored.
 */
export function otsuThreshold(values: ArrayLike<number>, options: OtsuOptions = {}): number {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!(min <= max)) return NaN;
  if (min === max) return min;

  const integer = !(values instanceof Float32Array || values instanceof Float64Array || Array.isArray(values));
  if (integer && max - min <= 1 << 24) {
    const histogram = new Float64Array(max - min + 1);
    for (let i = 0; i < values.length; i++) histogram[values[i] - min]++;
    return min + otsuBinFromHistogram(histogram);
  }
  const bins = options.bins ?? 256;
  const histogram = new Float64Array(bins);
  const scale = bins / (max - min);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v >= min && v <= max) histogram[Math.min(bins - 1, Math.floor((v - min) * scale))]++;
  }
  return min + (otsuBinFromHistogram(histogram) + 1) / scale;
}

/** Which side of the threshold is the object: bright (fluorescent nuclei) or dark (EM membranes). */
export type Polarity = 'bright' | 'dark';

export interface OtsuSegmentOptions extends OtsuOptions {
  polarity?: Polarity;
}

/**
 * The classical baseline: Otsu's threshold on the image (colour images on the mean of their
 * channels), foreground on the side given by polarity. Returns 1 for foreground, 0 elsewhere.
 */
export function otsuSegment(image: RawImage, options: OtsuSegmentOptions = {}): Uint8Array {
  const intensity = image.channels === 1 ? image.data : channelMean(image);
  const threshold = otsuThreshold(intensity, options);
  const bright = (options.polarity ?? 'bright') === 'bright';
  const out = new Uint8Array(image.width * image.height);
  for (let i = 0; i < out.length; i++) {
    out[i] = intensity[i] > threshold === bright ? 1 : 0;
  }
  return out;
}

function channelMean(image: RawImage): Float32Array {
  const { data, channels } = image;
  const pixels = image.width * image.height;
  const out = new Float32Array(pixels);
  for (let i = 0, j = 0; i < pixels; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++, j++) sum += data[j];
    out[i] = sum / channels;
  }
  return out;
}

export interface InstanceScore {
  /** IoU threshold at which a predicted and a true object count as matched. */
  threshold: number;
  tp: number;
  fp: number;
  fn: number;
  precision: number;
  recall: number;
  f1: number;
  /** TP / (TP + FP + FN): the "average precision" of the DSB 2018 challenge and of Cellpose. */
  ap: number;
}

/** IoU thresholds 0.5, 0.55, ..., 0.95 of the DSB 2018 score. */
export const DSB_THRESHOLDS: readonly number[] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/**
 * Matches predicted to true objects (0 = background in both label images, ids arbitrary) and
 * scores each IoU threshold. A pair matches when IoU >= threshold. Matching is one-to-one, pairs
 * taken greedily by decreasing IoU: for thresholds >= 0.5 a pair above threshold is unique per
 * object, so greedy equals optimal; below 0.5 it is a close approximation.
 */
export function matchInstances(
  predicted: ArrayLike<number>,
  truth: ArrayLike<number>,
  thresholds: readonly number[] = [0.5],
): InstanceScore[] {
  if (predicted.length !== truth.length) {
    throw new RangeError(`length mismatch: predicted ${predicted.length}, truth ${truth.length}`);
  }
  const pred = relabelSequential(predicted);
  const gt = relabelSequential(truth);
  const predArea = new Float64Array(pred.count + 1);
  const gtArea = new Float64Array(gt.count + 1);
  const overlap = new Map<number, number>();
  const stride = gt.count + 1;
  for (let i = 0; i < pred.labels.length; i++) {
    const p = pred.labels[i];
    const t = gt.labels[i];
    predArea[p]++;
    gtArea[t]++;
    if (p !== 0 && t !== 0) {
      const key = p * stride + t;
      overlap.set(key, (overlap.get(key) ?? 0) + 1);
    }
  }
  const pairs: { p: number; t: number; iou: number }[] = [];
  for (const [key, intersection] of overlap) {
    const p = Math.floor(key / stride);
    const t = key - p * stride;
    pairs.push({ p, t, iou: intersection / (predArea[p] + gtArea[t] - intersection) });
  }
  pairs.sort((a, b) => b.iou - a.iou);

  return thresholds.map((threshold) => {
    const predUsed = new Uint8Array(pred.count + 1);
    const gtUsed = new Uint8Array(gt.count + 1);
    let tp = 0;
    for (const { p, t, iou } of pairs) {
      if (iou < threshold) break;
      if (predUsed[p] || gtUsed[t]) continue;
      predUsed[p] = 1;
      gtUsed[t] = 1;
      tp++;
    }
    const fp = pred.count - tp;
    const fn = gt.count - tp;
    const precision = pred.count === 0 ? (gt.count === 0 ? 1 : 0) : tp / pred.count;
    const recall = gt.count === 0 ? 1 : tp / gt.count;
    const f1 = tp + fp + fn === 0 ? 1 : (2 * tp) / (2 * tp + fp + fn);
    const ap = tp + fp + fn === 0 ? 1 : tp / (tp + fp + fn);
    return { threshold, tp, fp, fn, precision, recall, f1, ap };
  });
}

/** Mean of `ap` over the thresholds (the DSB 2018 per-image score with DSB_THRESHOLDS). */
/**
 * The true objects of a labeled image of the instance target (0 background, 1 interior,
 * 2 boundary, UNKNOWN), rebuilt the way proposals build theirs: interiors grown into the labeled foreground.
 */
export function labeledObjects(image: LabeledImage): Int32Array {
  const { labels, width, height } = image;
  const interior = labels.map((c) => (c === 1 ? 1 : 0));
  const foreground = labels.map((c) => (c !== UNKNOWN && c > 0 ? 1 : 0));
  return instancesFromInterior(interior, width, height, { foreground }).labels;
}

/**
 * F1 at IoU 0.5 of proposed objects against a labeled image of the instance target; objects on
 * UNKNOWN pixels are not scored. `truth`: its labeledObjects, when already at hand.
 */
export function labeledObjectF1(objects: Int32Array, image: LabeledImage, truth: Int32Array = labeledObjects(image)): number {
  const { labels } = image;
  const scored = objects.map((id, i) => (labels[i] === UNKNOWN ? 0 : id));
  return matchInstances(scored, truth, [0.5])[0].f1;
}

export function meanAveragePrecision(scores: readonly InstanceScore[]): number {
  return scores.length === 0 ? NaN : scores.reduce((sum, s) => sum + s.ap, 0) / scores.length;
}
