/**
 * Integer-factor resampling for working at a coarser scale than the stored image (large cells
 * imaged at high resolution gain nothing from full resolution and cost its square in time):
 * pixel data is box-averaged down, masks are sampled down and replicated back up, so a mask
 * predicted at the working scale can be compared with full-resolution ground truth.
 */

/** Box average of each factor x factor block; a partial block at the edge averages what it has. */
export function downsamplePixels(pixels: Float32Array, width: number, height: number, channels: number, factor: number) {
  const w = Math.ceil(width / factor);
  const h = Math.ceil(height / factor);
  const out = new Float32Array(w * h * channels);
  const counts = new Float32Array(w * h);
  for (let y = 0; y < height; y++) {
    const row = Math.floor(y / factor) * w;
    for (let x = 0; x < width; x++) {
      const o = row + Math.floor(x / factor);
      counts[o]++;
      for (let c = 0; c < channels; c++) out[o * channels + c] += pixels[(y * width + x) * channels + c];
    }
  }
  for (let i = 0; i < w * h; i++) for (let c = 0; c < channels; c++) out[i * channels + c] /= counts[i];
  return { pixels: out, width: w, height: h };
}

/** Each block takes the value at its centre (masks and ids must not be averaged). */
export function downsampleMask<T extends Uint8Array | Int32Array>(mask: T, width: number, height: number, factor: number): T {
  const w = Math.ceil(width / factor);
  const h = Math.ceil(height / factor);
  const out = new (mask.constructor as new (n: number) => T)(w * h);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(height - 1, y * factor + (factor >> 1));
    for (let x = 0; x < w; x++) out[y * w + x] = mask[sy * width + Math.min(width - 1, x * factor + (factor >> 1))];
  }
  return out;
}

/** Nearest-neighbour replication back to width x height (the full-resolution size). */
export function upsampleMask<T extends Uint8Array | Int32Array>(mask: T, factor: number, width: number, height: number): T {
  const w = Math.ceil(width / factor);
  const out = new (mask.constructor as new (n: number) => T)(width * height);
  for (let y = 0; y < height; y++) {
    const row = Math.floor(y / factor) * w;
    for (let x = 0; x < width; x++) out[y * width + x] = mask[row + Math.floor(x / factor)];
  }
  return out;
}
