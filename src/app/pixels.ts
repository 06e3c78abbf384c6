/**
 * Pixels for the renderer: stored sample values (16-bit stays 16-bit), display facts per channel
 * (range, percentile window, histogram), PNG thumbnails, and masks as raw little-endian bytes.
 * Decoded images are kept in a small cache: opening an image asks for its details and its pixels
 * in quick succession, and decoding a large TIFF twice would double the wait.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { decodeImage } from '../imaging/decode';
import { percentileRanges } from '../imaging/normalize';
import { readRegion } from '../imaging/region';
import type { RawImage } from '../imaging/types';
import { BINARY_HEADERS, type Region } from '../shared/binary';
import type { ChannelContrast, PixelDtype } from '../shared/types';
import type { ImageRecord, LabelMask, Project } from '../store';
import { argumentError } from './errors';

export interface BinaryBody {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

const CACHE_SIZE = 4;
const HISTOGRAM_BINS = 256;
export const DEFAULT_THUMBNAIL = 192;
export const MAX_THUMBNAIL = 512;

export function pixelDtype(image: RawImage): PixelDtype {
  return image.data instanceof Uint8Array ? 'uint8' : image.data instanceof Uint16Array ? 'uint16' : 'float32';
}

function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class PixelCache {
  private readonly images = new Map<string, Promise<RawImage>>();
  private readonly contrasts = new Map<string, ChannelContrast[]>();

  /** The whole first plane, as stored; keyed by content hash so a changed file is never served stale. */
  decoded(record: ImageRecord): Promise<RawImage> {
    const key = `${record.absolutePath}|${record.contentHash}`;
    let pending = this.images.get(key);
    if (pending) {
      // Most recently used last.
      this.images.delete(key);
      this.images.set(key, pending);
      return pending;
    }
    pending = decodeImage(record.absolutePath, { grey: record.channels === 1 });
    pending.catch(() => this.images.delete(key));
    this.images.set(key, pending);
    while (this.images.size > CACHE_SIZE) this.images.delete(this.images.keys().next().value as string);
    return pending;
  }

  async contrast(record: ImageRecord): Promise<ChannelContrast[]> {
    const cached = this.contrasts.get(record.contentHash);
    if (cached) return cached;
    const result = channelContrast(await this.decoded(record));
    this.contrasts.set(record.contentHash, result);
    return result;
  }

  async pixels(record: ImageRecord, region?: Region): Promise<BinaryBody> {
    if (region) {
      if (region.x + region.width > record.width || region.y + region.height > record.height) {
        throw argumentError(`region ${region.x},${region.y} ${region.width}x${region.height} lies outside the ${record.width}x${record.height} image`);
      }
    }
    const image = region ? await readRegion(record.absolutePath, region.x, region.y, region.width, region.height, { grey: record.channels === 1 }) : await this.decoded(record);
    const r = region ?? { x: 0, y: 0, width: image.width, height: image.height };
    return {
      status: 200,
      headers: {
        'content-type': 'application/octet-stream',
        [BINARY_HEADERS.width]: String(image.width),
        [BINARY_HEADERS.height]: String(image.height),
        [BINARY_HEADERS.channels]: String(image.channels),
        [BINARY_HEADERS.bitDepth]: String(image.bitDepth),
        [BINARY_HEADERS.dtype]: pixelDtype(image),
        [BINARY_HEADERS.region]: `${r.x},${r.y},${r.width},${r.height}`,
        [BINARY_HEADERS.imageWidth]: String(record.width),
        [BINARY_HEADERS.imageHeight]: String(record.height),
      },
      body: bytesOf(image.data),
    };
  }

  /** An 8-bit PNG with the automatic contrast window, cached under cache/thumbnails. */
  async thumbnail(project: Project, record: ImageRecord, size: number): Promise<BinaryBody> {
    const file = project.cachePath('thumbnails', `${record.contentHash}-${size}.png`);
    let png: Buffer;
    if (fs.existsSync(file)) {
      png = fs.readFileSync(file);
    } else {
      const image = await this.decoded(record);
      const contrast = await this.contrast(record);
      const shown = image.channels === 3 ? [0, 1, 2] : [0];
      const pixels = image.width * image.height;
      const out = new Uint8Array(pixels * shown.length);
      for (const [k, c] of shown.entries()) {
        const { low, high } = contrast[c];
        const scale = high > low ? 255 / (high - low) : 0;
        for (let i = 0, j = c, o = k; i < pixels; i++, j += image.channels, o += shown.length) {
          const v = (image.data[j] - low) * scale;
          out[o] = v <= 0 ? 0 : v >= 255 ? 255 : v;
        }
      }
      png = await sharp(out, { raw: { width: image.width, height: image.height, channels: shown.length as 1 | 3 } })
        .resize({ width: size, height: size, fit: 'inside', withoutEnlargement: true })
        .png()
        .toBuffer();
      // Atomic: two requests for the same thumbnail must not see half a file.
      const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(tmp, png);
      fs.renameSync(tmp, file);
    }
    return { status: 200, headers: { 'content-type': 'image/png', 'cache-control': 'private, max-age=3600' }, body: new Uint8Array(png.buffer, png.byteOffset, png.byteLength) };
  }
}

/** Range, 1st/99.8th percentile window (what the engine normalises to) and a histogram per channel. */
export function channelContrast(image: RawImage): ChannelContrast[] {
  const ranges = percentileRanges(image);
  const pixels = image.width * image.height;
  const out: ChannelContrast[] = [];
  for (let c = 0; c < image.channels; c++) {
    let min = Infinity;
    let max = -Infinity;
    for (let i = c; i < image.data.length; i += image.channels) {
      const v = image.data[i];
      if (v < min) min = v;
      if (v > max) max = v;
    }
    if (pixels === 0) min = max = 0;
    const histogram = new Array<number>(HISTOGRAM_BINS).fill(0);
    const width = max > min ? (max - min) / HISTOGRAM_BINS : 1;
    for (let i = c; i < image.data.length; i += image.channels) {
      histogram[Math.min(HISTOGRAM_BINS - 1, Math.floor((image.data[i] - min) / width))]++;
    }
    out.push({ min, max, low: ranges[c].low, high: ranges[c].high, histogram });
  }
  return out;
}

/** A label or proposal mask (and the unknown flags after it, when there are some) as a binary response. */
export function maskBody(mask: LabelMask, extra: Record<string, string>, unknown: Uint8Array | null = null): BinaryBody {
  const data = bytesOf(mask.data);
  const body = unknown ? new Uint8Array(data.byteLength + unknown.byteLength) : data;
  if (unknown) {
    body.set(data, 0);
    body.set(unknown, data.byteLength);
  }
  const dtype = mask.data instanceof Uint8Array ? 'uint8' : mask.data instanceof Uint16Array ? 'uint16' : 'int32';
  return {
    status: 200,
    headers: {
      'content-type': 'application/octet-stream',
      [BINARY_HEADERS.width]: String(mask.width),
      [BINARY_HEADERS.height]: String(mask.height),
      [BINARY_HEADERS.dtype]: dtype,
      [BINARY_HEADERS.hasUnknown]: unknown ? '1' : '0',
      ...extra,
    },
    body,
  };
}

export function floatBody(width: number, height: number, data: Float32Array, extra: Record<string, string>): BinaryBody {
  return {
    status: 200,
    headers: { 'content-type': 'application/octet-stream', [BINARY_HEADERS.width]: String(width), [BINARY_HEADERS.height]: String(height), [BINARY_HEADERS.dtype]: 'float32', ...extra },
    body: bytesOf(data),
  };
}
