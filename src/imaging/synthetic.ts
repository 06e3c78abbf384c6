/**
 * Deterministic microscopy-like images with exact instance labels, for the demo and for tests:
 * the repository ships no real data. Fluorescent nuclei: ellipses of varied size and brightness,
 * some touching, blurred by the optics, on an uneven background, with shot and read noise.
 */
import { Rng } from '../shared/rng';
import type { RawImage } from './types';

export interface SyntheticOptions {
  /** Default 128. */
  width?: number;
  /** Default 128. */
  height?: number;
  /** Same seed, same options: same image, bit for bit. Default 1. */
  seed?: number;
  /** Default 16 (stored like BBBC039: 12-bit data in 16-bit samples). */
  bitDepth?: 8 | 16;
  /** Largest stored value; default 4095 for 16-bit, 255 for 8-bit. */
  maxValue?: number;
  /**
   * Channel 0 is the nuclear stain. Further channels are a second stain that follows the nuclei
   * (per-nucleus ratio, wider blur, own background and noise): correlated, but not a copy, as
   * cross-channel prediction needs. Default 1.
   */
  channels?: number;
  /** How many nuclei to try to place; default from the area (about one per 900 pixels). */
  objects?: number;
  /** Semi-major axis range in pixels; default [5, 11]. */
  radius?: [number, number];
  /** Probability that a nucleus is placed against an existing one; default 0.35. */
  touchingFraction?: number;
  /** Gaussian blur of the optics, in pixels; default 1. */
  blurSigma?: number;
  /** Expected photons at unit intensity (shot noise; lower is noisier); default 150. */
  photons?: number;
  /** Read noise, as a fraction of full scale; default 0.01. */
  readNoise?: number;
}

export interface SyntheticSample {
  image: RawImage;
  /** 0 = background, 1..count = nucleus. */
  instances: Int32Array;
  count: number;
  /** 1 on every nucleus pixel. */
  foreground: Uint8Array;
}

interface Nucleus {
  cx: number;
  cy: number;
  a: number;
  b: number;
  angle: number;
}

/** One synthetic fluorescence image of nuclei with its instance labels. */
export function syntheticNuclei(options: SyntheticOptions = {}): SyntheticSample {
  const width = options.width ?? 128;
  const height = options.height ?? 128;
  const bitDepth = options.bitDepth ?? 16;
  const maxValue = options.maxValue ?? (bitDepth === 16 ? 4095 : 255);
  const channels = options.channels ?? 1;
  const [rMin, rMax] = options.radius ?? [5, 11];
  const touchingFraction = options.touchingFraction ?? 0.35;
  const blurSigma = options.blurSigma ?? 1;
  const photons = options.photons ?? 150;
  const readNoise = options.readNoise ?? 0.01;
  const target = options.objects ?? Math.max(1, Math.round((width * height) / 900));
  if (!(width > 0 && height > 0 && channels >= 1 && rMin > 0 && rMax >= rMin)) {
    throw new RangeError('synthetic image: width, height, channels and radius must be positive');
  }
  if (maxValue > (bitDepth === 16 ? 65535 : 255)) {
    throw new RangeError(`maxValue ${maxValue} does not fit in ${bitDepth} bits`);
  }
  const rng = new Rng(options.seed ?? 1);
  const n = width * height;

  const instances = new Int32Array(n);
  const placed: Nucleus[] = [];
  // Per-pixel clean intensity of each stain before blurring.
  const stains = Array.from({ length: channels }, () => new Float32Array(n));
  const painted: number[] = [];

  for (let attempt = 0; attempt < target * 30 && placed.length < target; attempt++) {
    const a = rng.uniform(rMin, rMax);
    const b = a * rng.uniform(0.6, 1);
    const angle = rng.uniform(0, Math.PI);
    let cx: number;
    let cy: number;
    if (placed.length > 0 && rng.next() < touchingFraction) {
      const other = placed[rng.int(placed.length)];
      const direction = rng.uniform(0, 2 * Math.PI);
      // Slightly less than the sum of mean radii: the ellipses overlap a little and, since later
      // nuclei only take free pixels, end up sharing a border.
      const distance = 0.9 * ((other.a + other.b) / 2 + (a + b) / 2);
      cx = other.cx + distance * Math.cos(direction);
      cy = other.cy + distance * Math.sin(direction);
    } else {
      cx = rng.uniform(0, width);
      cy = rng.uniform(0, height);
    }
    if (cx < 0 || cy < 0 || cx >= width || cy >= height) continue;

    const id = placed.length + 1;
    const nucleus = { cx, cy, a, b, angle };
    painted.length = 0;
    let inside = 0;
    forEachEllipsePixel(nucleus, width, height, (p) => {
      inside++;
      if (instances[p] === 0) painted.push(p);
    });
    // Mostly hidden behind earlier nuclei: not a plausible nucleus, and would make tiny slivers.
    if (inside === 0 || painted.length < 0.75 * inside) continue;
    // An earlier nucleus cutting this one in two would give one label to two objects.
    if (!isFourConnected(painted, width)) continue;

    const brightness = rng.uniform(0.35, 1);
    const ratios = stains.map((_, c) => (c === 0 ? 1 : rng.uniform(0.3, 1)));
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    for (const p of painted) {
      instances[p] = id;
      const x = (p % width) + 0.5 - cx;
      const y = Math.floor(p / width) + 0.5 - cy;
      const u = (x * cos + y * sin) / a;
      const v = (-x * sin + y * cos) / b;
      // Chromatin is brighter towards the middle and grainy; the blur smooths the grain.
      const shape = 0.8 + 0.2 * (1 - Math.min(1, u * u + v * v));
      const grain = 1 + 0.12 * rng.normal();
      for (let c = 0; c < channels; c++) stains[c][p] = brightness * ratios[c] * shape * grain;
    }
    placed.push(nucleus);
  }

  const data = bitDepth === 16 ? new Uint16Array(n * channels) : new Uint8Array(n * channels);
  for (let c = 0; c < channels; c++) {
    // The second stain sits around the nuclei too (cytoplasm-like halo): blurred more widely.
    const signal = gaussianBlur(stains[c], width, height, c === 0 ? blurSigma : blurSigma + 2 + c);
    const level = rng.uniform(0.03, 0.08);
    const gx = rng.uniform(-0.05, 0.05);
    const gy = rng.uniform(-0.05, 0.05);
    for (let p = 0; p < n; p++) {
      const x = p % width;
      const y = (p - x) / width;
      const clean = Math.max(0, level + gx * (x / width) + gy * (y / height) + signal[p]);
      const counted = poisson(rng, clean * photons) / photons + readNoise * rng.normal();
      const stored = Math.round(counted * 0.85 * maxValue);
      data[p * channels + c] = stored < 0 ? 0 : stored > maxValue ? maxValue : stored;
    }
  }

  const foreground = new Uint8Array(n);
  for (let p = 0; p < n; p++) foreground[p] = instances[p] !== 0 ? 1 : 0;
  return {
    image: { width, height, channels, bitDepth, data },
    instances,
    count: placed.length,
    foreground,
  };
}

/** `count` images with seeds seed, seed + 1, ...: a reproducible little dataset. */
export function syntheticDataset(count: number, options: SyntheticOptions = {}): SyntheticSample[] {
  const seed = options.seed ?? 1;
  return Array.from({ length: count }, (_, i) => syntheticNuclei({ ...options, seed: seed + i }));
}

function forEachEllipsePixel(e: Nucleus, width: number, height: number, visit: (p: number) => void): void {
  const cos = Math.cos(e.angle);
  const sin = Math.sin(e.angle);
  const x0 = Math.max(0, Math.floor(e.cx - e.a));
  const x1 = Math.min(width - 1, Math.ceil(e.cx + e.a));
  const y0 = Math.max(0, Math.floor(e.cy - e.a));
  const y1 = Math.min(height - 1, Math.ceil(e.cy + e.a));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - e.cx;
      const dy = y + 0.5 - e.cy;
      const u = (dx * cos + dy * sin) / e.a;
      const v = (-dx * sin + dy * cos) / e.b;
      if (u * u + v * v <= 1) visit(y * width + x);
    }
  }
}

function isFourConnected(pixels: number[], width: number): boolean {
  if (pixels.length === 0) return true;
  const unvisited = new Set(pixels);
  const stack = [pixels[0]];
  unvisited.delete(pixels[0]);
  while (stack.length > 0) {
    const p = stack.pop() as number;
    const x = p % width;
    const neighbours = [p - width, p + width];
    if (x > 0) neighbours.push(p - 1);
    if (x < width - 1) neighbours.push(p + 1);
    for (const q of neighbours) {
      if (unvisited.delete(q)) stack.push(q);
    }
  }
  return unvisited.size === 0;
}

/** Exact (Knuth) for small means, normal approximation above 30 where it is indistinguishable. */
function poisson(rng: Rng, mean: number): number {
  if (mean <= 0) return 0;
  if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * rng.normal()));
  const limit = Math.exp(-mean);
  let k = 0;
  let product = rng.next();
  while (product > limit) {
    k++;
    product *= rng.next();
  }
  return k;
}

/** Separable Gaussian blur with edge samples repeated beyond the border. */
export function gaussianBlur(values: Float32Array, width: number, height: number, sigma: number): Float32Array {
  if (sigma <= 0) return values.slice();
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const kernel = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let k = -radius; k <= radius; k++) sum += kernel[k + radius] = Math.exp(-(k * k) / (2 * sigma * sigma));
  for (let k = 0; k < kernel.length; k++) kernel[k] /= sum;

  const rows = new Float32Array(values.length);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let k = -radius; k <= radius; k++) {
        const xx = x + k < 0 ? 0 : x + k >= width ? width - 1 : x + k;
        acc += kernel[k + radius] * values[row + xx];
      }
      rows[row + x] = acc;
    }
  }
  const out = new Float32Array(values.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let k = -radius; k <= radius; k++) {
        const yy = y + k < 0 ? 0 : y + k >= height ? height - 1 : y + k;
        acc += kernel[k + radius] * rows[yy * width + x];
      }
      out[y * width + x] = acc;
    }
  }
  return out;
}
