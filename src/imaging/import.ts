/**
 * Finding and vetting the images of a folder before a project takes them in: a recursive walk,
 * candidates by extension and by content, and for each file either what it holds (size, channels,
 * bit depth, planes, content hash) or why it cannot be used. A bad file never stops the scan.
 *
 * Nothing here records anything: the scan yields one entry per file, in a stable order, and the
 * caller (store, CLI) records them, which is also how a scan resumes (see ScanOptions.skip).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, open, readdir, readFile, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, join, relative, resolve, sep } from 'node:path';
import { decodeImage, hasEqualChannels, ImageDecodeError, probeImage } from './decode';
import {
  bufferSource,
  checkTiff,
  compressionName,
  fileByteSource,
  parseImageJDescription,
  parseOmeXml,
  parseTiff,
  TiffError,
  type ByteSource,
  type PhysicalSize,
  type TiffStructure,
} from './tiff';
import type { BitDepth, PixelArray, RawImage } from './types';
import { arrayForDepth } from './types';

export type ImageFormat = 'png' | 'jpeg' | 'tiff';

export type RejectReason =
  /** 0 bytes. */
  | 'empty'
  /** The file ends before its data does (an interrupted copy or download). */
  | 'truncated'
  /** The signature is right but the content cannot be decoded. */
  | 'corrupt'
  /** The content is not an image at all (a text file named .tif). */
  | 'not-an-image'
  /** An image format or TIFF variant maskloop does not read (GIF, CZI, ...). */
  | 'unsupported'
  /** Permission denied, a broken symbolic link, an I/O error. */
  | 'unreadable';

/** How the planes of a (multi-page) image are arranged. */
export interface PlaneLayout {
  /**
   * 'single': one plane. 'ome' / 'imagej': channels, z and time from the file's metadata.
   * 'pages': several pages of one size without metadata saying what they are; each is its own
   * plane (planeIfds), sizeC = sizeZ = sizeT = 1.
   */
  source: 'single' | 'ome' | 'imagej' | 'pages';
  sizeC: number;
  sizeZ: number;
  sizeT: number;
  /**
   * Page (IFD, sharp's `page`) of each plane: for 'ome' and 'imagej' at c + sizeC * (z + sizeZ * t),
   * -1 where the plane is not in this file; for 'pages' simply the pages in order.
   */
  planeIfds: number[];
  channelNames?: (string | undefined)[];
  physicalSizeX?: PhysicalSize;
  physicalSizeY?: PhysicalSize;
  physicalSizeZ?: PhysicalSize;
  /** Pages that are not planes: reduced-resolution copies, thumbnails, pages of another size. */
  ignoredPages: number[];
}

export interface ScannedImage {
  kind: 'image';
  path: string;
  /** From the scanned root, '/'-separated on every platform. */
  relativePath: string;
  size: number;
  mtimeMs: number;
  /** Hex SHA-256 of the file's bytes: identity across renames and machines. */
  sha256: string;
  format: ImageFormat;
  /** An OME-TIFF (OME-XML in the first ImageDescription). */
  ome: boolean;
  width: number;
  height: number;
  /** Channels of one page as decodeImage returns them (1 grey, 3 colour; alpha dropped). */
  channels: number;
  bitDepth: BitDepth;
  /** Pages (IFDs) in the file; 1 for PNG and JPEG. */
  pages: number;
  planes: PlaneLayout;
  /** 'decoded': the first plane was fully decoded; 'structure': too large, only its layout checked. */
  verified: 'decoded' | 'structure';
  /** Harmless oddities: a malformed DateTime tag, an extension that does not match the content. */
  warnings: string[];
}

export interface RejectedFile {
  kind: 'rejected';
  path: string;
  relativePath: string;
  size: number;
  reason: RejectReason;
  /** The reason in words, for a person. */
  message: string;
}

/** A file the caller's `skip` said it already has. */
export interface SkippedFile {
  kind: 'skipped';
  path: string;
  relativePath: string;
  size: number;
  mtimeMs: number;
}

export type ScanEntry = ScannedImage | RejectedFile | SkippedFile;

export interface FileRef {
  path: string;
  relativePath: string;
  size: number;
  mtimeMs: number;
}

export interface InspectOptions {
  /**
   * Decode the first plane of images up to this many pixels (default 2^26) to prove the pixel
   * data readable; larger images get the structural checks only (every TIFF strip and tile inside
   * the file, every PNG chunk complete, the JPEG end marker present).
   */
  maxDecodePixels?: number;
  /** Files up to this size are read once into memory for hash, checks and decode (default 64 MiB). */
  inMemoryBytes?: number;
  /** Largest image accepted, in pixels (default MAX_IMAGE_PIXELS): a TIFF this large is read tile by tile. */
  maxPixels?: number;
  /** Largest PNG or JPEG accepted, in pixels (default MAX_WHOLE_READ_PIXELS): those formats are only ever read whole. */
  maxWholeReadPixels?: number;
}

/** Pixels per image, read tile by tile from a TIFF (about 46 000 x 46 000). */
export const MAX_IMAGE_PIXELS = 2 ** 31;
/** Pixels of an image that can only be decoded whole (PNG, JPEG): 16 384 x 16 384, 1.5 GiB as 16-bit RGB. */
export const MAX_WHOLE_READ_PIXELS = 2 ** 28;
/** Deflate's best case is 1032:1, so a PNG cannot hold more raw bytes than this many times its size. */
const DEFLATE_MAX_RATIO = 1032;

export interface ScanOptions extends InspectOptions {
  /** Files processed at once (default 2); entries still come out in walk order. */
  concurrency?: number;
  /** Follow symbolic links to files and folders (default true); loops are detected either way. */
  followSymlinks?: boolean;
  /** Include names starting with '.' (default false: macOS '._x.tif' resource forks are not images). */
  includeHidden?: boolean;
  /**
   * Called before a file is read; true means the caller already has it (same path, size and
   * mtime, say), and the file is yielded as 'skipped' without hashing. This is how a scan resumes.
   */
  skip?: (file: FileRef) => boolean | Promise<boolean>;
  signal?: AbortSignal;
}

const IMAGE_EXTENSIONS: Record<string, ImageFormat> = {
  png: 'png', jpg: 'jpeg', jpeg: 'jpeg', jpe: 'jpeg', jfif: 'jpeg', tif: 'tiff', tiff: 'tiff', btf: 'tiff', tf8: 'tiff',
};

/** Image files people point a microscopy tool at that maskloop cannot read: say so, with the way out. */
const UNSUPPORTED_EXTENSIONS: Record<string, string> = {
  czi: 'Zeiss CZI', lif: 'Leica LIF', nd2: 'Nikon ND2', oib: 'Olympus OIB', oif: 'Olympus OIF', vsi: 'Olympus VSI',
  ims: 'Imaris IMS', zvi: 'Zeiss ZVI', lei: 'Leica LEI', dv: 'DeltaVision', r3d: 'DeltaVision', mrc: 'MRC',
  dm3: 'Gatan DM3', dm4: 'Gatan DM4', ics: 'ICS', ids: 'ICS', h5: 'HDF5', hdf5: 'HDF5', npy: 'NumPy array',
  gif: 'GIF', bmp: 'BMP', webp: 'WebP', jp2: 'JPEG 2000', j2k: 'JPEG 2000', jxl: 'JPEG XL', heic: 'HEIC', avif: 'AVIF',
  psd: 'Photoshop', svg: 'SVG',
};

/** TIFF codecs every libtiff build has; a failure with one of these means a damaged file. */
const COMMON_TIFF_COMPRESSIONS = new Set([1, 5, 7, 8, 32773, 32946]);

const BIOFORMATS_HINT = 'convert it to OME-TIFF (e.g. with Bio-Formats bfconvert or Fiji) to import it';

type Signature = ImageFormat | { other: string; image: boolean } | null;

/** What the first bytes say the file is. */
export function sniffFormat(head: Uint8Array): Signature {
  const at = (i: number, ...bytes: number[]) => bytes.every((b, k) => head[i + k] === b);
  const ascii = (i: number, s: string) => at(i, ...Array.from(s, (c) => c.charCodeAt(0)));
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'png';
  if (at(0, 0xff, 0xd8, 0xff)) return 'jpeg';
  if (head.length >= 4 && (at(0, 0x49, 0x49, 42, 0) || at(0, 0x4d, 0x4d, 0, 42) || at(0, 0x49, 0x49, 43, 0) || at(0, 0x4d, 0x4d, 0, 43))) {
    return 'tiff';
  }
  if (ascii(0, 'GIF87a') || ascii(0, 'GIF89a')) return { other: 'GIF', image: true };
  if (ascii(0, 'BM') && head.length >= 14) return { other: 'BMP', image: true };
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return { other: 'WebP', image: true };
  if (at(0, 0, 0, 0, 0x0c, 0x6a, 0x50, 0x20, 0x20) || at(0, 0xff, 0x4f, 0xff, 0x51)) return { other: 'JPEG 2000', image: true };
  if (at(0, 0xff, 0x0a) || at(0, 0, 0, 0, 0x0c, 0x4a, 0x58, 0x4c, 0x20)) return { other: 'JPEG XL', image: true };
  if (ascii(0, 'ZISRAWFILE')) return { other: 'Zeiss CZI', image: true };
  if (at(0, 0xda, 0xce, 0xbe, 0x0a)) return { other: 'Nikon ND2', image: true };
  if (at(0, 0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a)) return { other: 'HDF5', image: false };
  if (at(0, 0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1)) return { other: 'OLE2 compound file (OIB/ZVI)', image: false };
  if (ascii(0, 'PK\x03\x04')) return { other: 'ZIP archive', image: false };
  if (ascii(0, '%PDF')) return { other: 'PDF', image: false };
  if (at(0, 0x1f, 0x8b)) return { other: 'gzip archive', image: false };
  if (at(0, 0x93) && ascii(1, 'NUMPY')) return { other: 'NumPy array', image: false };
  return null;
}

/** Lower-case extension, with '.ome.tif' style double extensions reduced to the last part. */
function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
}

function isOmeName(name: string): boolean {
  return /\.ome\.(tiff?|btf|tf8)$/i.test(name);
}

/** Whether a file deserves a look: an image extension, or image content whatever its name. */
function isCandidateName(name: string): boolean {
  const ext = extensionOf(name);
  return ext in IMAGE_EXTENSIONS || ext in UNSUPPORTED_EXTENSIONS;
}

interface WalkItem {
  path: string;
  relativePath: string;
  stats?: Stats;
  error?: { reason: RejectReason; message: string };
}

function toRelative(root: string, path: string): string {
  const rel = relative(root, path);
  return sep === '/' ? rel : rel.split(sep).join('/');
}

/**
 * Depth-first in name order (code-unit order, not locale: the same on every machine), entering a
 * folder where its name falls, so two scans of an unchanged folder list files identically.
 * Folders are identified by device and inode after following links, so a link back to an
 * ancestor is walked once.
 */
async function* walk(root: string, options: ScanOptions): AsyncGenerator<WalkItem> {
  let rootStats: Stats;
  try {
    rootStats = await stat(root);
  } catch (error) {
    throw new Error(`cannot scan ${root}: ${errnoText(error)}`, { cause: error });
  }
  if (!rootStats.isDirectory()) {
    yield { path: root, relativePath: basename(root), stats: rootStats };
    return;
  }
  const visited = new Set<string>([`${rootStats.dev}:${rootStats.ino}`]);
  yield* walkFolder(root, root, visited, options);
}

async function* walkFolder(root: string, dir: string, visited: Set<string>, options: ScanOptions): AsyncGenerator<WalkItem> {
  const follow = options.followSymlinks ?? true;
  let names: string[];
  try {
    names = (await readdir(dir)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  } catch (error) {
    yield { path: dir, relativePath: toRelative(root, dir), error: { reason: 'unreadable', message: `cannot list the folder: ${errnoText(error)}` } };
    return;
  }
  for (const name of names) {
    if (!(options.includeHidden ?? false) && name.startsWith('.')) continue;
    const path = join(dir, name);
    let stats: Stats;
    try {
      stats = await lstat(path);
      if (stats.isSymbolicLink()) {
        if (!follow) continue;
        try {
          stats = await stat(path);
        } catch (error) {
          if (isCandidateName(name)) {
            yield { path, relativePath: toRelative(root, path), error: { reason: 'unreadable', message: `broken symbolic link (${errnoText(error)})` } };
          }
          continue;
        }
      }
    } catch (error) {
      yield { path, relativePath: toRelative(root, path), error: { reason: 'unreadable', message: errnoText(error) } };
      continue;
    }
    if (stats.isDirectory()) {
      const id = `${stats.dev}:${stats.ino}`;
      if (visited.has(id)) continue;
      visited.add(id);
      yield* walkFolder(root, path, visited, options);
    } else if (stats.isFile()) {
      yield { path, relativePath: toRelative(root, path), stats };
    }
  }
}

function errnoText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOENT') return 'no such file';
  if (code === 'ELOOP') return 'too many levels of symbolic links';
  return error instanceof Error ? error.message : String(error);
}

/**
 * Every image under `root` (a folder, or one file), one entry per candidate file in a stable
 * order: an image with its properties, a rejection with its reason, or a skip. Files that are
 * neither named nor shaped like images (notes, CSVs) are passed over silently.
 */
export async function* scanFolder(root: string, options: ScanOptions = {}): AsyncGenerator<ScanEntry> {
  const absoluteRoot = resolve(root);
  const concurrency = Math.max(1, options.concurrency ?? 2);
  const pending: Promise<ScanEntry | null>[] = [];
  const signal = options.signal;
  for await (const item of walk(absoluteRoot, options)) {
    signal?.throwIfAborted();
    pending.push(handle(item, options));
    if (pending.length >= concurrency) {
      const entry = await pending.shift()!;
      if (entry) yield entry;
    }
  }
  while (pending.length > 0) {
    signal?.throwIfAborted();
    const entry = await pending.shift()!;
    if (entry) yield entry;
  }
}

async function handle(item: WalkItem, options: ScanOptions): Promise<ScanEntry | null> {
  const stats = item.stats;
  if (item.error || !stats) {
    return { kind: 'rejected', path: item.path, relativePath: item.relativePath, size: 0, ...item.error! };
  }
  const ref: FileRef = { path: item.path, relativePath: item.relativePath, size: stats.size, mtimeMs: stats.mtimeMs };
  if (!isCandidateName(basename(item.path))) {
    // Unnamed or oddly named files count only when their content is an image.
    const head = await readHead(item.path).catch(() => null);
    const signature = head ? sniffFormat(head) : null;
    if (!signature || (typeof signature === 'object' && !signature.image)) return null;
  }
  if (options.skip && (await options.skip(ref))) return { kind: 'skipped', ...ref };
  return inspectImageFile(item.path, options, ref);
}

async function readHead(path: string): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(16);
    const { bytesRead } = await handle.read(head, 0, 16, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

export interface ScanSummary {
  images: number;
  rejected: number;
  skipped: number;
  /** Bytes of the accepted images. */
  bytes: number;
  seconds: number;
  byReason: Partial<Record<RejectReason, number>>;
}

/** scanFolder with a callback per entry (awaited: a slow recorder slows the scan, never loses entries). */
export async function importFolder(
  root: string,
  onEntry: (entry: ScanEntry) => void | Promise<void>,
  options: ScanOptions = {},
): Promise<ScanSummary> {
  const started = performance.now();
  const summary: ScanSummary = { images: 0, rejected: 0, skipped: 0, bytes: 0, seconds: 0, byReason: {} };
  for await (const entry of scanFolder(root, options)) {
    if (entry.kind === 'image') {
      summary.images++;
      summary.bytes += entry.size;
    } else if (entry.kind === 'rejected') {
      summary.rejected++;
      summary.byReason[entry.reason] = (summary.byReason[entry.reason] ?? 0) + 1;
    } else {
      summary.skipped++;
    }
    await onEntry(entry);
  }
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

class Rejection extends Error {
  constructor(
    readonly reason: RejectReason,
    message: string,
  ) {
    super(message);
  }
}

/** One file, vetted: never throws for a bad file, returns the rejection instead. */
export async function inspectImageFile(
  path: string,
  options: InspectOptions = {},
  known?: FileRef,
): Promise<ScannedImage | RejectedFile> {
  const ref: FileRef = known ?? { path, relativePath: basename(path), size: 0, mtimeMs: 0 };
  try {
    if (!known) {
      const stats = await stat(path).catch((error: unknown) => {
        throw new Rejection('unreadable', errnoText(error));
      });
      if (!stats.isFile()) throw new Rejection('unreadable', 'not a regular file');
      ref.size = stats.size;
      ref.mtimeMs = stats.mtimeMs;
    }
    return await inspect(path, ref, options);
  } catch (error) {
    if (error instanceof Rejection) {
      return { kind: 'rejected', path, relativePath: ref.relativePath, size: ref.size, reason: error.reason, message: error.message };
    }
    const code = (error as NodeJS.ErrnoException)?.code;
    const reason: RejectReason = code ? 'unreadable' : 'corrupt';
    return { kind: 'rejected', path, relativePath: ref.relativePath, size: ref.size, reason, message: errnoText(error) };
  }
}

async function inspect(path: string, ref: FileRef, options: InspectOptions): Promise<ScannedImage> {
  if (ref.size === 0) throw new Rejection('empty', 'the file is empty (0 bytes)');
  const name = basename(path);
  const ext = extensionOf(name);
  const inMemory = ref.size <= (options.inMemoryBytes ?? 64 << 20);
  let bytes: Buffer | null = null;
  let sha256: string;
  let head: Uint8Array;
  try {
    if (inMemory) {
      bytes = await readFile(path);
      sha256 = createHash('sha256').update(bytes).digest('hex');
      head = bytes.subarray(0, 16);
    } else {
      sha256 = await hashFile(path);
      head = await readHead(path);
    }
  } catch (error) {
    throw new Rejection('unreadable', errnoText(error));
  }
  if (bytes && bytes.length === 0) throw new Rejection('empty', 'the file is empty (0 bytes)');

  const signature = sniffFormat(head);
  if (signature === null && ext in UNSUPPORTED_EXTENSIONS) {
    // Several microscope formats (LIF, OIF, ICS, DeltaVision) have no reliable magic: trust the name.
    throw new Rejection('unsupported', `${UNSUPPORTED_EXTENSIONS[ext]} file: maskloop reads PNG, JPEG and TIFF; ${BIOFORMATS_HINT}`);
  }
  if (signature === null) {
    const what = ext in IMAGE_EXTENSIONS ? `named .${ext} but` : 'the content';
    throw new Rejection('not-an-image', `${what} is not a PNG, JPEG or TIFF image (starts with ${hexPreview(head)})`);
  }
  if (typeof signature === 'object') {
    const hint = signature.image ? `; ${BIOFORMATS_HINT}` : '';
    throw new Rejection(signature.image ? 'unsupported' : 'not-an-image', `${signature.other} file: maskloop reads PNG, JPEG and TIFF${hint}`);
  }
  const warnings: string[] = [];
  const expected = IMAGE_EXTENSIONS[ext];
  if (expected !== signature) {
    const named = expected ? `the name says ${expected.toUpperCase()}` : ext ? `the name says .${ext}` : 'the name has no extension';
    warnings.push(`${named}, the content is ${signature.toUpperCase()}`);
  }

  const source: { bytes: ByteSource; close(): Promise<void> } = bytes
    ? { bytes: bufferSource(bytes), close: async () => {} }
    : await openByteSource(path);
  let structure: TiffStructure | undefined;
  try {
    if (signature === 'png') checkPng(source.bytes);
    else if (signature === 'jpeg') checkJpeg(source.bytes);
    else {
      try {
        structure = parseTiff(source.bytes);
        checkTiff(structure);
      } catch (error) {
        if (error instanceof TiffError) throw new Rejection(error.kind, error.message);
        throw error;
      }
      warnings.push(...structure.warnings);
    }
  } finally {
    await source.close();
  }

  let info;
  try {
    info = await probeImage(bytes ?? path);
  } catch (error) {
    throw rejectionFromDecode(error);
  }
  const planes = structure ? planeLayout(structure, name, warnings) : singlePlane();
  if (isOmeName(name) && planes.source !== 'ome') warnings.push('named as OME-TIFF but holds no OME-XML description');
  const pixels = info.width * info.height;
  checkPixelBudget(signature, info, ref.size, options);
  const verified = pixels <= (options.maxDecodePixels ?? 2 ** 26) ? 'decoded' : 'structure';
  let channels = info.channels;
  if (verified === 'decoded') {
    const page = planes.planeIfds[0] >= 0 ? planes.planeIfds[0] : 0;
    try {
      const decoded = await decodeImage(bytes ?? path, { page });
      // Grey saved as RGB (common after a round trip through a viewer) is grey: recorded as one
      // channel and read as one (DecodeOptions.grey), so it sits with the project's grey images.
      if (decoded.channels > 1 && hasEqualChannels(decoded)) {
        channels = 1;
        warnings.push('grey saved as RGB (every pixel has equal channels): read as grey');
      }
    } catch (error) {
      const compression = structure?.pages[page]?.compression;
      if (compression !== undefined && !COMMON_TIFF_COMPRESSIONS.has(compression)) {
        // An exotic codec libtiff was built without is not damage: say which codec it is.
        const detail = error instanceof ImageDecodeError ? error.reason : String(error);
        throw new Rejection('unsupported', `${compressionName(compression)} compression is not readable here: ${detail}`);
      }
      throw rejectionFromDecode(error);
    }
  }
  return {
    kind: 'image',
    path,
    relativePath: ref.relativePath,
    size: ref.size,
    mtimeMs: ref.mtimeMs,
    sha256,
    format: signature,
    ome: planes.source === 'ome',
    width: info.width,
    height: info.height,
    channels,
    bitDepth: info.bitDepth,
    pages: structure ? structure.pages.length : 1,
    planes,
    verified,
    warnings: [...new Set(warnings)],
  };
}

/**
 * Sizes a header claims, checked before any pixel is allocated: a few hundred bytes can claim
 * 60 000 x 60 000 pixels, and whatever decodes such a file later would try to allocate gigabytes.
 */
function checkPixelBudget(format: string, info: { width: number; height: number }, fileBytes: number, options: InspectOptions): void {
  const pixels = info.width * info.height;
  const size = `${info.width} x ${info.height}`;
  const limit = options.maxPixels ?? MAX_IMAGE_PIXELS;
  if (pixels > limit) throw new Rejection('unsupported', `${size} pixels is over the limit of ${limit.toLocaleString('en')} pixels per image`);
  if (format !== 'tiff') {
    const whole = options.maxWholeReadPixels ?? MAX_WHOLE_READ_PIXELS;
    if (pixels > whole) {
      throw new Rejection('unsupported', `a ${format.toUpperCase()} of ${size} can only be read whole, over the limit of ${whole.toLocaleString('en')} pixels for that: save it as a tiled TIFF`);
    }
  }
  if (format === 'png') {
    // The least raw data those dimensions can mean: one 1-bit sample a pixel, and a filter byte a row.
    const rawBytes = info.height * (1 + Math.ceil(info.width / 8));
    if (rawBytes > fileBytes * DEFLATE_MAX_RATIO) {
      throw new Rejection('corrupt', `the header claims ${size} pixels, more than a ${fileBytes}-byte PNG can hold (deflate compresses at most ${DEFLATE_MAX_RATIO}:1)`);
    }
  }
}

async function openByteSource(path: string): Promise<{ bytes: ByteSource; close(): Promise<void> }> {
  const handle = await open(path, 'r');
  return { bytes: fileByteSource(handle.fd), close: () => handle.close() };
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function hexPreview(head: Uint8Array): string {
  const printable = Array.from(head.subarray(0, 8), (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
  const hex = Array.from(head.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return `${hex} "${printable}"`;
}

function rejectionFromDecode(error: unknown): Rejection {
  if (error instanceof Rejection) return error;
  const reason = error instanceof ImageDecodeError ? error.reason : error instanceof Error ? error.message : String(error);
  if (/premature end|end of stream|truncat|unexpected end|short read|not enough data|read error/i.test(reason)) {
    return new Rejection('truncated', `the file is truncated: ${reason}`);
  }
  if (/pixel limit/i.test(reason)) return new Rejection('unsupported', reason);
  return new Rejection('corrupt', `the pixel data cannot be decoded: ${reason}`);
}

/** Every PNG chunk complete, IHDR first, IEND present: a cut-off copy fails here, not in a later decode. */
function checkPng(source: ByteSource): void {
  let at = 8;
  let sawHeader = false;
  let sawData = false;
  while (at < source.size) {
    if (at + 8 > source.size) throw new Rejection('truncated', `the file ends inside a chunk header at byte ${at}`);
    const header = source.read(at, 8);
    const length = ((header[0] << 24) | (header[1] << 16) | (header[2] << 8) | header[3]) >>> 0;
    const type = String.fromCharCode(header[4], header[5], header[6], header[7]);
    if (!/^[A-Za-z]{4}$/.test(type)) throw new Rejection('corrupt', `invalid PNG chunk type at byte ${at}`);
    if (!sawHeader && type !== 'IHDR') throw new Rejection('corrupt', 'the PNG does not start with an IHDR chunk');
    sawHeader = true;
    if (at + 12 + length > source.size) {
      throw new Rejection('truncated', `the ${type} chunk at byte ${at} needs ${length} bytes; the file ends before them (${source.size} bytes)`);
    }
    if (type === 'IDAT') sawData = true;
    if (type === 'IEND') {
      if (!sawData) throw new Rejection('corrupt', 'the PNG has no image data (IDAT)');
      return;
    }
    at += 12 + length;
  }
  throw new Rejection('truncated', 'the PNG ends without its IEND chunk');
}

/** A JPEG must end with the end-of-image marker; padding after it is tolerated. */
function checkJpeg(source: ByteSource): void {
  // Cameras and editors sometimes append metadata after the marker; 64 KiB of tail covers them.
  const tailLength = Math.min(source.size, 1 << 16);
  const tail = source.read(source.size - tailLength, tailLength);
  for (let i = tail.length - 2; i >= 0; i--) {
    if (tail[i] === 0xff && tail[i + 1] === 0xd9) return;
  }
  throw new Rejection('truncated', 'the JPEG has no end-of-image marker: the file is cut off');
}

function singlePlane(): PlaneLayout {
  return { source: 'single', sizeC: 1, sizeZ: 1, sizeT: 1, planeIfds: [0], ignoredPages: [] };
}

/**
 * How the pages of a TIFF make up channels, z and time: from OME-XML, else from an ImageJ
 * hyperstack description, else every full-resolution page of the first page's size is a plane.
 */
export function planeLayout(structure: TiffStructure, fileName: string, warnings: string[] = []): PlaneLayout {
  const pages = structure.pages;
  const first = pages[0];
  const description = first.description;
  const ome = parseOmeXml(description, fileName);
  if (ome) {
    const image = ome.images[0];
    if (ome.images.length > 1) warnings.push(`OME-XML holds ${ome.images.length} series; the first one is used`);
    if (ome.referencesOtherFiles) warnings.push('OME-XML refers to planes in other files; only the planes in this file are used');
    const inRange = image.planeIfds.map((ifd) => (ifd < pages.length ? ifd : -1));
    if (inRange.some((ifd, i) => ifd !== image.planeIfds[i])) warnings.push('OME-XML maps planes to pages the file does not have');
    const used = new Set(inRange);
    return {
      source: 'ome',
      sizeC: image.sizeC,
      sizeZ: image.sizeZ,
      sizeT: image.sizeT,
      planeIfds: inRange,
      channelNames: image.channels.length ? image.channels.map((c) => c.name) : undefined,
      physicalSizeX: image.physicalSizeX,
      physicalSizeY: image.physicalSizeY,
      physicalSizeZ: image.physicalSizeZ,
      ignoredPages: pages.filter((p) => !used.has(p.index)).map((p) => p.index),
    };
  }
  const sameShape = (p: (typeof pages)[number]) =>
    (p.subfileType & 1) === 0 &&
    p.width === first.width &&
    p.height === first.height &&
    p.bitsPerSample[0] === first.bitsPerSample[0] &&
    p.samplesPerPixel === first.samplesPerPixel;
  const full = pages.filter(sameShape).map((p) => p.index);
  const ignoredPages = pages.filter((p) => !sameShape(p)).map((p) => p.index);
  const imagej = parseImageJDescription(description);
  if (imagej && imagej.channels * imagej.slices * imagej.frames > 1) {
    const count = imagej.channels * imagej.slices * imagej.frames;
    if (full.length < count) {
      warnings.push(`ImageJ description lists ${count} planes, the file has ${full.length} pages (ImageJ's raw >4 GB layout is not read)`);
    }
    return {
      source: 'imagej',
      sizeC: imagej.channels,
      sizeZ: imagej.slices,
      sizeT: imagej.frames,
      // ImageJ stores channel fastest, then slice, then frame: the layout's own index order.
      planeIfds: Array.from({ length: count }, (_, i) => (i < full.length ? full[i] : -1)),
      physicalSizeZ: imagej.spacing ? { value: imagej.spacing, unit: imagej.unit ?? 'pixel' } : undefined,
      ignoredPages,
    };
  }
  if (full.length <= 1) return { ...singlePlane(), planeIfds: [full[0] ?? 0], ignoredPages };
  return { source: 'pages', sizeC: 1, sizeZ: 1, sizeT: 1, planeIfds: full, ignoredPages };
}

/** Reads the layout of a TIFF on disk (PNG and JPEG are one plane). */
export async function readPlaneLayout(path: string): Promise<PlaneLayout> {
  const handle = await open(path, 'r');
  try {
    const source = fileByteSource(handle.fd);
    const head = source.read(0, Math.min(16, source.size));
    if (sniffFormat(head) !== 'tiff') return singlePlane();
    return planeLayout(parseTiff(source), basename(path));
  } finally {
    await handle.close();
  }
}

/**
 * One (z, t) position of a multi-channel file with its channels interleaved: the pages of an
 * OME/ImageJ channel axis become the channels of one RawImage. Pages whose own samples are
 * several (RGB) contribute all of them.
 */
export async function readPlane(path: string, layout: PlaneLayout, position: { z?: number; t?: number } = {}): Promise<RawImage> {
  const z = position.z ?? 0;
  const t = position.t ?? 0;
  if (layout.source === 'pages') {
    // Separate planes: 'z' picks the page.
    const page = layout.planeIfds[z];
    if (page === undefined) throw new RangeError(`plane ${z} requested, the file has ${layout.planeIfds.length}`);
    return decodeImage(path, { page });
  }
  if (z < 0 || z >= layout.sizeZ || t < 0 || t >= layout.sizeT) {
    throw new RangeError(`position z=${z}, t=${t} outside ${layout.sizeZ} z x ${layout.sizeT} t`);
  }
  const pages: number[] = [];
  for (let c = 0; c < layout.sizeC; c++) {
    const ifd = layout.planeIfds[c + layout.sizeC * (z + layout.sizeZ * t)];
    if (ifd === undefined || ifd < 0) throw new ImageDecodeError(path, `channel ${c} at z=${z}, t=${t} is not stored in this file`);
    pages.push(ifd);
  }
  const planes = await Promise.all(pages.map((page) => decodeImage(path, { page })));
  return interleave(planes, path);
}

export function interleave(planes: RawImage[], source = '<planes>'): RawImage {
  if (planes.length === 1) return planes[0];
  const { width, height, bitDepth } = planes[0];
  for (const p of planes) {
    if (p.width !== width || p.height !== height || p.bitDepth !== bitDepth) {
      throw new ImageDecodeError(source, 'channels differ in size or bit depth');
    }
  }
  const channels = planes.reduce((n, p) => n + p.channels, 0);
  const pixels = width * height;
  const data: PixelArray = arrayForDepth(bitDepth, pixels * channels);
  let c0 = 0;
  for (const p of planes) {
    for (let i = 0; i < pixels; i++) {
      for (let k = 0; k < p.channels; k++) data[i * channels + c0 + k] = p.data[i * p.channels + k];
    }
    c0 += p.channels;
  }
  return { width, height, channels, bitDepth, data };
}
