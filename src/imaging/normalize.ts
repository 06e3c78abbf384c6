import type { RawImage } from './types';

/** The intensity window of one channel: low maps to 0, high to 1. */
export interface ChannelRange {
  low: number;
  high: number;
}

export interface PercentileOptions {
  /** Lower percentile, in percent (default 1). */
  lowPercentile?: number;
  /** Upper percentile, in percent (default 99.8). */
  highPercentile?: number;
  /**
   * Use every stride-th pixel when counting. Default: 1 up to `maxSamples` pixels, then the
   * smallest stride that keeps the count at or below it.
   */
  stride?: number;
  /** Sample budget for the automatic stride (default 2^22 pixels). */
  maxSamples?: number;
  /**
   * Narrowest window per channel (see spanFloor): a narrower window is widened upwards from its
   * low end. Channels without an entry keep their percentile window.
   */
  minSpans?: readonly number[];
}

export interface NormalizeOptions extends PercentileOptions {
  /** Clip the result to [0, 1] (default true). */
  clip?: boolean;
}

export interface NormalizedImage {
  width: number;
  height: number;
  channels: number;
  /** Interleaved HWC, like RawImage.data. */
  data: Float32Array;
  /** The window used per channel: pass it to normalizeWithRanges for the other tiles of the image. */
  ranges: ChannelRange[];
}

const DEFAULT_LOW = 1;
const DEFAULT_HIGH = 99.8;
const DEFAULT_MAX_SAMPLES = 1 << 22;
/** Bin count for float data, whose values cannot index a histogram directly. */
const FLOAT_BINS = 1 << 16;

/** Per-channel percentile windows, from histograms: O(pixels), no sort, no copy of the image. */
export function percentileRanges(image: RawImage, options: PercentileOptions = {}): ChannelRange[] {
  const lowP = options.lowPercentile ?? DEFAULT_LOW;
  const highP = options.highPercentile ?? DEFAULT_HIGH;
  if (!(lowP >= 0 && highP <= 100 && lowP <= highP)) {
    throw new RangeError(`percentiles must satisfy 0 <= low <= high <= 100, got ${lowP}, ${highP}`);
  }
  const pixels = image.width * image.height;
  const stride = samplingStride(pixels, options);
  const ranges: ChannelRange[] = [];
  for (let c = 0; c < image.channels; c++) {
    const [low, high] = channelPercentiles(image, c, stride, [lowP, highP]);
    ranges.push({ low, high: Math.max(high, low + (options.minSpans?.[c] ?? 0)) });
  }
  return ranges;
}

/**
 * An image's own window is trusted down to this share of the set's reference window (spanFloor).
 * An empty field of view holds only background noise; stretched to [0, 1] on its own, that noise
 * looks like the objects of the other images (measured: BBBC039's three empty fields span 32–44
 * grey levels against 600–4000 for its fields with nuclei, and a model called 90% of one empty
 * field foreground).
 */
export const SPAN_FLOOR_SHARE = 0.25;

/**
 * Where in the set's spread of windows the reference window lies: the 10th percentile, not the
 * median, so that a project mixing acquisitions keeps its dim group's own windows (ctc-samples
 * mixes fields spanning 47–119 grey levels with fields spanning 1300–2500) as long as that group
 * is a tenth of the images or more. Empty fields must be fewer than that to be caught; when they
 * are more, the floor falls below them and nothing changes.
 */
const REFERENCE_PERCENTILE = 10;

/**
 * The narrowest window per channel that images of a set get (minSpans of percentileRanges):
 * SPAN_FLOOR_SHARE of the 10th-percentile width among the given images' percentile windows
 * (none for a channel no image has).
 */
export function spanFloor(windows: readonly ChannelRange[][]): number[] {
  const channels = Math.max(0, ...windows.map((w) => w.length));
  return Array.from({ length: channels }, (_, c) => {
    const spans = windows.filter((w) => c < w.length).map((w) => w[c].high - w[c].low).sort((a, b) => a - b);
    // numpy's default percentile, as for the windows themselves.
    const rank = (REFERENCE_PERCENTILE / 100) * (spans.length - 1);
    const lower = Math.floor(rank);
    const upper = Math.min(lower + 1, spans.length - 1);
    return SPAN_FLOOR_SHARE * (spans[lower] + (rank - lower) * (spans[upper] - spans[lower]));
  });
}

/**
 * Percentiles of one channel, with numpy's default definition (linear interpolation between the
 * order statistics at rank p/100 * (n - 1)). Exact for 8- and 16-bit data; float data is binned
 * into 65536 bins between its min and max, so there it is exact to a bin width.
 */
export function channelPercentiles(
  image: RawImage,
  channel: number,
  stride: number,
  percentiles: number[],
): number[] {
  const { data, channels } = image;
  const pixels = image.width * image.height;
  const step = stride * channels;
  const end = pixels * channels;

  if (image.bitDepth !== 32) {
    const hist = new Uint32Array(image.bitDepth === 8 ? 256 : 65536);
    let n = 0;
    for (let i = channel; i < end; i += step) {
      hist[data[i]]++;
      n++;
    }
    return percentiles.map((p) => percentileFromHistogram(hist, n, p, 0, 1));
  }

  let min = Infinity;
  let max = -Infinity;
  for (let i = channel; i < end; i += step) {
    const v = data[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!(min <= max)) return percentiles.map(() => 0); // no finite value at all
  if (min === max) return percentiles.map(() => min);
  const hist = new Uint32Array(FLOAT_BINS);
  const scale = (FLOAT_BINS - 1) / (max - min);
  let n = 0;
  for (let i = channel; i < end; i += step) {
    const v = data[i];
    if (v >= min && v <= max) {
      hist[Math.round((v - min) * scale)]++;
      n++;
    }
  }
  return percentiles.map((p) => percentileFromHistogram(hist, n, p, min, 1 / scale));
}

/** Value at percentile p of n samples counted in hist, bin b standing for value origin + b * width. */
function percentileFromHistogram(hist: Uint32Array, n: number, p: number, origin: number, width: number): number {
  if (n === 0) return origin;
  const rank = (p / 100) * (n - 1);
  const lowerRank = Math.floor(rank);
  const fraction = rank - lowerRank;
  const lower = binHoldingRank(hist, lowerRank);
  const upper = fraction > 0 ? binHoldingRank(hist, lowerRank + 1) : lower;
  return origin + width * (lower + fraction * (upper - lower));
}

/** The bin of the sample with 0-based rank r in sorted order. */
function binHoldingRank(hist: Uint32Array, rank: number): number {
  let seen = 0;
  for (let b = 0; b < hist.length; b++) {
    seen += hist[b];
    if (seen > rank) return b;
  }
  return hist.length - 1;
}

function samplingStride(pixels: number, options: PercentileOptions): number {
  if (options.stride !== undefined) {
    if (!Number.isInteger(options.stride) || options.stride < 1) {
      throw new RangeError(`stride must be a positive integer, got ${options.stride}`);
    }
    return options.stride;
  }
  const budget = options.maxSamples ?? DEFAULT_MAX_SAMPLES;
  return Math.max(1, Math.ceil(pixels / budget));
}

/** Maps each channel's [low, high] to [0, 1]; a channel with high <= low becomes all zeros. */
export function normalizeWithRanges(image: RawImage, ranges: ChannelRange[], clip = true): Float32Array {
  if (ranges.length !== image.channels) {
    throw new RangeError(`got ${ranges.length} ranges for ${image.channels} channel(s)`);
  }
  const { data, channels } = image;
  const out = new Float32Array(data.length);
  for (let c = 0; c < channels; c++) {
    const { low, high } = ranges[c];
    const scale = high > low ? 1 / (high - low) : 0;
    for (let i = c; i < data.length; i += channels) {
      let v = (data[i] - low) * scale;
      // Written so that NaN (from float data) also lands on 0.
      if (clip) v = v > 1 ? 1 : v >= 0 ? v : 0;
      out[i] = v;
    }
  }
  return out;
}

/** Percentile normalization per channel (default 1st–99.8th percentile to [0, 1], clipped). */
export function normalizePercentile(image: RawImage, options: NormalizeOptions = {}): NormalizedImage {
  const ranges = percentileRanges(image, options);
  return {
    width: image.width,
    height: image.height,
    channels: image.channels,
    data: normalizeWithRanges(image, ranges, options.clip ?? true),
    ranges,
  };
}
