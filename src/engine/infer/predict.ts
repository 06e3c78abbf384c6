/**
 * Proposals for images of any size: overlapping tiles, blended with a window that fades out
 * towards interior tile edges, processed one band of tile rows at a time so that memory is
 * bounded by width x tile, not by the image.
 */
import * as tf from '@tensorflow/tfjs';
import { cropRect, type EngineImage } from '../data';
import { sizeMultiple, type UNet } from '../model/unet';
import type { PixelSource } from '../../imaging/source';

export interface TilingOptions {
  /**
   * Square tile edge in pixels (rounded up to the U-Net's size multiple). Default: the whole image
   * in one tile, of the image's own aspect, when its longer side is at most SINGLE_TILE_MAX
   * (overlap is pure redundancy there), else LARGE_IMAGE_TILE.
   */
  tile?: number;
  /** Pixels shared by neighbouring tiles; seams vanish when this exceeds the receptive field's reach. */
  overlap?: number;
  /** Tiles per forward pass. */
  batchSize?: number;
  /**
   * Test-time augmentation: each tile is predicted in its eight flips and rotations and the
   * outputs, turned back, are averaged (eight times the compute). Models record whether it
   * measured better on their val split (SegmentationModelMeta.tta).
   */
  tta?: boolean;
}

/**
 * The eight symmetries of the square as (transpose, flip rows, flip columns): each tile is
 * transposed first, then flipped; turning an output back undoes them in the reverse order.
 */
const SYMMETRIES: ReadonlyArray<readonly [boolean, boolean, boolean]> = [false, true].flatMap((t) => [false, true].flatMap((r) => [false, true].map((c) => [t, r, c] as const)));

/** The model's output for a batch of tiles [B, H, W, C], averaged over the eight symmetries with `tta`. */
export function predictBatch(model: UNet, x: tf.Tensor4D, tta = false): tf.Tensor4D {
  if (!tta) return model.predict(x) as tf.Tensor4D;
  return tf.tidy(() => {
    const flips = (t: tf.Tensor4D, rows: boolean, cols: boolean) => (rows || cols ? tf.reverse(t, [...(rows ? [1] : []), ...(cols ? [2] : [])]) : t);
    const transpose = (t: tf.Tensor4D, on: boolean) => (on ? tf.transpose(t, [0, 2, 1, 3]) : t);
    let sum: tf.Tensor4D | null = null;
    for (const [t, r, c] of SYMMETRIES) {
      const out = model.predict(flips(transpose(x, t), r, c)) as tf.Tensor4D;
      const back = transpose(flips(out, r, c), t);
      sum = sum ? (sum.add(back) as tf.Tensor4D) : back;
    }
    return (sum as tf.Tensor4D).div(SYMMETRIES.length);
  });
}


/** Receives finished rows: probabilities (HW x outChannels) and per-pixel uncertainty in [0, 1]. */
export type RowSink = (y0: number, rows: number, probabilities: Float32Array, uncertainty: Float32Array) => void;

export interface Prediction {
  width: number;
  height: number;
  /** Output channels of the model: 1 = foreground probability, else class probabilities. */
  channels: number;
  probabilities: Float32Array;
  /** Normalised entropy of the prediction per pixel: 0 = certain, 1 = coin flip. */
  uncertainty: Float32Array;
  /** Mean uncertainty over the image: the 'label next' score. */
  score: number;
}

export function imageSource(image: EngineImage): PixelSource {
  return {
    width: image.width,
    height: image.height,
    channels: image.channels,
    read: (x, y, w, h) => cropRect(image, x, y, w, h).pixels,
  };
}

/** Images up to this side are predicted as one tile. */
export const SINGLE_TILE_MAX = 1024;
/**
 * Tile edge for larger images. Measured on the native backend: 256 (batch 2) ran 2048² at 0.92
 * MP/s against 0.81 for 512 tiles, whose larger activations cost more than the overlap saves.
 */
export const LARGE_IMAGE_TILE = 256;

function resolveTiling(model: UNet, options: TilingOptions, width: number, height: number) {
  const m = sizeMultiple(model.config);
  const roundUp = (n: number) => Math.ceil(n / m) * m;
  // A 696x520 image as one 704x528 tile rather than a 704x704 square: a third less to compute.
  const single = options.tile === undefined && Math.max(width, height) <= SINGLE_TILE_MAX;
  const tileW = roundUp(single ? width : (options.tile ?? LARGE_IMAGE_TILE));
  const tileH = roundUp(single ? height : (options.tile ?? LARGE_IMAGE_TILE));
  const overlap = Math.min(options.overlap ?? 32, Math.min(tileW, tileH) / 2);
  // About 128 k pixels per forward pass (batch 8 of 128², 2 of 256²), where the kernels measured fastest.
  const batchSize = options.batchSize ?? Math.max(1, Math.floor(2 ** 17 / (tileW * tileH)));
  return { tileW, tileH, overlap, batchSize };
}

/** Tile origins along one axis: evenly stepped, the last one flush with the far edge. */
export function tileOrigins(length: number, tile: number, overlap: number): number[] {
  if (length <= tile) return [0];
  const stride = tile - overlap;
  const origins: number[] = [];
  for (let o = 0; o + tile < length; o += stride) origins.push(o);
  origins.push(length - tile);
  return origins;
}

/**
 * 1-D blending weights for a tile: a raised-cosine ramp over `overlap` pixels on sides that
 * border another tile, flat on sides at the image edge (nothing else covers those pixels).
 */
function ramp(tile: number, overlap: number, rampStart: boolean, rampEnd: boolean): Float32Array {
  const w = new Float32Array(tile).fill(1);
  for (let i = 0; i < overlap; i++) {
    const v = 0.5 - 0.5 * Math.cos((Math.PI * (i + 0.5)) / overlap);
    if (rampStart) w[i] = Math.min(w[i], v);
    if (rampEnd) w[tile - 1 - i] = Math.min(w[tile - 1 - i], v);
  }
  return w;
}

/**
 * Normalised entropy of the output distribution of each of `pixels` pixels into `out`; returns
 * their sum. Binary and multi-class in separate loops: this runs once per pixel of every proposal.
 */
function entropies(probabilities: Float32Array, channels: number, pixels: number, out: Float32Array): number {
  let sum = 0;
  if (channels === 1) {
    for (let i = 0; i < pixels; i++) {
      const p = Math.min(Math.max(probabilities[i], 1e-7), 1 - 1e-7);
      const h = -(p * Math.log(p) + (1 - p) * Math.log(1 - p)) / Math.LN2;
      out[i] = h;
      sum += h;
    }
    return sum;
  }
  const norm = 1 / Math.log(channels);
  for (let i = 0, o = 0; i < pixels; i++, o += channels) {
    let h = 0;
    for (let c = 0; c < channels; c++) {
      const p = probabilities[o + c];
      if (p > 1e-7) h -= p * Math.log(p);
    }
    out[i] = h * norm;
    sum += out[i];
  }
  return sum;
}

/** The model's outputs for the tiles at (x, y0) for each x of `xs`, read back: [tile, tileH, tileW, outChannels]. */
async function predictTiles(model: UNet, source: PixelSource, xs: number[], y0: number, tileW: number, tileH: number, tta = false): Promise<Float32Array> {
  const tileValues = tileW * tileH * source.channels;
  const pixels = new Float32Array(xs.length * tileValues);
  xs.forEach((x0, i) => pixels.set(source.read(x0, y0, tileW, tileH), i * tileValues));
  const probs = tf.tidy(() => predictBatch(model, tf.tensor4d(pixels, [xs.length, tileH, tileW, source.channels]), tta));
  // Asynchronous read-back: a GPU backend in Node (WebGPU) offers no synchronous one.
  const values = (await probs.data()) as Float32Array;
  probs.dispose();
  return values;
}

/** Streams a tiled prediction of `source` to `sink`, top to bottom; returns the mean uncertainty. */
export async function predictTiled(model: UNet, source: PixelSource, sink: RowSink, options: TilingOptions = {}): Promise<number> {
  const { width, height } = source;
  const { tileW, tileH, overlap, batchSize } = resolveTiling(model, options, width, height);
  const out = model.config.outChannels;
  const xs = tileOrigins(width, tileW, overlap);
  const ys = tileOrigins(height, tileH, overlap);
  const bandRows = Math.min(tileH, height);
  // Accumulators for the rows the current tile row can still touch.
  const acc = new Float32Array(bandRows * width * out);
  const weight = new Float32Array(bandRows * width);
  let bandTop = 0;
  let uncertaintySum = 0;

  const flush = (upTo: number) => {
    const rows = upTo - bandTop;
    if (rows <= 0) return;
    const probs = new Float32Array(rows * width * out);
    const unc = new Float32Array(rows * width);
    for (let i = 0; i < rows * width; i++) {
      const w = weight[i] || 1;
      for (let c = 0; c < out; c++) probs[i * out + c] = acc[i * out + c] / w;
    }
    uncertaintySum += entropies(probs, out, rows * width, unc);
    sink(bandTop, rows, probs, unc);
    // Shift the unfinished rows to the top of the band.
    acc.copyWithin(0, rows * width * out);
    acc.fill(0, (bandRows - rows) * width * out);
    weight.copyWithin(0, rows * width);
    weight.fill(0, (bandRows - rows) * width);
    bandTop = upTo;
  };

  if (xs.length === 1 && ys.length === 1) {
    // One tile covers the image: its outputs are the probabilities, with nothing to blend.
    const values = await predictTiles(model, source, xs, 0, tileW, tileH, options.tta);
    const probs = new Float32Array(width * height * out);
    for (let y = 0; y < height; y++) probs.set(values.subarray(y * tileW * out, (y * tileW + width) * out), y * width * out);
    const unc = new Float32Array(width * height);
    const sum = entropies(probs, out, width * height, unc);
    sink(0, height, probs, unc);
    return sum / (width * height);
  }

  for (let row = 0; row < ys.length; row++) {
    const y0 = ys[row];
    const wy = ramp(tileH, overlap, row > 0, row < ys.length - 1);
    for (let start = 0; start < xs.length; start += batchSize) {
      const batchXs = xs.slice(start, start + batchSize);
      const tilePixels = tileW * tileH;
      const values = await predictTiles(model, source, batchXs, y0, tileW, tileH, options.tta);
      batchXs.forEach((x0, i) => {
        const col = start + i;
        const wx = ramp(tileW, overlap, col > 0, col < xs.length - 1);
        const base = i * tilePixels * out;
        for (let ty = 0; ty < tileH; ty++) {
          const iy = y0 + ty;
          if (iy >= height) break;
          const by = iy - bandTop;
          for (let tx = 0; tx < tileW; tx++) {
            const ix = x0 + tx;
            if (ix >= width) break;
            const w = wy[ty] * wx[tx];
            const a = by * width + ix;
            weight[a] += w;
            const src = base + (ty * tileW + tx) * out;
            for (let c = 0; c < out; c++) acc[a * out + c] += w * values[src + c];
          }
        }
      });
    }
    flush(row + 1 < ys.length ? ys[row + 1] : height);
  }
  return uncertaintySum / (width * height);
}

/** Tiled prediction of an in-memory image. */
export async function predictImage(model: UNet, image: EngineImage, options: TilingOptions = {}): Promise<Prediction> {
  const out = model.config.outChannels;
  const probabilities = new Float32Array(image.width * image.height * out);
  const uncertainty = new Float32Array(image.width * image.height);
  const score = await predictTiled(
    model,
    imageSource(image),
    (y0, _rows, probs, unc) => {
      probabilities.set(probs, y0 * image.width * out);
      uncertainty.set(unc, y0 * image.width);
    },
    options,
  );
  return { width: image.width, height: image.height, channels: out, probabilities, uncertainty, score };
}

/**
 * Probability that a pixel is not background: a binary model's sigmoid, else 1 − p(background).
 * `offset` is the pixel's first channel in `probabilities`.
 */
export function foregroundProbability(probabilities: Float32Array, offset: number, channels: number): number {
  return channels === 1 ? probabilities[offset] : 1 - probabilities[offset];
}

/**
 * The class of one pixel: binary models threshold at 0.5 (1 = foreground), others take the most
 * probable class. `offset` is the pixel's first channel in `probabilities`.
 */
export function pixelClass(probabilities: Float32Array, offset: number, channels: number): number {
  if (channels === 1) return probabilities[offset] >= 0.5 ? 1 : 0;
  let best = 0;
  for (let k = 1; k < channels; k++) if (probabilities[offset + k] > probabilities[offset + best]) best = k;
  return best;
}

/** Class per pixel of a prediction. */
export function classMap(prediction: Prediction): Uint8Array {
  const n = prediction.width * prediction.height;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = pixelClass(prediction.probabilities, i * prediction.channels, prediction.channels);
  return out;
}
