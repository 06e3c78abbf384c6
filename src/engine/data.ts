/**
 * The engine's input contract and the patch sampling / augmentation that feed training.
 *
 * Images enter the engine already normalised (src/imaging/normalize: per-channel percentiles to
 * ~[0, 1]) as interleaved HWC float32; labels are one class index per pixel. Augmentation runs
 * here on typed arrays, before tensors exist, so it costs no tensor memory and is identical on
 * every backend.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../shared/rng';
import { reflect } from '../imaging/source';

/** Label value for pixels the annotator has not decided (sparse labels): ignored by the loss. */
export const UNKNOWN = 255;

export interface EngineImage {
  /** Normalised intensities, interleaved HWC. */
  pixels: Float32Array;
  width: number;
  height: number;
  channels: number;
}

export interface LabeledImage extends EngineImage {
  /** One class per pixel: 0 = background, 1..K = classes, UNKNOWN = ignored. */
  labels: Uint8Array;
}

export interface Patch {
  pixels: Float32Array;
  labels?: Uint8Array;
}

export interface AugmentOptions {
  flips: boolean;
  rotations: boolean;
  /** Random per-channel gain/offset/gamma; 0 disables, 1 is the default strength. */
  intensity: number;
  /** Gaussian noise standard deviation as a fraction of the [0,1] range. */
  noise: number;
}

export const DEFAULT_AUGMENT: AugmentOptions = { flips: true, rotations: true, intensity: 1, noise: 0.02 };

/** n items spread evenly over the list, first included; all of it when n is 0 or undefined. */
export function evenlySpread<T>(list: T[], n: number | undefined): T[] {
  if (!n || n >= list.length) return list;
  return Array.from({ length: n }, (_, i) => list[Math.floor((i * list.length) / n)]);
}


/**
 * A size x size crop at a random position; images smaller than the crop are reflect-padded and
 * the padded pixels' labels are UNKNOWN (the annotator never saw them).
 */
export function randomCrop(image: EngineImage, size: number, rng: Rng, labels?: Uint8Array): Patch {
  const { width, height } = image;
  const x0 = width > size ? rng.int(width - size + 1) : -Math.floor((size - width) / 2);
  const y0 = height > size ? rng.int(height - size + 1) : -Math.floor((size - height) / 2);
  return cropAt(image, x0, y0, size, labels);
}

export function cropAt(image: EngineImage, x0: number, y0: number, size: number, labels?: Uint8Array): Patch {
  return cropRect(image, x0, y0, size, size, labels);
}

/** A w x h window of the image at (x0, y0); beyond the edges pixels reflect and labels are UNKNOWN. */
export function cropRect(image: EngineImage, x0: number, y0: number, w: number, h: number, labels?: Uint8Array): Patch {
  const { width, height, channels, pixels } = image;
  const out = new Float32Array(w * h * channels);
  const outLabels = labels ? new Uint8Array(w * h) : undefined;
  for (let y = 0; y < h; y++) {
    const sy = y0 + y;
    const ry = reflect(sy, height);
    for (let x = 0; x < w; x++) {
      const sx = x0 + x;
      const rx = reflect(sx, width);
      const src = (ry * width + rx) * channels;
      const dst = (y * w + x) * channels;
      for (let c = 0; c < channels; c++) out[dst + c] = pixels[src + c];
      if (outLabels && labels) {
        const inside = sx >= 0 && sx < width && sy >= 0 && sy < height;
        outLabels[y * w + x] = inside ? labels[ry * width + rx] : UNKNOWN;
      }
    }
  }
  return { pixels: out, labels: outLabels };
}

/**
 * Applies one of the 8 symmetries of the square (4 rotations x optional flip) to a square
 * HWC array; `transform` in 0..7. Used for augmentation and by the rotation pretext task.
 */
export function dihedral<T extends Float32Array | Uint8Array>(src: T, size: number, channels: number, transform: number): T {
  if (transform === 0) return src;
  const dst = new (src.constructor as { new (n: number): T })(src.length);
  const rot = transform & 3;
  const flip = transform >= 4;
  const last = size - 1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let sx = flip ? last - x : x;
      let sy = y;
      // Rotate the sampling position by rot x 90° counter-clockwise.
      for (let r = 0; r < rot; r++) {
        const t = sx;
        sx = last - sy;
        sy = t;
      }
      const s = (sy * size + sx) * channels;
      const d = (y * size + x) * channels;
      for (let c = 0; c < channels; c++) dst[d + c] = src[s + c];
    }
  }
  return dst;
}

/** Geometric and intensity augmentation of one patch, in place where possible. */
export function augmentPatch(patch: Patch, size: number, channels: number, rng: Rng, options: AugmentOptions): Patch {
  let { pixels, labels } = patch;
  const transform = (options.rotations ? rng.int(4) : 0) + (options.flips && rng.next() < 0.5 ? 4 : 0);
  if (transform) {
    pixels = dihedral(pixels, size, channels, transform);
    if (labels) labels = dihedral(labels, size, 1, transform);
  }
  if (options.intensity > 0 || options.noise > 0) {
    pixels = pixels === patch.pixels ? pixels.slice() : pixels;
    jitterIntensity(pixels, channels, rng, options);
  }
  return { pixels, labels };
}

function jitterIntensity(pixels: Float32Array, channels: number, rng: Rng, options: AugmentOptions): void {
  const s = options.intensity;
  for (let c = 0; c < channels; c++) {
    const gain = 1 + s * rng.uniform(-0.2, 0.2);
    const offset = s * rng.uniform(-0.1, 0.1);
    const gamma = Math.exp(s * rng.uniform(-0.25, 0.25));
    const noise = options.noise;
    for (let i = c; i < pixels.length; i += channels) {
      const v = Math.max(pixels[i], 0);
      let out = gain * Math.pow(v, gamma) + offset;
      if (noise > 0) out += noise * rng.normal();
      pixels[i] = out;
    }
  }
}

/** Stacks patches into an NHWC tensor. */
export function stackPixels(patches: Float32Array[], size: number, channels: number): tf.Tensor4D {
  const batch = new Float32Array(patches.length * size * size * channels);
  patches.forEach((p, i) => batch.set(p, i * p.length));
  return tf.tensor4d(batch, [patches.length, size, size, channels]);
}

/** Stacks label patches into an int32 [N, H, W] tensor. */
export function stackLabels(labels: Uint8Array[], size: number): tf.Tensor3D {
  const batch = new Int32Array(labels.length * size * size);
  labels.forEach((l, i) => batch.set(l, i * l.length));
  return tf.tensor3d(batch, [labels.length, size, size], 'int32');
}

/** Number of labeled (not UNKNOWN) pixels: crops with none teach nothing and are resampled. */
export function knownPixels(labels: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] !== UNKNOWN) n++;
  return n;
}
