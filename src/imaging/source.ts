/**
 * What the engine's tiled predictor reads pixels from, and the padding rule every reader shares:
 * in-memory crops and tiles read from files alike, so that the two are equal.
 */

/** A source of normalised pixels, so huge images can be read tile by tile. */
export interface PixelSource {
  width: number;
  height: number;
  channels: number;
  /** Normalised HWC pixels of the w x h window; coordinates may exceed the image (reflect padding). */
  read(x: number, y: number, w: number, h: number): Float32Array;
}

/**
 * Reflect index into [0, n) (…2 1 0 1 2…, edge pixel not repeated) so that crops larger than the
 * image stay image-like.
 */
export function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - m;
}
