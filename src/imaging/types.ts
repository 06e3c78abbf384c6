/** Bits per stored sample. 32 means float samples (float TIFFs, or anything decoded to float). */
export type BitDepth = 8 | 16 | 32;

export type PixelArray = Uint8Array | Uint16Array | Float32Array;

/**
 * A decoded image with its stored sample values untouched (no rescaling to 8 bits, no gamma),
 * channels interleaved: sample (y, x, c) is data[(y * width + x) * channels + c].
 */
export interface RawImage {
  width: number;
  height: number;
  channels: number;
  bitDepth: BitDepth;
  data: PixelArray;
}

/**
 * One integer per pixel: 0 = background, k > 0 = object (instance id) or class k.
 * Uint16Array is what 16-bit label TIFFs decode to; Int32Array is what this code produces.
 */
export interface LabelImage {
  width: number;
  height: number;
  data: Int32Array | Uint16Array;
}

export function arrayForDepth(bitDepth: BitDepth, length: number): PixelArray {
  if (bitDepth === 8) return new Uint8Array(length);
  if (bitDepth === 16) return new Uint16Array(length);
  return new Float32Array(length);
}

/** One channel of an interleaved image, as a single-channel image of the same depth. */
export function extractChannel(image: RawImage, channel: number): RawImage {
  if (!Number.isInteger(channel) || channel < 0 || channel >= image.channels) {
    throw new RangeError(`channel ${channel} out of range: image has ${image.channels} channel(s)`);
  }
  if (image.channels === 1) return image;
  const pixels = image.width * image.height;
  const out = arrayForDepth(image.bitDepth, pixels);
  const { data, channels } = image;
  for (let i = 0, j = channel; i < pixels; i++, j += channels) out[i] = data[j];
  return { width: image.width, height: image.height, channels: 1, bitDepth: image.bitDepth, data: out };
}
