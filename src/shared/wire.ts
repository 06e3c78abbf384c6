/**
 * JSON cannot carry typed arrays, and the browser fallback speaks JSON over HTTP. Requests and
 * responses go through `toWire` before JSON.stringify and `fromWire` after JSON.parse, which turn
 * every Uint8Array / Uint16Array / Int32Array / Float32Array into `{"$typed": "<dtype>", "base64": "…"}`
 * (little-endian bytes) and back. Electron's IPC clones typed arrays natively and skips this.
 * Browser-safe: no Buffer, only btoa/atob (present in Node too).
 */
export type WireDtype = 'uint8' | 'uint16' | 'int32' | 'float32';

export interface WireTypedArray {
  $typed: WireDtype;
  base64: string;
}

const CONSTRUCTORS = {
  uint8: Uint8Array,
  uint16: Uint16Array,
  int32: Int32Array,
  float32: Float32Array,
} as const;

function dtypeOf(value: unknown): WireDtype | null {
  if (value instanceof Uint8Array) return 'uint8';
  if (value instanceof Uint16Array) return 'uint16';
  if (value instanceof Int32Array) return 'int32';
  if (value instanceof Float32Array) return 'float32';
  return null;
}

// The machines this runs on are little-endian (x86, ARM); the wire format is defined as such.
const CHUNK = 0x8000;

export function bytesToBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += CHUNK) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK) as unknown as number[]);
  }
  return btoa(binary);
}

export function base64ToBytes(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function isWireTypedArray(value: unknown): value is WireTypedArray {
  return (
    typeof value === 'object' && value !== null && typeof (value as WireTypedArray).$typed === 'string' &&
    typeof (value as WireTypedArray).base64 === 'string' && Object.hasOwn(CONSTRUCTORS, (value as WireTypedArray).$typed)
  );
}

/** A deep copy of `value` with typed arrays replaced by their wire form. */
export function toWire(value: unknown): unknown {
  const dtype = dtypeOf(value);
  if (dtype) {
    const array = value as Uint8Array | Uint16Array | Int32Array | Float32Array;
    return { $typed: dtype, base64: bytesToBase64(new Uint8Array(array.buffer, array.byteOffset, array.byteLength)) };
  }
  if (Array.isArray(value)) return value.map(toWire);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) out[key] = toWire(v);
    return out;
  }
  return value;
}

/** Undoes toWire. A malformed typed-array record is left as an object, and schema validation then refuses it. */
export function fromWire(value: unknown): unknown {
  if (isWireTypedArray(value)) {
    const bytes = base64ToBytes(value.base64);
    const Ctor = CONSTRUCTORS[value.$typed];
    if (bytes.byteLength % Ctor.BYTES_PER_ELEMENT !== 0) return value;
    return new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
  }
  if (Array.isArray(value)) return value.map(fromWire);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) out[key] = fromWire(v);
    return out;
  }
  return value;
}
