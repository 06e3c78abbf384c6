/**
 * Turning microscope pixels into screen colours: per-channel contrast window and colour, added
 * together (as in napari/Fiji composites). 16-bit data keeps its full range; the default window
 * is the 0.5-99.5 percentile of each channel, so a 12-bit camera image in a 16-bit file is not
 * shown black.
 */
export interface RawImage {
  width: number;
  height: number;
  channels: number;
  bitDepth: 8 | 16;
  /** Channel-interleaved: pixel i, channel c is data[i * channels + c]. */
  data: Uint8Array | Uint16Array;
}

export interface ChannelDisplay {
  /** Values at or below min are black, at or above max full colour. */
  min: number;
  max: number;
  /** 0..255 each. */
  color: [number, number, number];
  visible: boolean;
}

export const CHANNEL_COLORS: Record<string, [number, number, number]> = {
  grey: [255, 255, 255],
  red: [255, 0, 0],
  green: [0, 255, 0],
  blue: [0, 0, 255],
  magenta: [255, 0, 255],
  cyan: [0, 255, 255],
  yellow: [255, 255, 0],
};

export function defaultColors(channels: number): [number, number, number][] {
  if (channels === 1) return [CHANNEL_COLORS.grey];
  if (channels === 2) return [CHANNEL_COLORS.green, CHANNEL_COLORS.magenta];
  const cycle = [CHANNEL_COLORS.red, CHANNEL_COLORS.green, CHANNEL_COLORS.blue, CHANNEL_COLORS.cyan, CHANNEL_COLORS.magenta, CHANNEL_COLORS.yellow];
  return Array.from({ length: channels }, (_, c) => cycle[c % cycle.length]);
}

/** Histogram of one channel (65536 bins for 16-bit, 256 for 8-bit). */
export function channelHistogram(image: RawImage, channel: number): Uint32Array {
  const bins = new Uint32Array(image.bitDepth === 16 ? 65536 : 256);
  const { data, channels } = image;
  for (let i = channel; i < data.length; i += channels) bins[data[i]]++;
  return bins;
}

/** The values below which `low` and `high` percent of the pixels lie. */
export function percentileRange(histogram: Uint32Array, low = 0.5, high = 99.5): { min: number; max: number } {
  let total = 0;
  for (let v = 0; v < histogram.length; v++) total += histogram[v];
  const lowCount = (total * low) / 100;
  const highCount = (total * high) / 100;
  let min = 0;
  let max = histogram.length - 1;
  let cumulative = 0;
  let foundMin = false;
  for (let v = 0; v < histogram.length; v++) {
    cumulative += histogram[v];
    if (!foundMin && cumulative > lowCount) {
      min = v;
      foundMin = true;
    }
    if (cumulative >= highCount) {
      max = v;
      break;
    }
  }
  // A flat image (or a window of one value) still needs a non-empty window.
  if (max <= min) max = min + 1;
  return { min, max };
}

export function autoContrast(image: RawImage, low = 0.5, high = 99.5): ChannelDisplay[] {
  const colors = defaultColors(image.channels);
  return colors.map((color, c) => ({ ...percentileRange(channelHistogram(image, c), low, high), color, visible: true }));
}

/** Full range of the data type (what a viewer without auto contrast would show). */
export function fullRange(image: Pick<RawImage, 'bitDepth'>): { min: number; max: number } {
  return { min: 0, max: image.bitDepth === 16 ? 65535 : 255 };
}

/**
 * 8-bit RGB(A) is a colour photograph of the sample (brightfield, H&E): shown in natural colour,
 * with one window for every channel, as napari's rgb layers and Fiji's RGB images are. A window
 * per channel would stretch each on its own and tint the picture.
 */
export function isNaturalColour(image: Pick<RawImage, 'channels' | 'bitDepth'>): boolean {
  return image.bitDepth === 8 && (image.channels === 3 || image.channels === 4);
}

/**
 * Each channel's window from its percentile range (`low`..`high`); linked: one window spanning
 * every channel's, the same for all.
 */
export function autoWindows(ranges: readonly { low: number; high: number }[], linked: boolean): { min: number; max: number }[] {
  const own = ranges.map((r) => ({ min: r.low, max: Math.max(r.high, r.low + 1) }));
  if (!linked || own.length === 0) return own;
  const shared = { min: Math.min(...own.map((w) => w.min)), max: Math.max(...own.map((w) => w.max)) };
  return own.map(() => ({ ...shared }));
}

/**
 * Writes RGBA for the whole image. One lookup table per channel (value -> 0..255) keeps it to a
 * few additions per pixel, so re-windowing a 4096 x 4096 16-bit image stays well under a second.
 */
export function renderDisplay(image: RawImage, displays: readonly ChannelDisplay[], out: Uint8ClampedArray): void {
  const { width, height, channels, data } = image;
  const n = width * height;
  if (out.length !== n * 4) throw new Error(`output has ${out.length} bytes, expected ${n * 4}`);
  const levels = image.bitDepth === 16 ? 65536 : 256;
  const active = displays
    .map((d, c) => ({ d, c }))
    .filter(({ d, c }) => d.visible && c < channels)
    .map(({ d, c }) => {
      const lut = new Uint8Array(levels);
      const span = Math.max(1e-9, d.max - d.min);
      for (let v = 0; v < levels; v++) lut[v] = Math.round(Math.min(1, Math.max(0, (v - d.min) / span)) * 255);
      return { c, lut, r: d.color[0], g: d.color[1], b: d.color[2] };
    });
  if (active.length === 1 && active[0].r === 255 && active[0].g === 255 && active[0].b === 255) {
    // Grey: the common case, one lookup per pixel.
    const { c, lut } = active[0];
    for (let i = 0, o = 0; i < n; i++, o += 4) {
      const v = lut[data[i * channels + c]];
      out[o] = v;
      out[o + 1] = v;
      out[o + 2] = v;
      out[o + 3] = 255;
    }
    return;
  }
  for (let i = 0, o = 0; i < n; i++, o += 4) {
    let r = 0, g = 0, b = 0;
    const base = i * channels;
    for (const ch of active) {
      const v = ch.lut[data[base + ch.c]];
      r += v * ch.r;
      g += v * ch.g;
      b += v * ch.b;
    }
    // Uint8ClampedArray saturates overlapping channels at 255.
    out[o] = r / 255;
    out[o + 1] = g / 255;
    out[o + 2] = b / 255;
    out[o + 3] = 255;
  }
}
