/**
 * Choosing the initialisation on held-out labels: every candidate (scratch included) is
 * fine-tuned the same way and scored on the val split, and the best one wins. This is how
 * self-supervision is kept from ever costing the user: a pretext task that does not help on
 * their images simply loses to scratch.
 */
import * as tf from '@tensorflow/tfjs';
import { UNKNOWN, type LabeledImage } from '../data';
import type { SemiSupervisedTraining } from './consistency';
import { semiSupervised } from './semi';
import { imageSource } from '../infer/predict';
import { foregroundOf, propose, type ProposalOptions } from '../infer/propose';
import { dice, labeledObjectF1 } from '../metrics';
import type { UNet } from '../model/unet';
import { finetune, type FinetuneOptions, type FinetuneResult, type Initialisation } from './finetune';
import type { SegmentationTarget } from '../target';

/** A model's scores on held-out labeled images: what the initialisation choice and promotion compare. */
export interface ValScore {
  /** Mean per-image Dice of the foreground (every class > 0), decided as proposals decide it. */
  dice: number;
  /** Instance targets only: mean per-image F1 of the proposed objects at IoU 0.5. */
  f1?: number;
}

/**
 * Scores a model's proposals on labeled images. UNKNOWN pixels are ignored: they count for
 * neither Dice nor objects. Instance targets' true objects are rebuilt from the three-class labels
 * the way proposals build theirs (interiors grown into the foreground).
 */
export async function evaluateOnVal(model: UNet, target: SegmentationTarget, images: LabeledImage[], tiling: ProposalOptions = {}): Promise<ValScore> {
  if (images.length === 0) throw new Error('evaluation needs at least one labeled image');
  let diceTotal = 0;
  let f1Total = 0;
  for (const image of images) {
    const { mask } = await propose(model, target, imageSource(image), tiling);
    const n = image.labels.length;
    const truth = new Uint8Array(n);
    const ignore = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if (image.labels[i] === UNKNOWN) ignore[i] = 1;
      else truth[i] = image.labels[i] > 0 ? 1 : 0;
    }
    diceTotal += dice(foregroundOf(mask), truth, ignore);
    if (target.kind === 'instance') f1Total += labeledObjectF1(mask as Int32Array, image);
  }
  const score: ValScore = { dice: diceTotal / images.length };
  if (target.kind === 'instance') score.f1 = f1Total / images.length;
  return score;
}

/**
 * How many of a project's labeled images the val split holds: one in five, and one as soon as
 * there are two, so that every training from the second label on is judged and calibrated on
 * images it did not learn from. The split grows with the labels; a single val image decides a
 * threshold and a promotion by the quirks of one image.
 */
export function valImagesFor(labeled: number): number {
  return labeled < 2 ? 0 : Math.max(1, Math.round(labeled / 5));
}

/**
 * Val score a pretrained initialisation must gain over scratch to replace it. A val split is a
 * handful of images, so small val differences are noise; scratch keeps the benefit of the doubt
 * because self-supervision must never cost the user.
 */
export const PRETRAINED_MARGIN = 0.01;

/**
 * Whether a candidate's val scores displace the current best; ties keep the incumbent, and a
 * candidate must beat scratch by `margin`. Semantic targets compare Dice. Instance targets compare
 * F1 — whether each object comes out whole and separate, which is what counting and measuring
 * objects needs and what Dice barely sees — while the candidate's Dice may not fall more than
 * `margin` below scratch's (or the incumbent's, when there is no scratch to compare with).
 */
export function displaces(candidate: ValScore, best: ValScore, bestIsScratch: boolean, scratch: ValScore | undefined, margin = PRETRAINED_MARGIN): boolean {
  const gain = bestIsScratch ? margin : 0;
  if (candidate.f1 === undefined || best.f1 === undefined) return candidate.dice > best.dice + gain;
  return candidate.f1 > best.f1 + gain && candidate.dice >= (scratch ?? best).dice - margin;
}

/**
 * How far below the current model a model trained on more labels may score on val and still
 * replace it. A val split of one or two images is noisy: demanding a strict gain there froze the
 * model for rounds while labels arrived. More labels are evidence too, so the newcomer gets the
 * benefit of the doubt unless val says it is clearly worse.
 */
export const PROMOTION_TOLERANCE = 0.02;

/** A model up for promotion, or the current one: its val scores and how many labeled images it learned from. */
export interface PromotionEntry {
  score: ValScore;
  trainImages: number;
}

export interface PromotionDecision {
  promote: boolean;
  /** One line for the user: why the model was promoted or kept. */
  reason: string;
}

/**
 * The promotion rule, the one the app, `maskloop train` and the simulated session all use: a
 * model trained on more labeled images than the current one replaces it unless it scores more
 * than PROMOTION_TOLERANCE below it on the val split; one trained on no more must beat it there.
 * Semantic targets compare Dice; instance targets compare F1 (whole, separate objects).
 */
export function promotionDecision(newcomer: PromotionEntry, current: (PromotionEntry & { id: number }) | null): PromotionDecision {
  if (current === null) return { promote: true, reason: 'promoted: the first model' };
  const metric = newcomer.score.f1 !== undefined && current.score.f1 !== undefined ? 'F1' : 'Dice';
  const value = (s: ValScore) => (metric === 'F1' ? (s.f1 as number) : s.dice);
  const [mine, theirs] = [value(newcomer.score), value(current.score)];
  const compared = `val ${metric} ${mine.toFixed(3)} vs ${theirs.toFixed(3)} of model #${current.id}`;
  if (mine > theirs) return { promote: true, reason: `promoted: ${compared}` };
  if (newcomer.trainImages > current.trainImages) {
    return mine >= theirs - PROMOTION_TOLERANCE
      ? { promote: true, reason: `promoted: learned from ${newcomer.trainImages} labeled images instead of ${current.trainImages}, and ${compared} is within ${PROMOTION_TOLERANCE}` }
      : { promote: false, reason: `kept model #${current.id}: ${compared} is more than ${PROMOTION_TOLERANCE} below, despite ${newcomer.trainImages - current.trainImages} more labeled image(s)` };
  }
  return { promote: false, reason: `kept model #${current.id}: learned from no more labeled images, and ${compared} does not beat it` };
}

/**
 * Val score test-time augmentation must gain over plain proposals to be used: it costs eight
 * times the compute of every proposal, so a gain within the noise of a small val split is not
 * worth it.
 */
export const TTA_MARGIN = 0.005;

/** Passes over the val images that deciding on test-time augmentation costs (one per symmetry). */
export const TTA_VAL_PASSES = 8;

/**
 * Whether a model's proposals use test-time augmentation: measured on the val split against its
 * plain scores (F1 for instance targets, else Dice), kept only where it gains more than TTA_MARGIN.
 * A first model decides; a warm start keeps the decision of the model it continues, so that a
 * retraining's short budget is not spent on eight more val passes. Promotion compares plain
 * scores, which both models have.
 */
export async function choosesAugmentation(model: UNet, target: SegmentationTarget, val: LabeledImage[], plain: ValScore, seedThreshold?: number): Promise<{ tta: boolean; ttaScore: ValScore }> {
  const ttaScore = await evaluateOnVal(model, target, val, { tta: true, seedThreshold });
  const value = (s: ValScore) => s.f1 ?? s.dice;
  return { tta: value(ttaScore) > value(plain) + TTA_MARGIN, ttaScore };
}

/** 'val Dice 0.9512' or, for instance targets, 'val Dice 0.9512, F1 0.8410'. */
export function formatValScore(score: ValScore): string {
  return `val Dice ${score.dice.toFixed(4)}${score.f1 !== undefined ? `, F1 ${score.f1.toFixed(4)}` : ''}`;
}

export interface CandidateScore extends ValScore {
  name: string;
}

export interface Selection {
  best: FinetuneResult;
  bestName: string;
  scores: CandidateScore[];
}

/**
 * Fine-tunes from each initialisation with identical options and keeps the one with the best val
 * scores (displaces); ties go to the earlier candidate, and a pretrained candidate must beat
 * scratch by PRETRAINED_MARGIN (put 'scratch' first).
 */
export async function selectInitialisation(
  candidates: Initialisation[],
  options: Omit<FinetuneOptions, 'init' | 'checkpointFile' | 'resume'> & {
    /** Each candidate's checkpoint file: saved as it trains, continued from when it exists. */
    checkpointFor?: (candidate: string) => string;
    /** How candidates named with SEMI are fine-tuned: consistency training on these images, for these steps. */
    semi?: SemiSupervisedTraining;
  },
  val: LabeledImage[],
  tiling: ProposalOptions = {},
): Promise<Selection> {
  if (candidates.length === 0) throw new Error('no initialisation to choose from');
  let best: FinetuneResult | null = null;
  let bestScore: CandidateScore | null = null;
  const scores: CandidateScore[] = [];
  for (const init of candidates) {
    const checkpointFile = options.checkpointFor?.(init.name);
    // The val images pick each candidate's best weights and foreground threshold, then judge it.
    const { semi } = semiSupervised(init.name);
    if (semi && !options.semi) throw new Error(`candidate '${init.name}' needs unlabeled images for consistency training`);
    const consistency = semi && options.semi ? { consistency: options.semi.consistency, unlabeled: options.semi.unlabeled, steps: options.semi.steps } : {};
    const result = await finetune({ ...options, ...consistency, init, checkpointFile, resume: Boolean(checkpointFile), valImages: val });
    const score: CandidateScore = { name: init.name, ...(await evaluateOnVal(result.model, options.target, val, { ...tiling, seedThreshold: result.meta.seedThreshold })) };
    scores.push(score);
    const scratch = scores.find((s) => s.name === 'scratch');
    if (best === null || bestScore === null || displaces(score, bestScore, bestScore === scratch, scratch)) {
      best?.model.dispose();
      best = result;
      bestScore = score;
    } else {
      result.model.dispose();
    }
    // Let the event loop breathe between candidates (progress, cancel).
    await tf.nextFrame();
  }
  return { best: best as FinetuneResult, bestName: (bestScore as CandidateScore).name, scores };
}
