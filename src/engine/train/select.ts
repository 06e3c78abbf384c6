/**
 * Choosing the initialisation on held-out labels: every candidate (scratch included) is
 * fine-tuned the same way and scored on the val split, and the best one wins. This is how
 * self-supervision is kept from ever costing the user: a pretext task that does not help on
 * their images simply loses to scratch.
 */
import * as tf from '@tensorflow/tfjs';
import type { LabeledImage } from '../data';
import { UNKNOWN } from '../data';
import { predictImage, type TilingOptions } from '../infer/predict';
import { isForegroundPixel } from '../infer/propose';
import { dice } from '../metrics';
import type { UNet } from '../model/unet';
import { finetune, type FinetuneOptions, type FinetuneResult, type Initialisation, type SegmentationTarget } from './finetune';

/**
 * Mean per-image Dice of the foreground (every class > 0 counts as foreground) on labeled images,
 * decided as proposals decide it; UNKNOWN pixels are ignored.
 */
export async function evaluateDice(model: UNet, target: SegmentationTarget, images: LabeledImage[], tiling: TilingOptions = {}): Promise<number> {
  if (images.length === 0) throw new Error('evaluation needs at least one labeled image');
  let total = 0;
  for (const image of images) {
    const prediction = await predictImage(model, image, tiling);
    const predicted = new Uint8Array(image.labels.length);
    const truth = new Uint8Array(image.labels.length);
    const ignore = new Uint8Array(image.labels.length);
    for (let i = 0; i < truth.length; i++) {
      if (image.labels[i] === UNKNOWN) ignore[i] = 1;
      else truth[i] = image.labels[i] > 0 ? 1 : 0;
      predicted[i] = isForegroundPixel(target, prediction.probabilities, i * prediction.channels, prediction.channels) ? 1 : 0;
    }
    total += dice(predicted, truth, ignore);
  }
  return total / images.length;
}

/**
 * Val Dice a pretrained initialisation must gain over scratch to replace it. A val split is a
 * handful of images, so small val differences are noise; scratch keeps the benefit of the doubt
 * because self-supervision must never cost the user.
 */
export const PRETRAINED_MARGIN = 0.01;

/** Whether a candidate's val Dice displaces the current best (ties keep the incumbent). */
export function displaces(candidateDice: number, bestDice: number, bestIsScratch: boolean, margin = PRETRAINED_MARGIN): boolean {
  return candidateDice > bestDice + (bestIsScratch ? margin : 0);
}

export interface CandidateScore {
  name: string;
  valDice: number;
}

export interface Selection {
  best: FinetuneResult;
  bestName: string;
  scores: CandidateScore[];
}

/**
 * Fine-tunes from each initialisation with identical options and keeps the one with the best val
 * Dice; ties go to the earlier candidate, and a pretrained candidate must beat scratch by
 * PRETRAINED_MARGIN (put 'scratch' first).
 */
export async function selectInitialisation(
  candidates: Initialisation[],
  options: Omit<FinetuneOptions, 'init' | 'checkpointFile' | 'resume'> & {
    /** Each candidate's checkpoint file: saved as it trains, continued from when it exists. */
    checkpointFor?: (candidate: string) => string;
  },
  val: LabeledImage[],
  tiling: TilingOptions = {},
): Promise<Selection> {
  if (candidates.length === 0) throw new Error('no initialisation to choose from');
  let best: FinetuneResult | null = null;
  let bestName = '';
  let bestDice = -Infinity;
  const scores: CandidateScore[] = [];
  for (const init of candidates) {
    const checkpointFile = options.checkpointFor?.(init.name);
    // The val images both calibrate each candidate's foreground threshold and judge it.
    const result = await finetune({ ...options, init, checkpointFile, resume: Boolean(checkpointFile), calibrationImages: val });
    const valDice = await evaluateDice(result.model, options.target, val, tiling);
    scores.push({ name: init.name, valDice });
    if (best === null || displaces(valDice, bestDice, bestName === 'scratch')) {
      best?.model.dispose();
      best = result;
      bestName = init.name;
      bestDice = valDice;
    } else {
      result.model.dispose();
    }
    // Let the event loop breathe between candidates (progress, cancel).
    await tf.nextFrame();
  }
  return { best: best as FinetuneResult, bestName, scores };
}
