/**
 * TIFF structure, pixels and metadata without sharp: the IFD chain and its tags, strips and tiles
 * read synchronously by file position, and a writer for plain baseline TIFFs.
 *
 * Why not sharp alone: sharp does not expose ImageDescription (where OME-XML and ImageJ keep the
 * channel/stack layout), cannot say whether every strip lies inside the file (a truncated TIFF
 * decodes "fine" with grey where the data was), and has no synchronous API, while the engine's
 * tiled predictor reads pixels synchronously. sharp remains the decoder for everything this
 * module declines (JPEG-in-TIFF, palette, 1-bit, CMYK, signed integers...).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { deflateSync, inflateSync } from 'node:zlib';
import type { BitDepth, PixelArray } from './types';
import { arrayForDepth } from './types';

/** A TIFF that cannot be parsed or read, with the kind of problem for import reports. */
export class TiffError extends Error {
  readonly kind: 'truncated' | 'corrupt' | 'unsupported';

  constructor(kind: 'truncated' | 'corrupt' | 'unsupported', message: string) {
    super(message);
    this.name = 'TiffError';
    this.kind = kind;
  }
}

const COMPRESSION_NAMES: Record<number, string> = {
  1: 'none', 2: 'CCITT RLE', 3: 'CCITT G3', 4: 'CCITT G4', 5: 'LZW', 6: 'old JPEG', 7: 'JPEG', 8: 'deflate',
  32773: 'PackBits', 32946: 'deflate', 33003: 'JPEG 2000', 33005: 'JPEG 2000', 34712: 'JPEG 2000',
  34887: 'LERC', 34925: 'LZMA', 50000: 'zstd', 50001: 'WebP', 50002: 'JPEG XL',
};

/** Compressions this module decodes itself; anything else is read through sharp. */
const DECODABLE = new Set<number>([1, 5, 8, 32773, 32946]);

export interface TiffPage {
  /** Position in the IFD chain (sharp's `page`). */
  index: number;
  /** File offset of the IFD. */
  offset: number;
  width: number;
  height: number;
  samplesPerPixel: number;
  /** Bits of each sample; pages with mixed sample sizes are refused as unsupported when read. */
  bitsPerSample: number[];
  /** 1 unsigned integer, 2 signed integer, 3 IEEE float. */
  sampleFormat: number;
  compression: number;
  predictor: number;
  /** 0 white is zero, 1 black is zero, 2 RGB, 3 palette, 5 CMYK, 6 YCbCr, ... */
  photometric: number;
  /** 1 interleaved samples, 2 one plane per sample. */
  planarConfig: number;
  /** NewSubfileType: bit 0 marks a reduced-resolution copy (pyramid level, thumbnail). */
  subfileType: number;
  /** ExtraSamples: 1 associated alpha, 2 unassociated alpha, 0 unspecified. */
  extraSamples: number[];
  tiled: boolean;
  /** Tile size, or (width, rows per strip) for strips. */
  chunkWidth: number;
  chunkHeight: number;
  offsets: number[];
  byteCounts: number[];
  description?: string;
  dateTime?: string;
  software?: string;
  /** SubIFDs: offsets of reduced-resolution levels (OME-TIFF pyramids), not part of the chain. */
  subIfds: number[];
}

export interface TiffStructure {
  littleEndian: boolean;
  bigTiff: boolean;
  fileSize: number;
  pages: TiffPage[];
  /** Oddities that do not stop reading (a malformed DateTime, unknown tag types, ...). */
  warnings: string[];
}

/** Positional reads: a file descriptor or bytes already in memory. */
export interface ByteSource {
  size: number;
  read(position: number, length: number): Uint8Array;
}

export function bufferSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read: (position, length) => {
      if (position < 0 || position + length > bytes.length) {
        throw new TiffError('truncated', `needs bytes ${position}..${position + length} but the file has ${bytes.length}`);
      }
      return bytes.subarray(position, position + length);
    },
  };
}

export function fileByteSource(fd: number): ByteSource {
  const size = fstatSync(fd).size;
  return {
    size,
    read: (position, length) => {
      if (position < 0 || position + length > size) {
        throw new TiffError('truncated', `needs bytes ${position}..${position + length} but the file has ${size}`);
      }
      const out = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, position + done);
        if (n === 0) throw new TiffError('truncated', `the file ended at byte ${position + done}`);
        done += n;
      }
      return out;
    },
  };
}

export function isTiffSignature(head: Uint8Array): boolean {
  if (head.length < 4) return false;
  const ii = head[0] === 0x49 && head[1] === 0x49 && head[3] === 0;
  const mm = head[0] === 0x4d && head[1] === 0x4d && head[2] === 0;
  return (ii && (head[2] === 42 || head[2] === 43)) || (mm && (head[3] === 42 || head[3] === 43));
}

const TYPE_SIZES: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8 };
/** Guards against IFDs that claim millions of entries or pages (random bytes do). */
const MAX_ENTRIES = 4096;
const MAX_PAGES = 1 << 20;

/** Parses the header and the whole IFD chain; checks nothing about pixel data (see checkTiff). */
export function parseTiff(source: ByteSource): TiffStructure {
  if (source.size < 8) throw new TiffError('truncated', `a TIFF header needs 8 bytes, the file has ${source.size}`);
  const head = source.read(0, 16 <= source.size ? 16 : 8);
  if (!isTiffSignature(head)) throw new TiffError('corrupt', 'not a TIFF signature');
  const littleEndian = head[0] === 0x49;
  const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = view(head);
  const bigTiff = h.getUint16(2, littleEndian) === 43;
  if (bigTiff && (head.length < 16 || h.getUint16(4, littleEndian) !== 8)) {
    throw new TiffError('corrupt', 'malformed BigTIFF header');
  }
  const u64 = (v: DataView, at: number) => {
    const value = Number(v.getBigUint64(at, littleEndian));
    if (!Number.isSafeInteger(value)) throw new TiffError('corrupt', 'an offset exceeds 2^53');
    return value;
  };
  const warnings: string[] = [];
  const pages: TiffPage[] = [];
  const seen = new Set<number>();
  let next = bigTiff ? u64(h, 8) : h.getUint32(4, littleEndian);
  const entrySize = bigTiff ? 20 : 12;
  const countSize = bigTiff ? 8 : 2;
  const inlineSize = bigTiff ? 8 : 4;

  while (next !== 0) {
    if (seen.has(next)) {
      warnings.push(`the IFD chain loops back to offset ${next}; stopped there`);
      break;
    }
    if (pages.length >= MAX_PAGES) throw new TiffError('unsupported', `more than ${MAX_PAGES} pages`);
    seen.add(next);
    if (next + countSize > source.size) {
      throw new TiffError('truncated', `IFD ${pages.length} at byte ${next} lies beyond the end of the file (${source.size} bytes)`);
    }
    const countView = view(source.read(next, countSize));
    const count = bigTiff ? u64(countView, 0) : countView.getUint16(0, littleEndian);
    if (count === 0 || count > MAX_ENTRIES) throw new TiffError('corrupt', `IFD ${pages.length} claims ${count} entries`);
    const ifdBytes = count * entrySize + (bigTiff ? 8 : 4);
    if (next + countSize + ifdBytes > source.size) {
      throw new TiffError('truncated', `IFD ${pages.length} (${count} entries) runs past the end of the file`);
    }
    const ifd = view(source.read(next + countSize, ifdBytes));
    const tags = new Map<number, number[] | string>();
    for (let e = 0; e < count; e++) {
      const at = e * entrySize;
      const tag = ifd.getUint16(at, littleEndian);
      const type = ifd.getUint16(at + 2, littleEndian);
      const n = bigTiff ? u64(ifd, at + 4) : ifd.getUint32(at + 4, littleEndian);
      const size = TYPE_SIZES[type];
      if (!size) {
        warnings.push(`page ${pages.length}: tag ${tag} has unknown type ${type}; ignored`);
        continue;
      }
      if (!INTERESTING.has(tag)) continue;
      if (tag === Tag.dateTime && type === 2 && n !== 20) {
        // libtiff warns about this (BBBC039's MetaMorph files carry 21 bytes); the pixels are fine.
        warnings.push(`page ${pages.length}: DateTime tag holds ${n} bytes, TIFF says 20 (harmless: pixels unaffected)`);
      }
      const length = size * n;
      let bytes: Uint8Array;
      if (length <= inlineSize) {
        bytes = new Uint8Array(ifd.buffer, ifd.byteOffset + at + (bigTiff ? 12 : 8), length);
      } else {
        const offset = bigTiff ? u64(ifd, at + 12) : ifd.getUint32(at + 8, littleEndian);
        if (offset + length > source.size) {
          throw new TiffError('truncated', `page ${pages.length}: tag ${tag} points past the end of the file`);
        }
        bytes = source.read(offset, length);
      }
      tags.set(tag, decodeValues(view(bytes), type, n, littleEndian));
    }
    pages.push(pageFromTags(tags, pages.length, next, warnings));
    const nextAt = count * entrySize;
    next = bigTiff ? u64(ifd, nextAt) : ifd.getUint32(nextAt, littleEndian);
  }
  if (pages.length === 0) throw new TiffError('corrupt', 'the TIFF has no image directory');
  return { littleEndian, bigTiff, fileSize: source.size, pages, warnings };
}

const Tag = {
  newSubfileType: 254,
  width: 256,
  height: 257,
  bitsPerSample: 258,
  compression: 259,
  photometric: 262,
  description: 270,
  stripOffsets: 273,
  samplesPerPixel: 277,
  rowsPerStrip: 278,
  stripByteCounts: 279,
  planarConfig: 284,
  software: 305,
  dateTime: 306,
  predictor: 317,
  tileWidth: 322,
  tileLength: 323,
  tileOffsets: 324,
  tileByteCounts: 325,
  subIfds: 330,
  extraSamples: 338,
  sampleFormat: 339,
} as const;
const INTERESTING = new Set<number>(Object.values(Tag));

function decodeValues(v: DataView, type: number, n: number, le: boolean): number[] | string {
  if (type === 2) {
    let s = '';
    const bytes = new Uint8Array(v.buffer, v.byteOffset, n);
    // OME-XML is UTF-8; plain TIFF text is ASCII, which UTF-8 decoding leaves alone.
    s = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
    const nul = s.indexOf('\0');
    return nul >= 0 ? s.slice(0, nul) : s;
  }
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    switch (type) {
      case 1: case 7: out[i] = v.getUint8(i); break;
      case 6: out[i] = v.getInt8(i); break;
      case 3: out[i] = v.getUint16(i * 2, le); break;
      case 8: out[i] = v.getInt16(i * 2, le); break;
      case 4: case 13: out[i] = v.getUint32(i * 4, le); break;
      case 9: out[i] = v.getInt32(i * 4, le); break;
      case 5: out[i] = v.getUint32(i * 8, le) / (v.getUint32(i * 8 + 4, le) || 1); break;
      case 10: out[i] = v.getInt32(i * 8, le) / (v.getInt32(i * 8 + 4, le) || 1); break;
      case 11: out[i] = v.getFloat32(i * 4, le); break;
      case 12: out[i] = v.getFloat64(i * 8, le); break;
      case 16: case 18: out[i] = Number(v.getBigUint64(i * 8, le)); break;
      default: out[i] = Number(v.getBigInt64(i * 8, le)); break;
    }
  }
  return out;
}

function pageFromTags(tags: Map<number, number[] | string>, index: number, offset: number, warnings: string[]): TiffPage {
  const nums = (tag: number): number[] | undefined => {
    const v = tags.get(tag);
    return Array.isArray(v) ? v : undefined;
  };
  const num = (tag: number, fallback: number): number => nums(tag)?.[0] ?? fallback;
  const text = (tag: number): string | undefined => {
    const v = tags.get(tag);
    return typeof v === 'string' ? v : undefined;
  };
  const width = num(Tag.width, 0);
  const height = num(Tag.height, 0);
  if (!(width > 0 && height > 0)) throw new TiffError('corrupt', `page ${index} has no pixel dimensions (${width}x${height})`);
  const samplesPerPixel = num(Tag.samplesPerPixel, 1);
  if (!(samplesPerPixel >= 1 && samplesPerPixel <= 256)) {
    throw new TiffError('corrupt', `page ${index} claims ${samplesPerPixel} samples per pixel`);
  }
  let bitsPerSample = nums(Tag.bitsPerSample) ?? [1];
  if (bitsPerSample.length === 1 && samplesPerPixel > 1) bitsPerSample = new Array<number>(samplesPerPixel).fill(bitsPerSample[0]);
  const tiled = tags.has(Tag.tileWidth) || tags.has(Tag.tileOffsets);
  const chunkWidth = tiled ? num(Tag.tileWidth, 0) : width;
  const rowsPerStrip = num(Tag.rowsPerStrip, height);
  // Writers put 2^32-1 for "one strip"; anything larger than the image means the same.
  const chunkHeight = tiled ? num(Tag.tileLength, 0) : Math.min(Math.max(rowsPerStrip, 1), height);
  if (!(chunkWidth > 0 && chunkHeight > 0)) throw new TiffError('corrupt', `page ${index} has tiles of size ${chunkWidth}x${chunkHeight}`);
  const offsets = nums(tiled ? Tag.tileOffsets : Tag.stripOffsets) ?? [];
  let byteCounts = nums(tiled ? Tag.tileByteCounts : Tag.stripByteCounts);
  const compression = num(Tag.compression, 1);
  const planarConfig = num(Tag.planarConfig, 1);
  if (!byteCounts) {
    // Old writers omit byte counts for uncompressed single-strip images; they follow from the size.
    if (compression === 1 && offsets.length === 1 && !tiled) {
      byteCounts = [Math.ceil((width * bitsPerSample.reduce((a, b) => a + b, 0)) / 8) * height];
      warnings.push(`page ${index}: StripByteCounts missing, computed from the image size`);
    } else {
      byteCounts = [];
    }
  }
  const dateTime = text(Tag.dateTime);
  if (dateTime !== undefined && !/^\d{4}:\d\d:\d\d \d\d:\d\d:\d\d$/.test(dateTime)) {
    warnings.push(`page ${index}: malformed DateTime tag "${dateTime.slice(0, 40)}" (harmless: pixels unaffected)`);
  }
  return {
    index,
    offset,
    width,
    height,
    samplesPerPixel,
    bitsPerSample,
    sampleFormat: num(Tag.sampleFormat, 1),
    compression,
    predictor: num(Tag.predictor, 1),
    photometric: num(Tag.photometric, samplesPerPixel >= 3 ? 2 : 1),
    planarConfig,
    subfileType: num(Tag.newSubfileType, 0),
    extraSamples: nums(Tag.extraSamples) ?? [],
    tiled,
    chunkWidth,
    chunkHeight,
    offsets,
    byteCounts,
    description: text(Tag.description),
    dateTime,
    software: text(Tag.software),
    subIfds: nums(Tag.subIfds) ?? [],
  };
}

export function compressionName(code: number): string {
  return COMPRESSION_NAMES[code] ?? `compression ${code}`;
}

function chunksAcross(page: TiffPage): number {
  return Math.ceil(page.width / page.chunkWidth);
}

function chunksDown(page: TiffPage): number {
  return Math.ceil(page.height / page.chunkHeight);
}

function expectedChunks(page: TiffPage): number {
  const planes = page.planarConfig === 2 ? page.samplesPerPixel : 1;
  return chunksAcross(page) * chunksDown(page) * planes;
}

/**
 * Checks that every strip or tile of every page lies inside the file, so a truncated file is
 * caught without decoding it. Throws TiffError (truncated or corrupt).
 */
export function checkTiff(structure: TiffStructure): void {
  for (const page of structure.pages) {
    const expected = expectedChunks(page);
    const kind = page.tiled ? 'tile' : 'strip';
    if (page.offsets.length < expected) {
      throw new TiffError('corrupt', `page ${page.index}: ${page.offsets.length} ${kind} offsets for ${expected} ${kind}s`);
    }
    if (page.byteCounts.length < expected) {
      throw new TiffError('corrupt', `page ${page.index}: ${page.byteCounts.length} ${kind} byte counts for ${expected} ${kind}s`);
    }
    for (let i = 0; i < expected; i++) {
      const end = page.offsets[i] + page.byteCounts[i];
      if (end > structure.fileSize) {
        throw new TiffError(
          'truncated',
          `page ${page.index}: ${kind} ${i} ends at byte ${end}, past the end of the file (${structure.fileSize} bytes)`,
        );
      }
    }
  }
}

/** Why this module cannot read the page's pixels itself, or null when it can. */
export function unsupportedReason(page: TiffPage): string | null {
  if (!DECODABLE.has(page.compression)) return `${compressionName(page.compression)} compression`;
  const bits = page.bitsPerSample[0];
  if (page.bitsPerSample.some((b) => b !== bits)) return `mixed sample sizes ${page.bitsPerSample.join('/')}`;
  const fmt = page.sampleFormat;
  const ok = (fmt === 1 && (bits === 8 || bits === 16)) || (fmt === 3 && bits === 32);
  if (!ok) return `${bits}-bit ${fmt === 2 ? 'signed integer' : fmt === 3 ? 'float' : 'unsigned integer'} samples`;
  if (page.photometric !== 1 && page.photometric !== 2) return `photometric interpretation ${page.photometric}`;
  if (page.predictor !== 1 && page.predictor !== 2 && page.predictor !== 3) return `predictor ${page.predictor}`;
  if (page.predictor === 3 && fmt !== 3) return 'floating-point predictor on integer samples';
  if (page.predictor === 2 && fmt === 3) return 'horizontal predictor on float samples';
  return null;
}

/**
 * Samples of a page kept by the reader: colour images give R, G, B and grey images the grey
 * sample; alpha (ExtraSamples 1 or 2) is dropped, as decodeImage drops it. Extra samples of
 * unspecified meaning are kept: microscopy writers use them for further channels.
 */
export function keptSamples(page: TiffPage): number[] {
  const colour = page.photometric === 2 ? 3 : 1;
  const kept: number[] = [];
  for (let s = 0; s < page.samplesPerPixel; s++) {
    if (s < colour) kept.push(s);
    else if (s >= colour) {
      const meaning = page.extraSamples[s - colour] ?? 0;
      if (meaning !== 1 && meaning !== 2) kept.push(s);
    }
  }
  return kept;
}

export function pageBitDepth(page: TiffPage): BitDepth {
  return page.sampleFormat === 3 ? 32 : page.bitsPerSample[0] === 16 ? 16 : 8;
}

interface CachedChunk {
  data: PixelArray;
  bytes: number;
}

export interface TiffReaderOptions {
  /** Decoded strips/tiles kept for reuse (default 64 MiB); neighbouring windows share chunks. */
  cacheBytes?: number;
}

/**
 * Synchronous window reads from a TIFF on disk: only the strips and tiles a window touches are
 * read and decoded, so memory is bounded by the window and the cache, not by the image.
 * Uncompressed strips are read row by row, so even a one-strip 200 MB image is random-access.
 */
export class TiffReader {
  readonly structure: TiffStructure;
  private readonly source: ByteSource;
  private fd: number | null;
  private readonly cache = new Map<string, CachedChunk>();
  private cachedBytes = 0;
  private readonly cacheLimit: number;

  private constructor(source: ByteSource, fd: number | null, options: TiffReaderOptions) {
    this.source = source;
    this.fd = fd;
    this.structure = parseTiff(source);
    this.cacheLimit = options.cacheBytes ?? 64 << 20;
  }

  static open(path: string, options: TiffReaderOptions = {}): TiffReader {
    const fd = openSync(path, 'r');
    try {
      return new TiffReader(fileByteSource(fd), fd, options);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  static fromBytes(bytes: Uint8Array, options: TiffReaderOptions = {}): TiffReader {
    return new TiffReader(bufferSource(bytes), null, options);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.cache.clear();
    this.cachedBytes = 0;
  }

  page(index: number): TiffPage {
    const page = this.structure.pages[index];
    if (!page) throw new RangeError(`page ${index} requested, the file has ${this.structure.pages.length} page(s)`);
    return page;
  }

  /** Channels readWindow returns for the page. */
  channels(index: number): number {
    return keptSamples(this.page(index)).length;
  }

  /**
   * Stored values of the window (x, y, w, h), interleaved HWC, kept samples only (see keptSamples).
   * The window must lie inside the page.
   */
  readWindow(index: number, x: number, y: number, w: number, h: number): PixelArray {
    const page = this.page(index);
    const reason = unsupportedReason(page);
    if (reason) throw new TiffError('unsupported', `page ${index}: ${reason}`);
    if (!(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= page.width && y + h <= page.height)) {
      throw new RangeError(`window ${x},${y} ${w}x${h} is not inside the ${page.width}x${page.height} page`);
    }
    const kept = keptSamples(page);
    const channels = kept.length;
    const depth = pageBitDepth(page);
    const out = arrayForDepth(depth, w * h * channels);
    const planar = page.planarConfig === 2;
    const spp = page.samplesPerPixel;
    const across = chunksAcross(page);
    const perPlane = across * chunksDown(page);
    const cx0 = Math.floor(x / page.chunkWidth);
    const cx1 = Math.floor((x + w - 1) / page.chunkWidth);
    const cy0 = Math.floor(y / page.chunkHeight);
    const cy1 = Math.floor((y + h - 1) / page.chunkHeight);
    const rowWise = page.compression === 1 && !page.tiled;

    for (let cy = cy0; cy <= cy1; cy++) {
      const chunkTop = cy * page.chunkHeight;
      const rowStart = Math.max(y, chunkTop);
      const rowEnd = Math.min(y + h, chunkTop + page.chunkHeight, page.height);
      for (let cx = cx0; cx <= cx1; cx++) {
        const chunkLeft = cx * page.chunkWidth;
        const colStart = Math.max(x, chunkLeft);
        const colEnd = Math.min(x + w, chunkLeft + page.chunkWidth);
        const planes = planar ? kept : [0];
        for (let pi = 0; pi < planes.length; pi++) {
          const plane = planes[pi];
          const chunkIndex = (planar ? plane * perPlane : 0) + cy * across + cx;
          const samplesHere = planar ? 1 : spp;
          let chunk: PixelArray;
          let firstRow: number;
          if (rowWise) {
            // Uncompressed strips: read just the rows the window needs.
            chunk = this.readRawRows(page, chunkIndex, rowStart - chunkTop, rowEnd - rowStart, samplesHere);
            firstRow = rowStart;
          } else {
            chunk = this.chunk(page, chunkIndex, samplesHere);
            firstRow = chunkTop;
          }
          const chunkW = rowWise ? page.width : page.chunkWidth;
          for (let row = rowStart; row < rowEnd; row++) {
            const src = ((row - firstRow) * chunkW + (colStart - chunkLeft)) * samplesHere;
            const dst = ((row - y) * w + (colStart - x)) * channels;
            const n = colEnd - colStart;
            if (planar) {
              for (let i = 0; i < n; i++) out[dst + i * channels + pi] = chunk[src + i];
            } else if (channels === spp) {
              out.set(chunk.subarray(src, src + n * spp), dst);
            } else {
              for (let i = 0; i < n; i++) {
                for (let c = 0; c < channels; c++) out[dst + i * channels + c] = chunk[src + i * spp + kept[c]];
              }
            }
          }
        }
      }
    }
    return out;
  }

  /** Decoded chunk as samples, from the cache when possible. */
  private chunk(page: TiffPage, chunkIndex: number, samples: number): PixelArray {
    const key = `${page.index}:${chunkIndex}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit.data;
    }
    const data = decodeChunk(this.source, page, chunkIndex, samples, this.structure.littleEndian);
    const bytes = data.byteLength;
    this.cache.set(key, { data, bytes });
    this.cachedBytes += bytes;
    for (const [k, entry] of this.cache) {
      if (this.cachedBytes <= this.cacheLimit || k === key) break;
      this.cache.delete(k);
      this.cachedBytes -= entry.bytes;
    }
    return data;
  }

  private readRawRows(page: TiffPage, chunkIndex: number, firstRow: number, rows: number, samples: number): PixelArray {
    const bytesPerSample = page.bitsPerSample[0] / 8;
    const rowBytes = page.width * samples * bytesPerSample;
    const start = page.offsets[chunkIndex] + firstRow * rowBytes;
    if (firstRow * rowBytes + rows * rowBytes > page.byteCounts[chunkIndex]) {
      throw new TiffError('truncated', `page ${page.index}: strip ${chunkIndex} is shorter than its rows`);
    }
    const bytes = this.source.read(start, rows * rowBytes);
    return samplesFromBytes(bytes, page, rows * page.width * samples, this.structure.littleEndian);
  }
}

/** Reads, decompresses and un-predicts one strip or tile into samples in host order. */
function decodeChunk(source: ByteSource, page: TiffPage, chunkIndex: number, samples: number, littleEndian: boolean): PixelArray {
  const offset = page.offsets[chunkIndex];
  const count = page.byteCounts[chunkIndex];
  if (offset === undefined || count === undefined) throw new TiffError('corrupt', `page ${page.index}: no ${chunkIndex}th chunk`);
  const chunkRows = page.tiled
    ? page.chunkHeight
    : Math.min(page.chunkHeight, page.height - (chunkIndex % chunksDown(page)) * page.chunkHeight);
  const bytesPerSample = page.bitsPerSample[0] / 8;
  const rowSamples = page.chunkWidth * samples;
  const expected = rowSamples * chunkRows * bytesPerSample;
  // GDAL and others leave never-written tiles out (offset and count 0): they hold zeros.
  if (count === 0) return arrayForDepth(pageBitDepth(page), rowSamples * chunkRows);
  const raw = source.read(offset, count);
  let bytes: Uint8Array;
  switch (page.compression) {
    case 1: bytes = raw; break;
    case 5: bytes = lzwDecode(raw, expected); break;
    case 8:
    case 32946:
      try {
        bytes = inflateSync(raw);
      } catch (error) {
        throw new TiffError('corrupt', `page ${page.index}: chunk ${chunkIndex} does not inflate: ${(error as Error).message}`);
      }
      break;
    case 32773: bytes = packBitsDecode(raw, expected); break;
    default: throw new TiffError('unsupported', compressionName(page.compression));
  }
  if (bytes.length < expected) {
    throw new TiffError('corrupt', `page ${page.index}: chunk ${chunkIndex} decodes to ${bytes.length} bytes, expected ${expected}`);
  }
  if (page.predictor === 3) {
    return floatPredictorDecode(bytes.subarray(0, expected), rowSamples, chunkRows, samples);
  }
  // Decompressed bytes are ours to keep: view them in place instead of copying (the raw bytes of an
  // uncompressed chunk may be the caller's file buffer, which un-predicting must not touch).
  const owned = page.compression !== 1 && littleEndian && bytes.byteOffset % 4 === 0;
  const out = owned ? samplesView(bytes, page, rowSamples * chunkRows) : samplesFromBytes(bytes.subarray(0, expected), page, rowSamples * chunkRows, littleEndian);
  if (page.predictor === 2) {
    for (let r = 0; r < chunkRows; r++) {
      const base = r * rowSamples;
      for (let i = base + samples; i < base + rowSamples; i++) out[i] += out[i - samples];
    }
  }
  return out;
}

function samplesView(bytes: Uint8Array, page: TiffPage, n: number): PixelArray {
  const bits = page.bitsPerSample[0];
  if (bits === 8) return bytes.subarray(0, n);
  return bits === 16 ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : new Float32Array(bytes.buffer, bytes.byteOffset, n);
}

/** A fresh typed array of host-order samples; a copy, so the source bytes may be reused. */
function samplesFromBytes(bytes: Uint8Array, page: TiffPage, n: number, littleEndian: boolean): PixelArray {
  const bits = page.bitsPerSample[0];
  if (bits === 8) return new Uint8Array(bytes.subarray(0, n));
  const out = bits === 16 ? new Uint16Array(n) : new Float32Array(n);
  const copy = new Uint8Array(out.buffer);
  copy.set(bytes.subarray(0, copy.length));
  if (!littleEndian) {
    const size = bits / 8;
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  }
  return out;
}

/** libtiff's floating-point predictor: byte-wise differences, then byte planes, MSB plane first. */
function floatPredictorDecode(bytes: Uint8Array, rowSamples: number, rows: number, samples: number): Float32Array {
  const out = new Float32Array(rowSamples * rows);
  const outBytes = new Uint8Array(out.buffer);
  const rowBytes = rowSamples * 4;
  const row = new Uint8Array(rowBytes);
  for (let r = 0; r < rows; r++) {
    row.set(bytes.subarray(r * rowBytes, (r + 1) * rowBytes));
    for (let i = samples; i < rowBytes; i++) row[i] = (row[i] + row[i - samples]) & 0xff;
    const base = r * rowBytes;
    for (let i = 0; i < rowSamples; i++) {
      // Host is little-endian (every platform Node ships for): least significant byte first.
      for (let b = 0; b < 4; b++) outBytes[base + 4 * i + b] = row[(3 - b) * rowSamples + i];
    }
  }
  return out;
}

/**
 * TIFF LZW (MSB-first codes, 9-12 bits, early change). A table entry is always the previous
 * code's output plus one byte, and that output sits in `out` directly before the current one,
 * so entries are (start, length) pairs into the output: no per-entry strings.
 */
export function lzwDecode(input: Uint8Array, expected: number): Uint8Array {
  const out = new Uint8Array(expected);
  const start = new Int32Array(4096);
  const length = new Int32Array(4096);
  const n = input.length;
  let pos = 0;
  // Bit buffer: the next `bits` bits of the stream sit in the low bits of `buffer`.
  let buffer = 0;
  let bits = 0;
  let inAt = 0;
  let width = 9;
  let mask = 511;
  let next = 258;
  let previous = -1;
  while (pos < expected) {
    while (bits < width) {
      if (inAt >= n) return out.subarray(0, pos);
      buffer = ((buffer << 8) | input[inAt++]) & 0xffffff;
      bits += 8;
    }
    const code = (buffer >>> (bits - width)) & mask;
    bits -= width;
    if (code === 257) break;
    if (code === 256) {
      width = 9;
      mask = 511;
      next = 258;
      previous = -1;
      continue;
    }
    const at = pos;
    if (code < 256) {
      out[pos++] = code;
    } else if (code < next && previous >= 0) {
      const s = start[code];
      const end = pos + length[code] < expected ? pos + length[code] : expected;
      for (let k = s; pos < end; ) out[pos++] = out[k++];
    } else if (code === next && previous >= 0) {
      // The code being defined right now: previous output plus its own first byte.
      const s = previous < 256 ? -1 : start[previous];
      const len = previous < 256 ? 1 : length[previous];
      const first = s < 0 ? previous : out[s];
      const end = pos + len + 1 < expected ? pos + len + 1 : expected;
      if (s < 0) out[pos++] = previous;
      else for (let k = s; pos < end && k < s + len; ) out[pos++] = out[k++];
      if (pos < end) out[pos++] = first;
    } else {
      throw new TiffError('corrupt', `LZW code ${code} before it was defined`);
    }
    if (previous >= 0 && next < 4096) {
      const prevLength = previous < 256 ? 1 : length[previous];
      start[next] = at - prevLength;
      length[next] = prevLength + 1;
      next++;
    }
    previous = code;
    if (next + 1 >= mask + 1 && width < 12) {
      width++;
      mask = (1 << width) - 1;
    }
  }
  return pos === expected ? out : out.subarray(0, pos);
}

export function packBitsDecode(input: Uint8Array, expected: number): Uint8Array {
  const out = new Uint8Array(expected);
  let i = 0;
  let pos = 0;
  while (i < input.length && pos < expected) {
    const n = (input[i++] << 24) >> 24;
    if (n >= 0) {
      const take = Math.min(n + 1, expected - pos, input.length - i);
      out.set(input.subarray(i, i + take), pos);
      i += n + 1;
      pos += take;
    } else if (n !== -128) {
      const take = Math.min(1 - n, expected - pos);
      out.fill(input[i++], pos, pos + take);
      pos += take;
    }
  }
  return pos === expected ? out : out.subarray(0, pos);
}

// ---------------------------------------------------------------------------------------------
// Stack layout: OME-XML and ImageJ descriptions

export interface PhysicalSize {
  value: number;
  unit: string;
}

export interface OmeChannel {
  name?: string;
  samplesPerPixel?: number;
}

/** One OME Image (a series) as far as import needs it. */
export interface OmeImage {
  name?: string;
  sizeX: number;
  sizeY: number;
  sizeC: number;
  sizeZ: number;
  sizeT: number;
  dimensionOrder: string;
  /** OME pixel type: uint8, uint16, float, ... */
  type: string;
  physicalSizeX?: PhysicalSize;
  physicalSizeY?: PhysicalSize;
  physicalSizeZ?: PhysicalSize;
  channels: OmeChannel[];
  /**
   * IFD of each plane, index c + sizeC * (z + sizeZ * t); -1 where the plane lives in another
   * file (multi-file OME datasets) or is not mapped.
   */
  planeIfds: number[];
}

export interface OmeMetadata {
  images: OmeImage[];
  /** TiffData elements pointing at other files: this file alone is not the whole dataset. */
  referencesOtherFiles: boolean;
}

function attributes(tag: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /([A-Za-z_:][\w:.-]*)\s*=\s*("([^"]*)"|'([^']*)')/g;
  for (let m = re.exec(tag); m; m = re.exec(tag)) out.set(m[1].replace(/^.*:/, ''), unescapeXml(m[3] ?? m[4] ?? ''));
  return out;
}

function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&amp;/g, '&');
}

/** Elements named `name` (any namespace prefix) inside `xml`: [attributes, inner text or ''][]. */
function elements(xml: string, name: string): { attrs: Map<string, string>; inner: string }[] {
  const out: { attrs: Map<string, string>; inner: string }[] = [];
  const open = new RegExp(`<(?:[\\w.-]+:)?${name}(\\s[^>]*?)?(/?)>`, 'g');
  for (let m = open.exec(xml); m; m = open.exec(xml)) {
    const attrs = attributes(m[1] ?? '');
    if (m[2] === '/') {
      out.push({ attrs, inner: '' });
      continue;
    }
    const close = new RegExp(`</(?:[\\w.-]+:)?${name}\\s*>`, 'g');
    close.lastIndex = open.lastIndex;
    const c = close.exec(xml);
    const end = c ? c.index : xml.length;
    out.push({ attrs, inner: xml.slice(open.lastIndex, end) });
    open.lastIndex = c ? close.lastIndex : xml.length;
  }
  return out;
}

/**
 * OME-XML from an ImageDescription, or null when the text is not OME-XML. Never throws.
 * `fileName` (the TIFF's own base name) tells TiffData naming this file from TiffData naming others.
 */
export function parseOmeXml(description: string | undefined, fileName?: string): OmeMetadata | null {
  if (!description || !/<(?:[\w.-]+:)?OME[\s>]/.test(description)) return null;
  const images: OmeImage[] = [];
  let referencesOtherFiles = false;
  // IFDs already claimed by earlier series when TiffData gives no IFD attribute.
  let nextIfd = 0;
  for (const image of elements(description, 'Image')) {
    const pixels = elements(image.inner, 'Pixels')[0];
    if (!pixels) continue;
    const a = pixels.attrs;
    const int = (key: string, fallback: number) => {
      const v = Number(a.get(key));
      return Number.isInteger(v) && v > 0 ? v : fallback;
    };
    const physical = (axis: string): PhysicalSize | undefined => {
      const v = Number(a.get(`PhysicalSize${axis}`));
      return Number.isFinite(v) && v > 0 ? { value: v, unit: a.get(`PhysicalSize${axis}Unit`) ?? 'µm' } : undefined;
    };
    const sizeC = int('SizeC', 1);
    const sizeZ = int('SizeZ', 1);
    const sizeT = int('SizeT', 1);
    const dimensionOrder = /^XY[CZT]{3}$/.test(a.get('DimensionOrder') ?? '') ? a.get('DimensionOrder')! : 'XYCZT';
    const channels = elements(pixels.inner, 'Channel').map(({ attrs }) => ({
      name: attrs.get('Name'),
      samplesPerPixel: attrs.has('SamplesPerPixel') ? Number(attrs.get('SamplesPerPixel')) : undefined,
    }));
    // Interleaved RGB: one OME channel of 3 samples stores 3 "channels" in a single IFD per plane.
    const samplesPerChannel = channels[0]?.samplesPerPixel && channels[0].samplesPerPixel > 1 ? channels[0].samplesPerPixel : 1;
    const effectiveC = Math.max(1, Math.round(sizeC / samplesPerChannel));
    const planeCount = effectiveC * sizeZ * sizeT;
    const planeIfds = new Array<number>(planeCount).fill(-1);
    const index = (c: number, z: number, t: number) => c + effectiveC * (z + sizeZ * t);
    // Position in DimensionOrder (first letter after XY varies fastest) -> (c, z, t).
    const order = dimensionOrder.slice(2);
    const sizes: Record<string, number> = { C: effectiveC, Z: sizeZ, T: sizeT };
    const coords = (i: number) => {
      const r: Record<string, number> = { C: 0, Z: 0, T: 0 };
      for (const axis of order) {
        r[axis] = i % sizes[axis];
        i = Math.floor(i / sizes[axis]);
      }
      return r;
    };
    const tiffData = elements(pixels.inner, 'TiffData');
    if (tiffData.length === 0) {
      for (let i = 0; i < planeCount; i++) {
        const p = coords(i);
        planeIfds[index(p.C, p.Z, p.T)] = nextIfd + i;
      }
      nextIfd += planeCount;
    } else {
      for (const td of tiffData) {
        const uuid = elements(td.inner, 'UUID')[0];
        const target = uuid?.attrs.get('FileName');
        if (target !== undefined && fileName !== undefined && target.replace(/^.*[\\/]/, '') !== fileName) {
          referencesOtherFiles = true;
          continue;
        }
        const ifd = Number(td.attrs.get('IFD') ?? nextIfd);
        const first = {
          C: Number(td.attrs.get('FirstC') ?? 0),
          Z: Number(td.attrs.get('FirstZ') ?? 0),
          T: Number(td.attrs.get('FirstT') ?? 0),
        };
        // Without PlaneCount, a TiffData with attributes maps one plane; a bare one maps them all.
        const count = Number(td.attrs.get('PlaneCount') ?? (td.attrs.size > 0 ? 1 : planeCount));
        // Planes follow DimensionOrder starting from (FirstC, FirstZ, FirstT).
        let linear = 0;
        let scale = 1;
        for (const axis of order) {
          linear += first[axis as 'C' | 'Z' | 'T'] * scale;
          scale *= sizes[axis];
        }
        for (let k = 0; k < count && linear + k < planeCount; k++) {
          const p = coords(linear + k);
          planeIfds[index(p.C, p.Z, p.T)] = ifd + k;
        }
        nextIfd = Math.max(nextIfd, ifd + count);
      }
    }
    images.push({
      name: image.attrs.get('Name'),
      sizeX: int('SizeX', 0),
      sizeY: int('SizeY', 0),
      sizeC: effectiveC,
      sizeZ,
      sizeT,
      dimensionOrder,
      type: a.get('Type') ?? 'unknown',
      physicalSizeX: physical('X'),
      physicalSizeY: physical('Y'),
      physicalSizeZ: physical('Z'),
      channels,
      planeIfds,
    });
  }
  if (images.length === 0) return null;
  return { images, referencesOtherFiles };
}

/** ImageJ's hyperstack description ("ImageJ=1.53t\nimages=6\nchannels=2\nslices=3..."), or null. */
export function parseImageJDescription(description: string | undefined): { channels: number; slices: number; frames: number; images: number; spacing?: number; unit?: string } | null {
  if (!description || !description.startsWith('ImageJ=')) return null;
  const values = new Map<string, string>();
  for (const line of description.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) values.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const int = (key: string) => {
    const v = Number(values.get(key));
    return Number.isInteger(v) && v > 0 ? v : 1;
  };
  const spacing = Number(values.get('spacing'));
  return {
    channels: int('channels'),
    slices: int('slices'),
    frames: int('frames'),
    images: int('images'),
    spacing: Number.isFinite(spacing) && spacing > 0 ? spacing : undefined,
    unit: values.get('unit'),
  };
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface TiffWritePage {
  width: number;
  height: number;
  channels: number;
  bitDepth: 8 | 16 | 32;
  /** Interleaved HWC samples; Uint32Array or Int32Array for 32-bit integer label images. */
  data: Uint8Array | Uint16Array | Uint32Array | Int32Array | Float32Array;
  description?: string;
  /** NewSubfileType; 1 marks a reduced-resolution copy (default 0). */
  subfileType?: number;
}

export interface TiffWriteOptions {
  /** 'none' (default: every reader, Fiji's own included, reads it) or 'deflate'. */
  compression?: 'none' | 'deflate';
  /** Rows per strip (default: strips of about 64 KiB). */
  rowsPerStrip?: number;
}

/**
 * A little-endian baseline TIFF, one IFD per page: grey (MinIsBlack) or RGB, unsigned integer
 * samples (float for Float32Array), no palette, no predictor. Fiji, napari (tifffile), libvips
 * and libtiff read it as the plain 8/16/32-bit image it is.
 */
export function encodeTiff(pages: TiffWritePage[], options: TiffWriteOptions = {}): Buffer {
  if (pages.length === 0) throw new RangeError('a TIFF needs at least one page');
  const compress = options.compression === 'deflate';
  const parts: Uint8Array[] = [];
  let size = 8;
  const append = (bytes: Uint8Array) => {
    const at = size;
    parts.push(bytes);
    size += bytes.length;
    if (size % 2) {
      parts.push(new Uint8Array(1));
      size++;
    }
    return at;
  };
  const header = new Uint8Array(8);
  const hv = new DataView(header.buffer);
  header[0] = header[1] = 0x49;
  hv.setUint16(2, 42, true);
  const ifdOffsets: number[] = [];
  const nextPointers: number[] = [];

  for (const page of pages) {
    const { width, height, channels, bitDepth, data } = page;
    if (data.length !== width * height * channels) {
      throw new RangeError(`page data has ${data.length} samples for ${width}x${height}x${channels}`);
    }
    const bytesPerSample = bitDepth / 8;
    const rowBytes = width * channels * bytesPerSample;
    const rowsPerStrip = Math.max(1, Math.min(height, options.rowsPerStrip ?? Math.max(1, Math.floor(65536 / rowBytes))));
    const all = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const stripOffsets: number[] = [];
    const stripCounts: number[] = [];
    for (let y = 0; y < height; y += rowsPerStrip) {
      const rows = Math.min(rowsPerStrip, height - y);
      let strip = all.subarray(y * rowBytes, (y + rows) * rowBytes);
      if (compress) strip = deflateSync(strip);
      stripOffsets.push(append(strip));
      stripCounts.push(strip.length);
    }
    const isFloat = data instanceof Float32Array;
    const entries: [number, number, number[] | Uint8Array][] = [
      [Tag.newSubfileType, 4, [page.subfileType ?? 0]],
      [Tag.width, 4, [width]],
      [Tag.height, 4, [height]],
      [Tag.bitsPerSample, 3, new Array<number>(channels).fill(bitDepth)],
      [Tag.compression, 3, [compress ? 8 : 1]],
      [Tag.photometric, 3, [channels === 3 ? 2 : 1]],
    ];
    if (page.description !== undefined) entries.push([Tag.description, 2, new TextEncoder().encode(page.description + '\0')]);
    entries.push(
      [Tag.stripOffsets, 4, stripOffsets],
      [Tag.samplesPerPixel, 3, [channels]],
      [Tag.rowsPerStrip, 4, [rowsPerStrip]],
      [Tag.stripByteCounts, 4, stripCounts],
      [Tag.planarConfig, 3, [1]],
    );
    if (channels !== 1 && channels !== 3) entries.push([Tag.extraSamples, 3, new Array<number>(channels - (channels > 3 ? 3 : 1)).fill(0)]);
    entries.push([Tag.sampleFormat, 3, new Array<number>(channels).fill(isFloat ? 3 : 1)]);

    // Out-of-line values first, then the IFD that points at them.
    const ifd = new Uint8Array(2 + entries.length * 12 + 4);
    const v = new DataView(ifd.buffer);
    v.setUint16(0, entries.length, true);
    entries.forEach(([tag, type, values], e) => {
      const at = 2 + e * 12;
      const unit = type === 3 ? 2 : type === 4 ? 4 : 1;
      const count = values.length;
      v.setUint16(at, tag, true);
      v.setUint16(at + 2, type, true);
      v.setUint32(at + 4, count, true);
      const bytes = new Uint8Array(count * unit);
      const bv = new DataView(bytes.buffer);
      for (let i = 0; i < count; i++) {
        if (type === 2) bytes[i] = values[i];
        else if (unit === 2) bv.setUint16(i * 2, values[i], true);
        else bv.setUint32(i * 4, values[i], true);
      }
      if (bytes.length <= 4) ifd.set(bytes, at + 8);
      else v.setUint32(at + 8, append(bytes), true);
    });
    const ifdAt = append(ifd);
    ifdOffsets.push(ifdAt);
    nextPointers.push(ifdAt + 2 + entries.length * 12);
  }
  if (size > 0xffffffff) throw new RangeError('the TIFF would exceed 4 GiB; classic TIFF cannot address it');
  hv.setUint32(4, ifdOffsets[0], true);
  const out = Buffer.alloc(size);
  out.set(header, 0);
  let at = 8;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  for (let i = 0; i < nextPointers.length; i++) out.writeUInt32LE(ifdOffsets[i + 1] ?? 0, nextPointers[i]);
  return out;
}
