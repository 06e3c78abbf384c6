/**
 * From network outputs to a proposed mask, for images of any size: rows are reduced to what the
 * mask needs as they stream out of the tiled predictor, so a 10000x10000 image never holds a
 * float map per class in memory.
 */
import { instancesFromInterior } from '../../imaging/instances';
import type { UNet } from '../model/unet';
import type { SegmentationTarget } from '../target';
import type { PixelSource } from '../../imaging/source';
import { foregroundProbability, pixelClass, predictTiled, type TilingOptions } from './predict';

export interface Proposal {
  width: number;
  height: number;
  /** Semantic: class per pixel (Uint8). Instance: object ids (Int32). */
  mask: Uint8Array | Int32Array;
  /** Per-pixel uncertainty in [0, 1], when asked for. */
  uncertainty?: Float32Array;
  /** Mean uncertainty: the 'label next' score. */
  score: number;
}

/**
 * Whether a pixel is foreground. Instance target: background has less than half the probability
 * (interior and boundary together make the object). Semantic: its class is not background.
 */
export function isForegroundPixel(target: SegmentationTarget, probabilities: Float32Array, offset: number, channels: number): boolean {
  return target.kind === 'instance' ? foregroundProbability(probabilities, offset, channels) > 0.5 : pixelClass(probabilities, offset, channels) > 0;
}

/** Smallest object kept when separating instances, in pixels: specks are noise, not nuclei. */
export const MIN_OBJECT_PIXELS = 16;

/** The interior probability from which a pixel seeds an object, unless the model was calibrated otherwise (SegmentationModelMeta.seedThreshold). */
export const DEFAULT_SEED_THRESHOLD = 0.5;

export interface ProposalOptions extends TilingOptions {
  keepUncertainty?: boolean;
  /** Instance targets: the interior probability from which a pixel seeds an object (default DEFAULT_SEED_THRESHOLD). */
  seedThreshold?: number;
}

/** Objects from seed pixels (interior at or above the seed threshold) grown into the foreground, as proposals separate them. */
export function separateObjects(seeds: Uint8Array, foreground: Uint8Array, width: number, height: number): Int32Array {
  return instancesFromInterior(seeds, width, height, { foreground, minSize: MIN_OBJECT_PIXELS }).labels;
}

export async function propose(model: UNet, target: SegmentationTarget, source: PixelSource, options: ProposalOptions = {}): Promise<Proposal> {
  const seedThreshold = options.seedThreshold ?? DEFAULT_SEED_THRESHOLD;
  const { width, height } = source;
  const channels = model.config.outChannels;
  const n = width * height;
  const classes = new Uint8Array(n);
  // Instance target: interior and foreground decisions, kept as bytes for the global grouping step.
  const interior = target.kind === 'instance' ? new Uint8Array(n) : null;
  const uncertainty = options.keepUncertainty ? new Float32Array(n) : undefined;
  const score = await predictTiled(
    model,
    source,
    (y0, rows, probs, unc) => {
      const base = y0 * width;
      for (let i = 0; i < rows * width; i++) {
        if (interior) {
          interior[base + i] = probs[i * channels + 1] >= seedThreshold ? 1 : 0;
          classes[base + i] = isForegroundPixel(target, probs, i * channels, channels) ? 1 : 0;
        } else {
          classes[base + i] = pixelClass(probs, i * channels, channels);
        }
      }
      uncertainty?.set(unc, base);
    },
    options,
  );
  if (!interior) return { width, height, mask: classes, uncertainty, score };
  return { width, height, mask: separateObjects(interior, classes, width, height), uncertainty, score };
}

/** Foreground (any class > 0) of a proposal. */
export function foregroundOf(mask: Uint8Array | Int32Array): Uint8Array {
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) out[i] = mask[i] > 0 ? 1 : 0;
  return out;
}
