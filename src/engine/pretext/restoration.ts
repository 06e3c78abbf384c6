/**
 * Restoration, after Models Genesis (Zhou et al. 2019): each patch is corrupted and the whole
 * U-Net restores the original, every pixel counted. The corruptions teach different things:
 * - a random monotone non-linear intensity curve (sometimes inverted): the appearance of
 *   structures must be read from their shape, not their grey level;
 * - local pixel shuffling in small windows: texture is lost, outlines survive;
 * - in-painting (boxes replaced by noise) or out-painting (only one box kept): context must be
 *   used to recover what is hidden.
 * Unlike rotation or jigsaw it needs no orientation cue, which most microscopy lacks.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../shared/rng';
import { pixelHead, reconstructionHeadShapes, type PretextTask } from './task';

/** Probabilities of each corruption, Models Genesis' defaults. */
const CURVE_PROBABILITY = 0.9;
const SHUFFLE_PROBABILITY = 0.5;
const PAINT_PROBABILITY = 0.9;
const INPAINT_SHARE = 0.8;

/** A monotone cubic Bézier from (0, 0) to (1, 1) through two random control points, sampled at 256 levels. */
function intensityCurve(rng: Rng): Float32Array {
  const [x1, y1, x2, y2] = [rng.next(), rng.next(), rng.next(), rng.next()];
  const samples: Array<[number, number]> = [];
  for (let i = 0; i <= 1000; i++) {
    const t = i / 1000;
    const b = 3 * (1 - t) ** 2 * t;
    const c = 3 * (1 - t) * t * t;
    const d = t ** 3;
    samples.push([b * x1 + c * x2 + d, b * y1 + c * y2 + d]);
  }
  samples.sort((p, q) => p[0] - q[0]);
  // Levels are looked up by x; y is kept non-decreasing, so the curve keeps the order of grey levels.
  const table = new Float32Array(256);
  let j = 0;
  let last = 0;
  for (let level = 0; level < 256; level++) {
    const x = level / 255;
    while (j < samples.length - 1 && samples[j][0] < x) j++;
    last = Math.max(last, samples[j][1]);
    table[level] = last;
  }
  return table;
}

function applyCurve(pixels: Float32Array, table: Float32Array, invert: boolean): void {
  for (let i = 0; i < pixels.length; i++) {
    const v = table[Math.round(Math.min(1, Math.max(0, pixels[i])) * 255)];
    pixels[i] = invert ? 1 - v : v;
  }
}

/** Shuffles the pixels inside a few small windows (up to a tenth of the side), channels kept together. */
function shuffleLocally(pixels: Float32Array, size: number, channels: number, rng: Rng): void {
  const windows = Math.max(1, Math.round((size * size) / 256));
  const maxSide = Math.max(2, Math.floor(size / 10));
  for (let k = 0; k < windows; k++) {
    const w = 1 + rng.int(maxSide);
    const h = 1 + rng.int(maxSide);
    const x0 = rng.int(size - w + 1);
    const y0 = rng.int(size - h + 1);
    const at = Array.from({ length: w * h }, (_, i) => ((y0 + Math.floor(i / w)) * size + x0 + (i % w)) * channels);
    const values = at.map((p) => pixels.slice(p, p + channels));
    rng.shuffle(values).forEach((v, i) => pixels.set(v, at[i]));
  }
}

/** In-painting: a few boxes filled with uniform noise. Out-painting: everything but one box is noise. */
function paint(pixels: Float32Array, size: number, channels: number, rng: Rng): void {
  const box = (min: number, max: number) => {
    const w = Math.round(size * rng.uniform(min, max));
    const h = Math.round(size * rng.uniform(min, max));
    return { x0: rng.int(size - w + 1), y0: rng.int(size - h + 1), w, h };
  };
  const inside = (b: { x0: number; y0: number; w: number; h: number }, x: number, y: number) => x >= b.x0 && x < b.x0 + b.w && y >= b.y0 && y < b.y0 + b.h;
  const noiseAt = (p: number) => {
    for (let c = 0; c < channels; c++) pixels[p * channels + c] = rng.next();
  };
  if (rng.next() < INPAINT_SHARE) {
    const boxes = Array.from({ length: 1 + rng.int(5) }, () => box(1 / 8, 1 / 4));
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if (boxes.some((b) => inside(b, x, y))) noiseAt(y * size + x);
  } else {
    const kept = box(1 / 2, 3 / 4);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if (!inside(kept, x, y)) noiseAt(y * size + x);
  }
}

/** The corrupted view of one patch (a new array; the patch is the target). */
export function corrupt(patch: Float32Array, size: number, channels: number, rng: Rng): Float32Array {
  const out = patch.slice();
  if (rng.next() < CURVE_PROBABILITY) applyCurve(out, intensityCurve(rng), rng.next() < 0.5);
  if (rng.next() < SHUFFLE_PROBABILITY) shuffleLocally(out, size, channels, rng);
  if (rng.next() < PAINT_PROBABILITY) paint(out, size, channels, rng);
  return out;
}

export const restoration: PretextTask = {
  name: 'restoration',
  summary: 'restore patches after intensity curves, local shuffling and in- or out-painting (Models Genesis)',
  trains: 'unet',
  appliesTo: () => true,
  headShapes: (config) => reconstructionHeadShapes('restoration', config),
  makeBatch(patches, size, channels, rng) {
    const n = patches.length;
    const inputs = new Float32Array(n * size * size * channels);
    const targets = new Float32Array(n * size * size * channels);
    patches.forEach((p, i) => {
      targets.set(p, i * p.length);
      inputs.set(corrupt(p, size, channels, rng), i * p.length);
    });
    return { inputs: tf.tensor4d(inputs, [n, size, size, channels]), targets: tf.tensor4d(targets, [n, size, size, channels]) };
  },
  loss(model, head, batch) {
    return tf.tidy(() => tf.losses.meanSquaredError(batch.targets, pixelHead(model, head, 'pretext.restoration.head', batch.inputs)) as tf.Scalar);
  },
};
