import { stat } from 'node:fs/promises';
import sharp from 'sharp';
import type { BitDepth, PixelArray, RawImage } from './types';
import { extractChannel } from './types';

/** An image that could not be read, with the file (or '<buffer>') and the reason in words. */
export class ImageDecodeError extends Error {
  readonly source: string;
  readonly reason: string;

  constructor(source: string, reason: string, options?: { cause?: unknown }) {
    super(`cannot decode image ${source}: ${reason}`, options);
    this.name = 'ImageDecodeError';
    this.source = source;
    this.reason = reason;
  }
}

export interface DecodeOptions {
  /** Page (IFD) of a multi-page TIFF to read; 0 by default. */
  page?: number;
  /**
   * Refuse images with more pixels than this (sharp's guard against decompression bombs).
   * Whole-slide-sized microscopy images exceed sharp's default of 0x3FFF², so the default here is
   * 2^31 pixels; pass false to lift the limit.
   */
  maxPixels?: number | false;
  /** Only this window of the page; libvips then reads just the tiles/strips it needs where the format allows. */
  region?: { left: number; top: number; width: number; height: number };
  /**
   * The file is grey saved as RGB (its channels are equal; import records it as one channel):
   * return the first channel only, so it reads like every grey image of its project.
   */
  grey?: boolean;
}

type Input = string | Buffer | Uint8Array;

const DEFAULT_MAX_PIXELS = 2 ** 31;

/**
 * Decodes PNG, JPEG, TIFF (and whatever else sharp reads) to the stored sample values.
 *
 * Grey stays one channel, colour stays three, alpha is dropped; 8-bit data stays Uint8Array,
 * 16-bit data stays Uint16Array with the exact stored values (12-bit data is not stretched), and
 * other sample formats (float, 32-bit int) become Float32Array.
 */
export async function decodeImage(input: Input, options: DecodeOptions = {}): Promise<RawImage> {
  const source = typeof input === 'string' ? input : '<buffer>';
  await assertReadable(input, source);

  const open = (page: number) =>
    sharp(input, {
      // 'error' and not 'none': 'none' also lets truncated PNG/JPEG through, silently padded with
      // grey. 'error' still accepts BBBC039's malformed DateTime tag, which libvips only warns about.
      failOn: 'error',
      // Embedded ICC profiles would otherwise be applied, changing the measured values.
      ignoreIcc: true,
      limitInputPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS,
      page,
      pages: 1,
    });

  const page = options.page ?? 0;
  let metadata: sharp.Metadata;
  try {
    metadata = await open(0).metadata();
  } catch (error) {
    throw new ImageDecodeError(source, describeSharpError(error), { cause: error });
  }
  if (!metadata.width || !metadata.height || !metadata.channels) {
    throw new ImageDecodeError(source, 'the file has no pixel dimensions');
  }
  const pages = metadata.pages ?? 1;
  if (!Number.isInteger(page) || page < 0 || page >= pages) {
    throw new ImageDecodeError(source, `page ${page} requested, the file has ${pages} page(s)`);
  }

  const colourChannels = metadata.channels - (metadata.hasAlpha ? 1 : 0);
  // CMYK is converted to RGB; any other count above one is read as colour.
  const isColour = colourChannels >= 3 || metadata.space === 'cmyk';
  const bitDepth = bitDepthOf(metadata.depth);
  // Without an explicit colourspace, sharp converts grey to 3-channel sRGB, and 16-bit data to
  // 8 bits even when asked for ushort output ('grey16'/'rgb16' are the 16-bit interpretations).
  const colourspace =
    bitDepth === 16 ? (isColour ? 'rgb16' : 'grey16') : isColour ? 'srgb' : 'b-w';
  const rawDepth = bitDepth === 8 ? 'uchar' : bitDepth === 16 ? 'ushort' : 'float';

  let pixels: Buffer;
  let info: sharp.OutputInfo;
  try {
    let pipeline = open(page);
    if (options.region) pipeline = pipeline.extract(options.region);
    if (metadata.hasAlpha) pipeline = pipeline.removeAlpha();
    // Float (and signed) data keeps its own interpretation: converting it would rescale values.
    pipeline = pipeline.toColourspace(bitDepth === 32 ? (metadata.space ?? 'b-w') : colourspace);
    ({ data: pixels, info } = await pipeline.raw({ depth: rawDepth }).toBuffer({ resolveWithObject: true }));
  } catch (error) {
    throw new ImageDecodeError(source, describeSharpError(error), { cause: error });
  }

  const expectedChannels = isColour ? 3 : 1;
  if (info.channels !== expectedChannels && bitDepth !== 32) {
    throw new ImageDecodeError(source, `decoded ${info.channels} channels, expected ${expectedChannels}`);
  }
  const data = typedArrayFromBytes(pixels, bitDepth);
  if (data.length !== info.width * info.height * info.channels) {
    throw new ImageDecodeError(source, `decoded ${data.length} samples for ${info.width}x${info.height}x${info.channels}`);
  }
  const image = { width: info.width, height: info.height, channels: info.channels, bitDepth, data };
  return options.grey ? extractChannel(image, 0) : image;
}

/** Whether every pixel of a colour image has equal channels: grey saved as RGB, which is grey. */
export function hasEqualChannels(image: RawImage): boolean {
  const { channels, data } = image;
  if (channels === 1) return true;
  for (let i = 0; i < data.length; i += channels) {
    for (let c = 1; c < channels; c++) if (data[i + c] !== data[i]) return false;
  }
  return true;
}

export interface ImageInfo {
  format: string;
  width: number;
  height: number;
  /** Channels decodeImage returns: 1 (grey) or 3 (colour); alpha is not counted. */
  channels: number;
  bitDepth: BitDepth;
  /** Pages of a multi-page TIFF (1 for everything else). */
  pages: number;
}

/** What decodeImage would return, from the header only (no pixel decoding). */
export async function probeImage(input: Input): Promise<ImageInfo> {
  const source = typeof input === 'string' ? input : '<buffer>';
  await assertReadable(input, source);
  let metadata: sharp.Metadata;
  try {
    metadata = await sharp(input, { failOn: 'error', limitInputPixels: false }).metadata();
  } catch (error) {
    throw new ImageDecodeError(source, describeSharpError(error), { cause: error });
  }
  if (!metadata.width || !metadata.height || !metadata.channels) {
    throw new ImageDecodeError(source, 'the file has no pixel dimensions');
  }
  const colourChannels = metadata.channels - (metadata.hasAlpha ? 1 : 0);
  return {
    format: metadata.format ?? 'unknown',
    width: metadata.width,
    height: metadata.height,
    channels: colourChannels >= 3 || metadata.space === 'cmyk' ? 3 : 1,
    bitDepth: bitDepthOf(metadata.depth),
    pages: metadata.pages ?? 1,
  };
}

/**
 * The first stored channel of a mask image, values untouched: the label value of a grey or 16-bit
 * label image, the red channel of an RGB(A) mask (BBBC039 keeps its instance colouring there).
 */
export async function decodeMask(input: Input, options: DecodeOptions = {}): Promise<RawImage> {
  return extractChannel(await decodeImage(input, options), 0);
}

async function assertReadable(input: Input, source: string): Promise<void> {
  if (typeof input !== 'string') {
    if (input.length === 0) throw new ImageDecodeError(source, 'the buffer is empty');
    return;
  }
  let size: number;
  try {
    const info = await stat(input);
    if (!info.isFile()) throw new ImageDecodeError(source, 'not a regular file');
    size = info.size;
  } catch (error) {
    if (error instanceof ImageDecodeError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(error);
    throw new ImageDecodeError(source, reason, { cause: error });
  }
  if (size === 0) throw new ImageDecodeError(source, 'the file is empty (0 bytes)');
}

function bitDepthOf(depth: string | undefined): BitDepth {
  if (depth === 'uchar' || depth === undefined) return 8;
  if (depth === 'ushort') return 16;
  return 32;
}

/** Copies, because sharp's Buffer may sit at an odd offset in a shared pool. */
function typedArrayFromBytes(bytes: Buffer, bitDepth: BitDepth): PixelArray {
  if (bitDepth === 8) return new Uint8Array(bytes);
  const out = bitDepth === 16 ? new Uint16Array(bytes.length / 2) : new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

function describeSharpError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const firstLine = message.split('\n')[0].trim();
  if (/unsupported image format/i.test(firstLine)) {
    return `not a readable image (unknown format, or the file is truncated or corrupt): ${firstLine}`;
  }
  if (/premature end|end of stream|read error|truncated/i.test(firstLine)) {
    return `the file is truncated or corrupt: ${firstLine}`;
  }
  if (/exceeds pixel limit/i.test(firstLine)) {
    return `the image is larger than the pixel limit (see DecodeOptions.maxPixels): ${firstLine}`;
  }
  return firstLine;
}
