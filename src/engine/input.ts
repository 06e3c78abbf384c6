/**
 * The engine's input contract: raw 8/16/32-bit images of any channel count become normalised
 * EngineImages (per-channel percentile window to [0, 1]), and ground truth becomes the per-pixel
 * class labels the fine-tuning loss reads.
 */
import { instanceTargets } from '../imaging/instances';
import { normalizePercentile, normalizeWithRanges, type ChannelRange, type PercentileOptions } from '../imaging/normalize';
import type { RawImage } from '../imaging/types';
import { UNKNOWN, type EngineImage, type LabeledImage } from './data';

export interface PreparedImage extends EngineImage {
  /** The intensity window used, so other tiles of the same image normalise identically. */
  ranges: ChannelRange[];
}

export function prepareImage(raw: RawImage, options: PercentileOptions & { ranges?: ChannelRange[] } = {}): PreparedImage {
  if (options.ranges) {
    return { pixels: normalizeWithRanges(raw, options.ranges), width: raw.width, height: raw.height, channels: raw.channels, ranges: options.ranges };
  }
  const n = normalizePercentile(raw, options);
  return { pixels: n.data, width: n.width, height: n.height, channels: n.channels, ranges: n.ranges };
}

/** Binary foreground (any non-zero = class 1) as labels; `unknown` marks pixels to ignore. */
export function semanticLabels(foreground: ArrayLike<number>, unknown?: ArrayLike<number>): Uint8Array {
  const labels = new Uint8Array(foreground.length);
  for (let i = 0; i < labels.length; i++) labels[i] = unknown && unknown[i] ? UNKNOWN : foreground[i] ? 1 : 0;
  return labels;
}

/** Instance ids as background (0) / interior (1) / boundary (2) labels for the instance target. */
export function instanceLabels(instances: ArrayLike<number>, width: number, height: number, unknown?: ArrayLike<number>): Uint8Array {
  const { interior, boundary } = instanceTargets(instances, width, height, { boundaryWidth: 1 });
  const labels = new Uint8Array(width * height);
  for (let i = 0; i < labels.length; i++) {
    labels[i] = unknown && unknown[i] ? UNKNOWN : interior[i] ? 1 : boundary[i] ? 2 : 0;
  }
  return labels;
}

export function labeled(image: EngineImage, labels: Uint8Array): LabeledImage {
  if (labels.length !== image.width * image.height) {
    throw new Error(`labels have ${labels.length} pixels, the image ${image.width}x${image.height}`);
  }
  return { ...image, labels };
}
