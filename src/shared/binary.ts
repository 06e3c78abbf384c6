/**
 * Pixels, thumbnails and masks travel as raw bytes over plain GET requests, not through the JSON
 * channels: a 4096x4096 16-bit image is 32 MB, which base64-in-JSON would inflate and copy. The
 * same relative URLs work in both shells: the browser fallback server answers them on
 * http://127.0.0.1:<port>, Electron's app:// protocol handler answers them on app://maskloop, and
 * the renderer's page has that origin in each case. Sample data is little-endian.
 */
import type { LabelDtype, PixelDtype } from './types';

export const BINARY_HEADERS = {
  width: 'x-maskloop-width',
  height: 'x-maskloop-height',
  channels: 'x-maskloop-channels',
  bitDepth: 'x-maskloop-bit-depth',
  dtype: 'x-maskloop-dtype',
  /** 'x,y,width,height' of the block inside the image (pixels only). */
  region: 'x-maskloop-region',
  imageWidth: 'x-maskloop-image-width',
  imageHeight: 'x-maskloop-image-height',
  labelVersion: 'x-maskloop-label-version',
  modelId: 'x-maskloop-model-id',
  /** '1' when width x height bytes of unknown flags follow the label data. */
  hasUnknown: 'x-maskloop-has-unknown',
  uncertaintyScore: 'x-maskloop-uncertainty-score',
} as const;

export interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}

export const binaryUrls = {
  /** Stored sample values, channels interleaved; optionally one rectangle (for tiles of huge images). */
  pixels(imageId: number, region?: Region): string {
    const q = region ? `?x=${region.x}&y=${region.y}&w=${region.width}&h=${region.height}` : '';
    return `/api/images/${imageId}/pixels${q}`;
  },
  /** 8-bit PNG, auto-contrast, longest side `size` (default 192, at most 512). */
  thumbnail(imageId: number, size?: number): string {
    return `/api/images/${imageId}/thumbnail${size ? `?size=${size}` : ''}`;
  },
  /** Latest label version, or `version`; 404 when the image has none. */
  label(imageId: number, version?: number): string {
    return `/api/images/${imageId}/label${version ? `?version=${version}` : ''}`;
  },
  /** The promoted model's proposal (else the latest one), or that of `modelId`; 404 when none. */
  proposal(imageId: number, modelId?: number): string {
    return `/api/images/${imageId}/proposal${modelId ? `?modelId=${modelId}` : ''}`;
  },
  /** Per-pixel uncertainty of that proposal, float32 in [0, 1]; 404 when none was kept. */
  uncertainty(imageId: number, modelId?: number): string {
    return `/api/images/${imageId}/uncertainty${modelId ? `?modelId=${modelId}` : ''}`;
  },
};

export interface PixelBlock {
  width: number;
  height: number;
  channels: number;
  bitDepth: number;
  dtype: PixelDtype;
  region: Region;
  imageWidth: number;
  imageHeight: number;
  data: Uint8Array | Uint16Array | Float32Array;
}

export interface MaskBlock {
  width: number;
  height: number;
  dtype: LabelDtype;
  data: Uint8Array | Uint16Array | Int32Array;
  /** Label version (labels) or null. */
  version: number | null;
  /** Model id (proposals) or null. */
  modelId: number | null;
  unknown: Uint8Array | null;
  uncertaintyScore: number | null;
}

type HeaderSource = { get(name: string): string | null };

function intHeader(headers: HeaderSource, name: string): number {
  const v = Number(headers.get(name));
  if (!Number.isInteger(v)) throw new Error(`response lacks header ${name}`);
  return v;
}

function optionalNumber(headers: HeaderSource, name: string): number | null {
  const raw = headers.get(name);
  return raw === null || raw === '' ? null : Number(raw);
}

function typed(dtype: string, buffer: ArrayBuffer, offset: number, length: number): Uint8Array | Uint16Array | Int32Array | Float32Array {
  // Copies when the offset is not aligned for the element size (a fetch body always starts aligned).
  const make = <T>(Ctor: { new (b: ArrayBuffer, o: number, l: number): T; new (l: number): T; BYTES_PER_ELEMENT: number }): T =>
    offset % Ctor.BYTES_PER_ELEMENT === 0 ? new Ctor(buffer, offset, length) : (new Ctor(buffer.slice(offset, offset + length * Ctor.BYTES_PER_ELEMENT), 0, length));
  switch (dtype) {
    case 'uint8': return make(Uint8Array);
    case 'uint16': return make(Uint16Array);
    case 'int32': return make(Int32Array);
    case 'float32': return make(Float32Array);
    default: throw new Error(`unknown dtype '${dtype}'`);
  }
}

/** Decodes a /pixels response. */
export function decodePixelBlock(headers: HeaderSource, body: ArrayBuffer): PixelBlock {
  const width = intHeader(headers, BINARY_HEADERS.width);
  const height = intHeader(headers, BINARY_HEADERS.height);
  const channels = intHeader(headers, BINARY_HEADERS.channels);
  const dtype = headers.get(BINARY_HEADERS.dtype) as PixelDtype;
  const [x, y, w, h] = (headers.get(BINARY_HEADERS.region) ?? `0,0,${width},${height}`).split(',').map(Number);
  return {
    width, height, channels, dtype,
    bitDepth: intHeader(headers, BINARY_HEADERS.bitDepth),
    region: { x, y, width: w, height: h },
    imageWidth: intHeader(headers, BINARY_HEADERS.imageWidth),
    imageHeight: intHeader(headers, BINARY_HEADERS.imageHeight),
    data: typed(dtype, body, 0, width * height * channels) as PixelBlock['data'],
  };
}

/** Decodes a /label, /proposal or /uncertainty response (uncertainty: dtype float32, data is a Float32Array). */
export function decodeMaskBlock(headers: HeaderSource, body: ArrayBuffer): MaskBlock {
  const width = intHeader(headers, BINARY_HEADERS.width);
  const height = intHeader(headers, BINARY_HEADERS.height);
  const dtype = headers.get(BINARY_HEADERS.dtype) as LabelDtype;
  const pixels = width * height;
  const data = typed(dtype, body, 0, pixels) as MaskBlock['data'];
  const hasUnknown = headers.get(BINARY_HEADERS.hasUnknown) === '1';
  return {
    width, height, dtype, data,
    version: optionalNumber(headers, BINARY_HEADERS.labelVersion),
    modelId: optionalNumber(headers, BINARY_HEADERS.modelId),
    unknown: hasUnknown ? new Uint8Array(body, data.byteLength, pixels) : null,
    uncertaintyScore: optionalNumber(headers, BINARY_HEADERS.uncertaintyScore),
  };
}
