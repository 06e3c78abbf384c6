/**
 * Semi-supervised fine-tuning by consistency, in the manner of FixMatch and UniMatch for dense
 * prediction: in each step (from `startShare` of the run on) the model being trained labels a
 * weakly augmented unlabeled patch (flips and rotations only) wherever it is confident, and the
 * same patch under a strong perturbation (intensity, noise, blur, and CutMix with another patch)
 * must receive those labels. The unlabeled images and the unknown pixels of sparse labels thus
 * enter the fine-tuning. Where it is used is the caller's choice (maskloop train --semi).
 *
 * The pseudo-labels come from the model in inference mode (running statistics), so they are the
 * proposals the model would make, and small unlabeled batches leave its statistics alone.
 */
import * as tf from '@tensorflow/tfjs';
import { dihedral, randomCrop, stackLabels, stackPixels, UNKNOWN, type EngineImage } from '../data';
import type { UNet } from '../model/unet';
import type { Rng } from '../../shared/rng';
import type { UnlabeledPool } from './semi';

export interface ConsistencyOptions {
  /** Weight of the consistency loss against the supervised loss. */
  weight: number;
  /** Probability a pixel's most likely class needs before it becomes a pseudo-label. */
  threshold: number;
  /** Unlabeled patches per step, as a share of the labeled batch (at least one). */
  batchShare: number;
  /**
   * Share of a fine-tuning from scratch or from pretext weights that runs supervised only, before
   * consistency starts: a model that has not learned yet is confident almost nowhere (measured on
   * synthetic nuclei: 12% of pixels at 0.95 after 60 steps), so its pseudo-labels would cost time
   * and teach nothing. A warm start continues a trained model and uses consistency from its first step.
   */
  startShare: number;
}

/**
 * FixMatch's weight and confidence threshold. Half a labeled batch of unlabeled patches makes a
 * step cost about 1.6 to 1.9 times a supervised one (a teacher forward pass and a student pass on
 * half the patches); budgets are wall-clock, so this buys fewer, richer steps.
 */
export const DEFAULT_CONSISTENCY: ConsistencyOptions = { weight: 1, threshold: 0.95, batchShare: 0.5, startShare: 0.5 };

/** The first step of a fine-tuning of `steps` that uses consistency. */
export function consistencyStart(steps: number, options: ConsistencyOptions, continuesTrainedModel: boolean): number {
  return continuesTrainedModel ? 0 : Math.floor(steps * options.startShare);
}

/** How a SEMI candidate is fine-tuned: with this consistency training, on these unlabeled images, for these steps. */
export interface SemiSupervisedTraining {
  consistency: ConsistencyOptions;
  unlabeled: EngineImage[];
  steps: number;
}

export function unlabeledBatchSize(batchSize: number, options: ConsistencyOptions): number {
  return Math.max(1, Math.round(batchSize * options.batchShare));
}

/**
 * Pseudo-labels from class probabilities ([N,H,W,C] flattened; C = 1 is a sigmoid foreground):
 * the most likely class where its probability reaches the threshold, UNKNOWN elsewhere. Where
 * `known` has a label (a sparse label's decided pixels), that label is kept instead.
 */
export function pseudoLabels(probabilities: Float32Array, classes: number, threshold: number, known?: Uint8Array): Uint8Array {
  const pixels = probabilities.length / classes;
  const out = new Uint8Array(pixels);
  for (let i = 0; i < pixels; i++) {
    if (known && known[i] !== UNKNOWN) {
      out[i] = known[i];
      continue;
    }
    let label: number = UNKNOWN;
    if (classes === 1) {
      const p = probabilities[i];
      if (p >= threshold) label = 1;
      else if (1 - p >= threshold) label = 0;
    } else {
      let best = 0;
      for (let c = 1; c < classes; c++) if (probabilities[i * classes + c] > probabilities[i * classes + best]) best = c;
      if (probabilities[i * classes + best] >= threshold) label = best;
    }
    out[i] = label;
  }
  return out;
}

/**
 * A strong photometric view of a patch: per-channel gain, offset and gamma twice the supervised
 * augmentation's range, Gaussian noise, and a Gaussian blur half the time. Geometry is unchanged,
 * so the weak view's pseudo-labels stay aligned.
 */
export function strongView(pixels: Float32Array, size: number, channels: number, rng: Rng): Float32Array {
  const out = pixels.slice();
  const sigma = rng.next() < 0.5 ? rng.uniform(0.5, 1.5) : 0;
  if (sigma > 0) blur(out, size, channels, sigma);
  const noise = rng.uniform(0, 0.1);
  for (let c = 0; c < channels; c++) {
    const gain = 1 + rng.uniform(-0.4, 0.4);
    const offset = rng.uniform(-0.2, 0.2);
    const gamma = Math.exp(rng.uniform(-0.5, 0.5));
    for (let i = c; i < out.length; i += channels) out[i] = gain * Math.pow(Math.max(out[i], 0), gamma) + offset + noise * rng.normal();
  }
  return out;
}

/** Separable Gaussian blur of a square HWC patch in place, edges clamped. */
function blur(pixels: Float32Array, size: number, channels: number, sigma: number): void {
  const radius = Math.ceil(2 * sigma);
  const kernel = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)));
  const total = kernel.reduce((a, b) => a + b, 0);
  const weights = kernel.map((k) => k / total);
  const line = new Float32Array(size);
  for (const horizontal of [true, false]) {
    for (let c = 0; c < channels; c++) {
      for (let a = 0; a < size; a++) {
        const at = (b: number) => ((horizontal ? a * size + b : b * size + a) * channels + c);
        for (let b = 0; b < size; b++) {
          let sum = 0;
          for (let k = -radius; k <= radius; k++) sum += weights[k + radius] * pixels[at(Math.min(size - 1, Math.max(0, b + k)))];
          line[b] = sum;
        }
        for (let b = 0; b < size; b++) pixels[at(b)] = line[b];
      }
    }
  }
}

/**
 * CutMix: a random box (a quarter to a half of the side in each direction) of `from` pasted into
 * `into`, pixels and pseudo-labels alike, so the prediction inside the box must not lean on the
 * context around it.
 */
export function cutMix(into: { pixels: Float32Array; labels: Uint8Array }, from: { pixels: Float32Array; labels: Uint8Array }, size: number, channels: number, rng: Rng): void {
  const w = Math.round(size * rng.uniform(0.25, 0.5));
  const h = Math.round(size * rng.uniform(0.25, 0.5));
  const x0 = rng.int(size - w + 1);
  const y0 = rng.int(size - h + 1);
  for (let y = y0; y < y0 + h; y++) {
    for (let x = x0; x < x0 + w; x++) {
      const i = y * size + x;
      into.labels[i] = from.labels[i];
      for (let c = 0; c < channels; c++) into.pixels[i * channels + c] = from.pixels[i * channels + c];
    }
  }
}

export interface ConsistencyBatch {
  /** Strong views, [U,H,W,C]. */
  strong: tf.Tensor4D;
  /** Their pseudo-labels, int32 [U,H,W], UNKNOWN where the model was not confident. */
  labels: tf.Tensor3D;
  /** Share of the batch's pixels that carry a pseudo-label. */
  confident: number;
}

/** One step's unlabeled batch: weak views labeled by the model, then perturbed and mixed. */
export function consistencyBatch(model: UNet, pool: UnlabeledPool, count: number, size: number, options: ConsistencyOptions, rng: Rng): ConsistencyBatch {
  const channels = pool[0].channels;
  const weak = Array.from({ length: count }, () => {
    const image = pool[rng.int(pool.length)];
    const crop = randomCrop(image, size, rng, image.labels);
    const transform = rng.int(8);
    return { pixels: dihedral(crop.pixels, size, channels, transform), known: crop.labels && dihedral(crop.labels, size, 1, transform) };
  });
  const probabilities = tf.tidy(() => model.predict(stackPixels(weak.map((v) => v.pixels), size, channels)));
  const classes = probabilities.shape[3];
  const all = probabilities.dataSync() as Float32Array;
  probabilities.dispose();
  const perPatch = size * size * classes;
  const views = weak.map((v, i) => ({
    pixels: strongView(v.pixels, size, channels, rng),
    labels: pseudoLabels(all.subarray(i * perPatch, (i + 1) * perPatch), classes, options.threshold, v.known),
  }));
  // Mixed from the unmixed views, so a patch never receives a box of itself.
  const sources = views.map((v) => ({ pixels: v.pixels.slice(), labels: v.labels.slice() }));
  if (views.length > 1) views.forEach((v, i) => rng.next() < 0.5 && cutMix(v, sources[(i + 1) % views.length], size, channels, rng));
  const confident = views.reduce((a, v) => a + v.labels.filter((l) => l !== UNKNOWN).length, 0) / (count * size * size);
  return { strong: stackPixels(views.map((v) => v.pixels), size, channels), labels: stackLabels(views.map((v) => v.labels), size), confident };
}
