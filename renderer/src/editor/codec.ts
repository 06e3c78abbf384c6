import { UNKNOWN } from './model';

/**
 * Between the editor's two arrays and the store's one label mask + unknown mask. The store holds
 * class ids (semantic) or object ids (instance) in one array: a mask with objects is stored as
 * object ids (Int32), one without as class ids (Uint8); 'unknown' pixels go to the separate
 * unknown mask and are 0 in the label mask.
 */
export type StoredDtype = 'uint8' | 'uint16' | 'int32';

export interface StoredMask {
  width: number;
  height: number;
  dtype: StoredDtype;
  data: Uint8Array | Uint16Array | Int32Array;
  /** Nonzero where unlabeled; null when every pixel is labeled. */
  unknown: Uint8Array | null;
}

/**
 * A rectangle of the editor's arrays in the store's encoding. `dtype` is decided for the whole
 * mask (int32 once the mask has objects), so every patch of one label has the label's dtype.
 */
export function encodeRegion(
  width: number,
  classes: Uint8Array,
  instances: Int32Array,
  rect: { x: number; y: number; width: number; height: number },
  dtype: 'uint8' | 'int32',
): { data: Uint8Array | Int32Array; unknown: Uint8Array | null } {
  const n = rect.width * rect.height;
  const data = dtype === 'int32' ? new Int32Array(n) : new Uint8Array(n);
  let unknown: Uint8Array | null = null;
  let o = 0;
  for (let y = rect.y; y < rect.y + rect.height; y++) {
    for (let x = rect.x, i = y * width + rect.x; x < rect.x + rect.width; x++, i++, o++) {
      const cls = classes[i];
      if (cls === UNKNOWN) {
        unknown ??= new Uint8Array(n);
        unknown[o] = 1;
        continue;
      }
      data[o] = dtype === 'int32' ? instances[i] : cls;
    }
  }
  return { data, unknown };
}

export function toStored(width: number, height: number, classes: Uint8Array, instances: Int32Array, dtype?: 'uint8' | 'int32'): StoredMask {
  const chosen = dtype ?? (instances.some((v) => v !== 0) ? 'int32' : 'uint8');
  const { data, unknown } = encodeRegion(width, classes, instances, { x: 0, y: 0, width, height }, chosen);
  return { width, height, dtype: chosen, data, unknown };
}

/**
 * uint8 masks are class ids; uint16/int32 masks are object ids (every object in class 1), which
 * is how the store's importers write instance labels.
 */
export function fromStored(mask: StoredMask): { classes: Uint8Array; instances: Int32Array } {
  const n = mask.width * mask.height;
  if (mask.data.length !== n) throw new Error(`mask has ${mask.data.length} values, expected ${n}`);
  const classes = new Uint8Array(n);
  const instances = new Int32Array(n);
  if (mask.dtype === 'uint8') {
    for (let i = 0; i < n; i++) classes[i] = Math.min(mask.data[i], UNKNOWN - 1);
  } else {
    for (let i = 0; i < n; i++) {
      const id = mask.data[i];
      if (id > 0) {
        classes[i] = 1;
        instances[i] = id;
      }
    }
  }
  if (mask.unknown) for (let i = 0; i < n; i++) if (mask.unknown[i]) {
    classes[i] = UNKNOWN;
    instances[i] = 0;
  }
  return { classes, instances };
}
