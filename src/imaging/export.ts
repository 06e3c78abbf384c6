/**
 * Masks out of maskloop: label images other tools read as plain integer images (single channel,
 * uint8 or uint16, no palette, no colour profile), COCO JSON, and overlay pictures for people.
 */
import { writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { CocoDataset } from './coco';
import { encodeTiff } from './tiff';
import type { ChannelRange } from './normalize';
import { percentileRanges } from './normalize';
import type { LabelImage, RawImage } from './types';

export type LabelFormat = 'png' | 'tiff';

export interface LabelExportOptions {
  /** 'auto' (default): 8 bits when every id fits, else 16; 32 (TIFF only) for ids above 65535. */
  bitDepth?: 8 | 16 | 32 | 'auto';
  /** TIFF compression (default 'deflate': lossless, read by Fiji, napari and libtiff). */
  compression?: 'none' | 'deflate';
}

function maxLabel(labels: LabelImage): number {
  let max = 0;
  const { data } = labels;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v > max) max = v;
    else if (v < 0) throw new RangeError(`label images hold non-negative ids; found ${v}`);
  }
  return max;
}

/** The bit depth a label image is written with. */
export function labelBitDepth(labels: LabelImage, requested: LabelExportOptions['bitDepth'] = 'auto', format: LabelFormat = 'png'): 8 | 16 | 32 {
  const max = maxLabel(labels);
  const needed = max <= 255 ? 8 : max <= 65535 ? 16 : 32;
  const depth = requested === 'auto' ? needed : requested;
  if (depth < needed) throw new RangeError(`id ${max} does not fit in ${depth} bits`);
  if (depth === 32 && format === 'png') throw new RangeError(`id ${max} exceeds 65535: PNG holds at most 16 bits; write a TIFF`);
  return depth;
}

/** Encodes a label image as a single-channel PNG or TIFF with the ids as stored values. */
export async function encodeLabelImage(labels: LabelImage, format: LabelFormat, options: LabelExportOptions = {}): Promise<Buffer> {
  const { width, height, data } = labels;
  if (data.length !== width * height) throw new RangeError(`label data has ${data.length} values for ${width}x${height}`);
  const depth = labelBitDepth(labels, options.bitDepth, format);
  const values = depth === 8 ? Uint8Array.from(data) : depth === 16 ? Uint16Array.from(data) : Uint32Array.from(data);
  if (format === 'tiff') {
    // ImageJ's own description with a display range: Fiji shows ids 0..max in full contrast
    // instead of a black image (the pixel values stay the ids).
    const description = `ImageJ=1.54f\nmin=0\nmax=${Math.max(1, maxLabel(labels))}\n`;
    return encodeTiff([{ width, height, channels: 1, bitDepth: depth, data: values, description }], { compression: options.compression ?? 'deflate' });
  }
  const raw = sharp(values, { raw: { width, height, channels: 1 } });
  // Without the explicit interpretation sharp widens grey to RGB, or squeezes 16 bits into 8.
  return raw
    .toColourspace(depth === 16 ? 'grey16' : 'b-w')
    .png({ palette: false, compressionLevel: 6, adaptiveFiltering: false })
    .toBuffer();
}

export async function writeLabelImage(path: string, labels: LabelImage, options: LabelExportOptions & { format?: LabelFormat } = {}): Promise<void> {
  const format = options.format ?? (/\.tiff?$/i.test(path) ? 'tiff' : /\.png$/i.test(path) ? 'png' : undefined);
  if (!format) throw new RangeError(`${path}: cannot tell the format from the name; pass format 'png' or 'tiff'`);
  await writeFile(path, await encodeLabelImage(labels, format, options));
}

export async function writeCocoJson(path: string, dataset: CocoDataset): Promise<void> {
  await writeFile(path, JSON.stringify(dataset));
}

export interface OverlayOptions {
  /** Intensity window of the image (default: 1st-99.8th percentile per channel). */
  ranges?: ChannelRange[];
  /** Opacity of the fill, 0 = outlines only (default 0.35). */
  fillOpacity?: number;
  /** Draw each object's boundary in its colour at full opacity (default true). */
  outline?: boolean;
  /** Colour of an object id as [r, g, b] 0-255 (default: spread hues, stable per id). */
  colourOf?: (id: number) => [number, number, number];
}

/** Distinct, stable colours: hue steps by the golden angle, so neighbouring ids differ strongly. */
export function labelColour(id: number): [number, number, number] {
  const hue = (id * 0.618033988749895) % 1;
  const s = 0.85;
  const v = 1;
  const i = Math.floor(hue * 6);
  const f = hue * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

/**
 * An 8-bit RGB picture of the image (percentile-windowed; grey or its first three channels) with
 * each object filled and outlined in its own colour. Pixels; encode with overlayPng.
 */
export function renderOverlay(image: RawImage, labels: LabelImage, options: OverlayOptions = {}): Uint8Array {
  const { width, height } = image;
  if (labels.width !== width || labels.height !== height) {
    throw new RangeError(`labels are ${labels.width}x${labels.height}, the image ${width}x${height}`);
  }
  const ranges = options.ranges ?? percentileRanges(image);
  const fill = options.fillOpacity ?? 0.35;
  const outline = options.outline ?? true;
  const colourOf = options.colourOf ?? labelColour;
  const colours = new Map<number, [number, number, number]>();
  const out = new Uint8Array(width * height * 3);
  const { data, channels } = image;
  const shown = channels >= 3 ? 3 : 1;
  const ids = labels.data;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const rgb = [0, 0, 0];
      for (let c = 0; c < 3; c++) {
        const ch = shown === 3 ? c : 0;
        const { low, high } = ranges[ch];
        const v = high > low ? (data[p * channels + ch] - low) / (high - low) : 0;
        rgb[c] = Math.round(255 * (v > 1 ? 1 : v >= 0 ? v : 0));
      }
      const id = ids[p];
      if (id !== 0) {
        let colour = colours.get(id);
        if (!colour) {
          colour = colourOf(id);
          colours.set(id, colour);
        }
        const edge =
          outline &&
          ((x > 0 && ids[p - 1] !== id) ||
            (x < width - 1 && ids[p + 1] !== id) ||
            (y > 0 && ids[p - width] !== id) ||
            (y < height - 1 && ids[p + width] !== id));
        const alpha = edge ? 1 : fill;
        for (let c = 0; c < 3; c++) rgb[c] = Math.round(rgb[c] * (1 - alpha) + colour[c] * alpha);
      }
      out.set(rgb, p * 3);
    }
  }
  return out;
}

export async function overlayPng(image: RawImage, labels: LabelImage, options: OverlayOptions = {}): Promise<Buffer> {
  const pixels = renderOverlay(image, labels, options);
  return sharp(pixels, { raw: { width: image.width, height: image.height, channels: 3 } }).png().toBuffer();
}

export async function writeOverlay(path: string, image: RawImage, labels: LabelImage, options: OverlayOptions = {}): Promise<void> {
  await writeFile(path, await overlayPng(image, labels, options));
}
