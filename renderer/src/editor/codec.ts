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

export function toStored(width: number, height: number, classes: Uint8Array, instances: Int32Array): StoredMask {
  const n = width * height;
  let hasUnknown = false;
  let hasInstances = false;
  for (let i = 0; i < n; i++) {
    if (classes[i] === UNKNOWN) hasUnknown = true;
    if (instances[i] !== 0) hasInstances = true;
  }
  const unknown = hasUnknown ? new Uint8Array(n) : null;
  if (unknown) for (let i = 0; i < n; i++) unknown[i] = classes[i] === UNKNOWN ? 1 : 0;
  if (hasInstances) {
    const data = new Int32Array(n);
    for (let i = 0; i < n; i++) data[i] = classes[i] === UNKNOWN ? 0 : instances[i];
    return { width, height, dtype: 'int32', data, unknown };
  }
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = classes[i] === UNKNOWN ? 0 : classes[i];
  return { width, height, dtype: 'uint8', data, unknown };
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
