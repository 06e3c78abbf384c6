/**
 * Images larger than memory: windows read from disk, intensity windows from a strided read, and
 * a PixelSource for the engine's tiled predictor that never holds the whole image.
 *
 * TIFFs go through TiffReader (synchronous, only the strips and tiles a window touches). Formats
 * that cannot be read piecewise synchronously (PNG, JPEG, JPEG-compressed or palette TIFFs) are
 * decoded whole once; `mode` says which happened, so a caller can warn about memory.
 */
import { basename } from 'node:path';
import { reflect, type PixelSource } from './source';
import { decodeImage, ImageDecodeError } from './decode';
import { interleave, planeLayout } from './import';
import type { ChannelRange, PercentileOptions } from './normalize';
import { percentileRanges } from './normalize';
import { isTiffSignature, keptSamples, pageBitDepth, TiffError, TiffReader, unsupportedReason } from './tiff';
import type { BitDepth, PixelArray, RawImage } from './types';
import { arrayForDepth, extractChannel } from './types';
import { closeSync, openSync, readSync } from 'node:fs';

export interface RegionOptions {
  /** Page (IFD) to read; default: the first plane. */
  page?: number;
  /**
   * Pages to read as the channels of one image (an OME-TIFF's channel pages). Default: the
   * channels at z = 0, t = 0 of an OME or ImageJ hyperstack, else the first page alone.
   */
  planes?: number[];
  /** Decoded strips/tiles kept for reuse by TiffReader (default 64 MiB). */
  cacheBytes?: number;
  /** Grey saved as RGB (recorded at import): read the first channel only (DecodeOptions.grey). */
  grey?: boolean;
}

/** Synchronous windows of stored values, whatever the file. */
interface WindowReader {
  width: number;
  height: number;
  channels: number;
  bitDepth: BitDepth;
  mode: 'tiled' | 'in-memory';
  read(x: number, y: number, w: number, h: number): PixelArray;
  close(): void;
}

function sniffTiff(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && isTiffSignature(head);
  } finally {
    closeSync(fd);
  }
}

function defaultPlanes(reader: TiffReader, path: string): number[] {
  const layout = planeLayout(reader.structure, basename(path));
  if ((layout.source === 'ome' || layout.source === 'imagej') && layout.sizeC > 1) {
    const pages = layout.planeIfds.slice(0, layout.sizeC);
    if (pages.every((p) => p >= 0)) return pages;
  }
  return [layout.planeIfds[0] >= 0 ? layout.planeIfds[0] : 0];
}

async function openWindowReader(path: string, options: RegionOptions): Promise<WindowReader> {
  const reader = await openStoredReader(path, options);
  return options.grey && reader.channels > 1 ? firstChannelReader(reader) : reader;
}

/** A reader of channel 0 of another. */
function firstChannelReader(reader: WindowReader): WindowReader {
  const { channels, bitDepth } = reader;
  return {
    ...reader,
    channels: 1,
    read: (x, y, w, h) => extractChannel({ width: w, height: h, channels, bitDepth, data: reader.read(x, y, w, h) }, 0).data,
  };
}

async function openStoredReader(path: string, options: RegionOptions): Promise<WindowReader> {
  let pages = options.planes ?? (options.page !== undefined ? [options.page] : undefined);
  if (sniffTiff(path)) {
    let reader: TiffReader | undefined;
    try {
      reader = TiffReader.open(path, { cacheBytes: options.cacheBytes });
    } catch (error) {
      if (!(error instanceof TiffError)) throw error;
      throw new ImageDecodeError(path, error.message, { cause: error });
    }
    pages ??= defaultPlanes(reader, path);
    const all = reader.structure.pages;
    for (const p of pages) {
      if (!all[p]) {
        reader.close();
        throw new ImageDecodeError(path, `page ${p} requested, the file has ${all.length} page(s)`);
      }
    }
    const first = all[pages[0]];
    const readable = pages.every((p) => {
      const page = all[p];
      return (
        unsupportedReason(page) === null &&
        page.width === first.width &&
        page.height === first.height &&
        pageBitDepth(page) === pageBitDepth(first)
      );
    });
    if (readable) {
      const r = reader;
      const perPage = pages.map((p) => keptSamples(all[p]).length);
      const channels = perPage.reduce((a, b) => a + b, 0);
      const bitDepth = pageBitDepth(first);
      return {
        width: first.width,
        height: first.height,
        channels,
        bitDepth,
        mode: 'tiled',
        read: (x, y, w, h) => {
          try {
            if (pages!.length === 1) return r.readWindow(pages![0], x, y, w, h);
            const parts = pages!.map((p) => r.readWindow(p, x, y, w, h));
            const out = arrayForDepth(bitDepth, w * h * channels);
            let c0 = 0;
            parts.forEach((part, k) => {
              const n = perPage[k];
              for (let i = 0; i < w * h; i++) for (let c = 0; c < n; c++) out[i * channels + c0 + c] = part[i * n + c];
              c0 += n;
            });
            return out;
          } catch (error) {
            if (error instanceof TiffError) throw new ImageDecodeError(path, error.message, { cause: error });
            throw error;
          }
        },
        close: () => r.close(),
      };
    }
    reader.close();
  }
  const planes = await Promise.all((pages ?? [0]).map((page) => decodeImage(path, { page })));
  const image = interleave(planes, path);
  return inMemoryReader(image);
}

function inMemoryReader(image: RawImage): WindowReader {
  const { width, height, channels, bitDepth, data } = image;
  return {
    width,
    height,
    channels,
    bitDepth,
    mode: 'in-memory',
    read: (x, y, w, h) => {
      if (x === 0 && y === 0 && w === width && h === height) return data;
      const out = arrayForDepth(bitDepth, w * h * channels);
      for (let row = 0; row < h; row++) {
        const src = ((y + row) * width + x) * channels;
        out.set(data.subarray(src, src + w * channels), row * w * channels);
      }
      return out;
    },
    close: () => {},
  };
}

function checkWindow(reader: WindowReader, x: number, y: number, w: number, h: number, path: string): void {
  const ok = [x, y, w, h].every(Number.isInteger) && x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= reader.width && y + h <= reader.height;
  if (!ok) {
    throw new RangeError(`${path}: window ${x},${y} ${w}x${h} is not inside the ${reader.width}x${reader.height} image`);
  }
}

/**
 * Stored values of the window (x, y, w, h) of a file, exact, channels interleaved. A TIFF is read
 * strip/tile by strip/tile; other formats are decoded by sharp with an extract, which for PNG and
 * JPEG still decodes the rows above the window.
 */
export async function readRegion(path: string, x: number, y: number, w: number, h: number, options: RegionOptions = {}): Promise<RawImage> {
  if (!sniffTiff(path)) {
    const region = { left: x, top: y, width: w, height: h };
    const pages = options.planes ?? [options.page ?? 0];
    const planes = await Promise.all(pages.map((page) => decodeImage(path, { page, region, grey: options.grey })));
    return interleave(planes, path);
  }
  const reader = await openWindowReader(path, options);
  try {
    checkWindow(reader, x, y, w, h, path);
    return { width: w, height: h, channels: reader.channels, bitDepth: reader.bitDepth, data: reader.read(x, y, w, h) };
  } finally {
    reader.close();
  }
}

export interface FileRangeOptions extends PercentileOptions, RegionOptions {}

/**
 * Per-channel percentile windows of a file without holding it: every s-th pixel of every s-th
 * row, s chosen so that at most `maxSamples` (default 2^22) pixels are counted. Images within
 * the budget are counted whole, giving exactly percentileRanges of the decoded image.
 */
export async function fileRanges(path: string, options: FileRangeOptions = {}): Promise<ChannelRange[]> {
  const reader = await openWindowReader(path, options);
  try {
    return rangesFromReader(reader, options);
  } finally {
    reader.close();
  }
}

function rangesFromReader(reader: WindowReader, options: PercentileOptions): ChannelRange[] {
  const { width, height, channels, bitDepth } = reader;
  const budget = options.maxSamples ?? 1 << 22;
  const s = Math.max(1, Math.ceil(Math.sqrt((width * height) / budget)));
  const percentiles = { lowPercentile: options.lowPercentile, highPercentile: options.highPercentile, minSpans: options.minSpans, stride: 1 };
  if (s === 1 && reader.mode === 'in-memory') {
    return percentileRanges({ width, height, channels, bitDepth, data: reader.read(0, 0, width, height) }, percentiles);
  }
  const sw = Math.ceil(width / s);
  const sh = Math.ceil(height / s);
  const sample = arrayForDepth(bitDepth, sw * sh * channels);
  // Bands of rows rather than single rows: one read per band keeps per-call overhead low.
  const band = Math.max(1, Math.min(height, Math.floor((8 << 20) / Math.max(1, width * channels * (bitDepth / 8)))));
  let row = 0;
  for (let y0 = 0; y0 < height; y0 += band) {
    const rows = Math.min(band, height - y0);
    const firstSampled = Math.ceil(y0 / s) * s;
    if (firstSampled >= y0 + rows) continue;
    if (s > 1) {
      // Only the sampled rows: with a large stride most strips are never read.
      for (let y = firstSampled; y < y0 + rows; y += s) {
        const line = reader.read(0, y, width, 1);
        for (let i = 0, x = 0; x < width; x += s, i++) {
          for (let c = 0; c < channels; c++) sample[(row * sw + i) * channels + c] = line[x * channels + c];
        }
        row++;
      }
    } else {
      sample.set(reader.read(0, y0, width, rows), row * sw * channels);
      row += rows;
    }
  }
  return percentileRanges({ width: sw, height: sh, channels, bitDepth, data: sample }, percentiles);
}

export interface FileSource extends PixelSource {
  readonly path: string;
  readonly bitDepth: BitDepth;
  /** The intensity window per channel used to normalise. */
  readonly ranges: ChannelRange[];
  /** 'tiled': read from disk per window; 'in-memory': the format forced one whole decode. */
  readonly mode: 'tiled' | 'in-memory';
  /** Stored values of a window inside the image. */
  readRaw(x: number, y: number, w: number, h: number): PixelArray;
  /** Releases the file; reads after it fail. */
  close(): void;
}


/**
 * A PixelSource for predictTiled that reads its tiles from the file: windows beyond the edge are
 * reflect-padded like the engine's in-memory crops, and values are normalised exactly as
 * normalizeWithRanges does (so a tile from disk equals the same crop of the normalised image).
 * Without `ranges`, they are measured with fileRanges.
 */
export async function fileSource(path: string, ranges?: ChannelRange[], options: FileRangeOptions = {}): Promise<FileSource> {
  const reader = await openWindowReader(path, options);
  try {
    const windows = ranges ?? rangesFromReader(reader, options);
    if (windows.length !== reader.channels) {
      throw new RangeError(`${path}: got ${windows.length} ranges for ${reader.channels} channel(s)`);
    }
    const { width, height, channels } = reader;
    const lows = windows.map((r) => r.low);
    const scales = windows.map((r) => (r.high > r.low ? 1 / (r.high - r.low) : 0));
    return {
      path,
      width,
      height,
      channels,
      bitDepth: reader.bitDepth,
      ranges: windows,
      mode: reader.mode,
      readRaw: (x, y, w, h) => {
        checkWindow(reader, x, y, w, h, path);
        return reader.read(x, y, w, h);
      },
      read: (x, y, w, h) => {
        const xs = new Int32Array(w);
        const ys = new Int32Array(h);
        let x0 = Infinity;
        let x1 = -1;
        let y0 = Infinity;
        let y1 = -1;
        for (let i = 0; i < w; i++) {
          xs[i] = reflect(x + i, width);
          x0 = Math.min(x0, xs[i]);
          x1 = Math.max(x1, xs[i]);
        }
        for (let j = 0; j < h; j++) {
          ys[j] = reflect(y + j, height);
          y0 = Math.min(y0, ys[j]);
          y1 = Math.max(y1, ys[j]);
        }
        const bw = x1 - x0 + 1;
        const raw = reader.read(x0, y0, bw, y1 - y0 + 1);
        const out = new Float32Array(w * h * channels);
        for (let j = 0; j < h; j++) {
          const srcRow = (ys[j] - y0) * bw;
          for (let i = 0; i < w; i++) {
            const src = (srcRow + xs[i] - x0) * channels;
            const dst = (j * w + i) * channels;
            for (let c = 0; c < channels; c++) {
              // The same arithmetic as normalizeWithRanges, so both give identical float32 values.
              let v = (raw[src + c] - lows[c]) * scales[c];
              v = v > 1 ? 1 : v >= 0 ? v : 0;
              out[dst + c] = v;
            }
          }
        }
        return out;
      },
      close: () => reader.close(),
    };
  } catch (error) {
    reader.close();
    throw error;
  }
}
