import { endianness } from 'node:os';
import { deflateSync, inflateSync } from 'node:zlib';
import { StoreError } from './errors';

import type { LabelDtype } from '../shared/types';

export type { LabelDtype };
export type LabelArray = Uint8Array | Uint16Array | Int32Array;
type StoredArray = LabelArray | Float32Array;
type StoredDtype = LabelDtype | 'float32';

/** A label image: one integer per pixel, row-major (pixel (y, x) is data[y * width + x]). */
export interface LabelMask {
  width: number;
  height: number;
  data: LabelArray;
}

const BIG_ENDIAN = endianness() === 'BE';

export function labelDtype(data: unknown): LabelDtype | null {
  if (data instanceof Uint8Array && !(data instanceof Uint8ClampedArray)) return 'uint8';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Int32Array) return 'int32';
  return null;
}

function littleEndianBytes(data: StoredArray): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (!BIG_ENDIAN || data.BYTES_PER_ELEMENT === 1) return bytes;
  const swapped = new Uint8Array(bytes);
  return swapBytes(swapped, data.BYTES_PER_ELEMENT);
}

function swapBytes(bytes: Uint8Array, width: number): Uint8Array {
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
  return bytes;
}

/**
 * zlib at level 6: label images are mostly runs of equal values, so they shrink 20-100x, and
 * deflate/inflate of a 2k x 2k Int32 mask takes tens of milliseconds.
 */
export function encodeArray(data: StoredArray): Buffer {
  return deflateSync(littleEndianBytes(data), { level: 6 });
}

export function decodeArray(dtype: StoredDtype, blob: Uint8Array, length: number, what: string): StoredArray {
  let raw: Buffer;
  try {
    raw = inflateSync(blob);
  } catch (error) {
    throw new StoreError('data', `${what}: stored data is not valid zlib (${(error as Error).message})`, { cause: error });
  }
  const bytesPer = dtype === 'uint8' ? 1 : dtype === 'uint16' ? 2 : 4;
  if (raw.length !== length * bytesPer) {
    throw new StoreError('data', `${what}: stored ${raw.length} bytes, expected ${length * bytesPer} for ${length} ${dtype} values`);
  }
  // Copy out of the inflate buffer: it may sit at an unaligned offset in Node's buffer pool.
  const bytes = new Uint8Array(raw.length);
  bytes.set(raw);
  if (BIG_ENDIAN && bytesPer > 1) swapBytes(bytes, bytesPer);
  switch (dtype) {
    case 'uint8': return bytes;
    case 'uint16': return new Uint16Array(bytes.buffer);
    case 'int32': return new Int32Array(bytes.buffer);
    case 'float32': return new Float32Array(bytes.buffer);
  }
}

export function checkLabelMask(mask: LabelMask, what: string): LabelDtype {
  if (!mask || typeof mask !== 'object') throw new StoreError('argument', `${what}: expected {width, height, data}`);
  const { width, height, data } = mask;
  if (!Number.isInteger(width) || width <= 0 || !Number.isInteger(height) || height <= 0) {
    throw new StoreError('argument', `${what}: width and height must be positive integers (got ${width}x${height})`);
  }
  const dtype = labelDtype(data);
  if (!dtype) throw new StoreError('argument', `${what}: data must be a Uint8Array, Uint16Array or Int32Array`);
  if (data.length !== width * height) {
    throw new StoreError('argument', `${what}: data has ${data.length} values, expected ${width}x${height} = ${width * height}`);
  }
  return dtype;
}
