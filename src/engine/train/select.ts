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
import { finetune, pretextWarmupSteps, type FinetuneOptions, type FinetuneResult, type Initialisation } from './finetune';
import type { SegmentationTarget } from '../target';
import type { TrainingProgress } from './loop';

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

/** A model up for promotion, or the current one: its val scores, and how many labeled images it learned from and was fitted to on val. */
export interface PromotionEntry {
  score: ValScore;
  trainImages: number;
  /** Val images its training chose its best weights and thresholds on. */
  valImages: number;
}

export interface PromotionDecision {
  promote: boolean;
  /** One line for the user: why the model was promoted or kept. */
  reason: string;
}

/**
 * The promotion rule, the one the app, `maskloop train` and the simulated session all use: a
 * model trained on more labeled images than the current one replaces it unless it scores more
 * than PROMOTION_TOLERANCE below it on the val split. One trained on no more must beat it there,
 * on a val split the current model was fitted to as well: where the val split has grown since,
 * the newcomer chose its best weights and thresholds on images the current model never saw, and
 * its edge there is that fit, not learning (measured: in BBBC039 sessions such newcomers won on
 * one new val image and proposed 17–21 spurious objects per 100 nuclei on the test split).
 * Semantic targets compare Dice; instance targets compare F1 (whole, separate objects).
 */
export function promotionDecision(newcomer: PromotionEntry, current: (PromotionEntry & { id: number }) | null): PromotionDecision {
  if (current === null) return { promote: true, reason: 'promoted: the first model' };
  const metric = newcomer.score.f1 !== undefined && current.score.f1 !== undefined ? 'F1' : 'Dice';
  const value = (s: ValScore) => (metric === 'F1' ? (s.f1 as number) : s.dice);
  const [mine, theirs] = [value(newcomer.score), value(current.score)];
  const compared = `val ${metric} ${mine.toFixed(3)} vs ${theirs.toFixed(3)} of model #${current.id}`;
  if (newcomer.trainImages > current.trainImages) {
    if (mine > theirs) return { promote: true, reason: `promoted: ${compared}` };
    return mine >= theirs - PROMOTION_TOLERANCE
      ? { promote: true, reason: `promoted: learned from ${newcomer.trainImages} labeled images instead of ${current.trainImages}, and ${compared} is within ${PROMOTION_TOLERANCE}` }
      : { promote: false, reason: `kept model #${current.id}: ${compared} is more than ${PROMOTION_TOLERANCE} below, despite ${newcomer.trainImages - current.trainImages} more labeled image(s)` };
  }
  if (newcomer.valImages > current.valImages) {
    return { promote: false, reason: `kept model #${current.id}: learned from no more labeled images; ${compared} was fitted to ${newcomer.valImages - current.valImages} val image(s) model #${current.id} never saw` };
  }
  if (mine > theirs) return { promote: true, reason: `promoted: ${compared}` };
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
  /** A candidate that lost the race: the step it stopped at, where its val Dice was measured. */
  stoppedAt?: number;
}

/** A candidate's score as records and messages carry it (JSON: no undefined fields). */
export function candidateRecord(c: CandidateScore): CandidateScore & Record<string, string | number> {
  return { name: c.name, dice: c.dice, ...(c.f1 !== undefined ? { f1: c.f1 } : {}), ...(c.stoppedAt !== undefined ? { stoppedAt: c.stoppedAt } : {}) } as CandidateScore & Record<string, string | number>;
}

export interface Selection {
  best: FinetuneResult;
  bestName: string;
  scores: CandidateScore[];
}

/**
 * Share of its schedule each initialisation trains before the race between them is decided
 * (successive halving with one round): every candidate runs this far, is scored on val, and only
 * the leader goes on to the end. Training every candidate to the end would split the budget
 * between them (two candidates: half the steps each); a race gives the winner 1 / (1 + share)
 * of it (0.8). Early enough to save most of the losers' steps, late enough that the frozen-encoder
 * warmup (a tenth) is over and the decoder has settled.
 */
export const RACE_SHARE = 0.25;

/** The step at which a race over a schedule of `steps` is decided, or null where it is too short to race (a pause needs steps before and after it). */
export function raceStep(steps: number): number | null {
  const step = Math.round(steps * RACE_SHARE);
  return step > pretextWarmupSteps(steps) && step < steps ? step : null;
}

/** Each candidate's race step, given each one's schedule length; null where they do not race (one candidate, or one too short). */
export function raceSteps(steps: number[]): number[] | null {
  const at = steps.map(raceStep);
  return steps.length > 1 && at.every((s) => s !== null) ? (at as number[]) : null;
}

/** The steps a selection over candidates of these schedule lengths runs, as far as it is known before a race is decided. */
export function plannedSelectionSteps(steps: number[]): number {
  const at = raceSteps(steps);
  if (!at) return steps.reduce((a, b) => a + b, 0);
  return at.reduce((a, b) => a + b, 0) + Math.max(...steps.map((s, i) => s - at[i]));
}

/** Budget shares a race over `candidates` costs, in units of one candidate trained to the end. */
export function raceCost(candidates: number): number {
  return 1 + (candidates - 1) * RACE_SHARE;
}

/**
 * The race's leader among candidates scored at the race step: ties go to the earlier candidate,
 * and a pretrained one must beat scratch by PRETRAINED_MARGIN (displaces, on val Dice: the race
 * compares the checks fine-tuning makes, which score pixels).
 */
export function raceLeader(raced: { name: string; valDice: number }[]): number {
  const scratch = raced.find((r) => r.name === 'scratch');
  let leader = 0;
  for (let i = 1; i < raced.length; i++) {
    const best = raced[leader];
    if (displaces({ dice: raced[i].valDice }, { dice: best.valDice }, best === scratch, scratch && { dice: scratch.valDice })) leader = i;
  }
  return leader;
}

type SelectOptions = Omit<FinetuneOptions, 'init' | 'checkpointFile' | 'resume' | 'pauseAt'> & {
  /** Each candidate's checkpoint file: saved as it trains, continued from when it exists. Needed for a race. */
  checkpointFor?: (candidate: string) => string;
  /** How candidates named with SEMI are fine-tuned: consistency training on these images, for these steps. */
  semi?: SemiSupervisedTraining;
};

/**
 * Chooses the initialisation on the val images. With several candidates and checkpoint files,
 * they race (RACE_SHARE): each trains to its race step and is scored there, the leader
 * (raceLeader) continues to the end, the others stop. Otherwise each is fine-tuned to the end
 * with identical options and the best val scores win (displaces); put 'scratch' first.
 */
export async function selectInitialisation(candidates: Initialisation[], options: SelectOptions, val: LabeledImage[], tiling: ProposalOptions = {}): Promise<Selection> {
  if (candidates.length === 0) throw new Error('no initialisation to choose from');
  const stepsOf = (init: Initialisation) => {
    const { semi } = semiSupervised(init.name);
    if (semi && !options.semi) throw new Error(`candidate '${init.name}' needs unlabeled images for consistency training`);
    return semi && options.semi ? options.semi.steps : options.steps;
  };
  const runOptions = (init: Initialisation): FinetuneOptions => {
    const checkpointFile = options.checkpointFor?.(init.name);
    const semi = semiSupervised(init.name).semi && options.semi ? { consistency: options.semi.consistency, unlabeled: options.semi.unlabeled } : {};
    // The val images pick each candidate's best weights and foreground threshold, then judge it.
    return { ...options, ...semi, steps: stepsOf(init), init, checkpointFile, resume: Boolean(checkpointFile), valImages: val };
  };
  const stepCounts = candidates.map(stepsOf);
  const raceAt = options.checkpointFor !== undefined && val.length > 0 ? raceSteps(stepCounts) : null;
  // Progress counts the steps of the whole selection, so that one bar and one ETA cover every candidate.
  const progress = new SelectionProgress(options.onProgress, plannedSelectionSteps(stepCounts));
  if (!raceAt) {
    return fineTuneEach(candidates, (init, i) => ({ ...runOptions(init), onProgress: progress.from(stepCounts.slice(0, i).reduce((a, b) => a + b, 0)) }), val, tiling);
  }
  const raced = raceAt.reduce((a, b) => a + b, 0);
  const reached: { name: string; valDice: number; stoppedAt: number }[] = [];
  for (const [i, init] of candidates.entries()) {
    const paused = await finetune({ ...runOptions(init), pauseAt: raceAt[i], onProgress: progress.from(raceAt.slice(0, i).reduce((a, b) => a + b, 0)) });
    if (paused.status === 'cancelled') return { best: paused, bestName: init.name, scores: [] };
    paused.model.dispose();
    reached.push({ name: init.name, valDice: paused.pausedValDice as number, stoppedAt: paused.meta.step });
    await tf.nextFrame();
  }
  const at = raceLeader(reached);
  const leader = candidates[at];
  progress.total = raced + stepCounts[at] - raceAt[at];
  // The leader's steps count on from where its race ended.
  const best = await finetune({ ...runOptions(leader), onProgress: progress.from(raced - raceAt[at]) });
  if (best.status === 'cancelled') return { best, bestName: leader.name, scores: [] };
  const score: CandidateScore = { name: leader.name, ...(await evaluateOnVal(best.model, options.target, val, { ...tiling, seedThreshold: best.meta.seedThreshold })) };
  const scores = reached.map((r): CandidateScore => (r.name === leader.name ? score : { name: r.name, dice: r.valDice, stoppedAt: r.stoppedAt }));
  return { best, bestName: leader.name, scores };
}

/** Progress of a selection as one run: each fine-tuning's steps offset into the whole, with the ETA of what is left. */
class SelectionProgress {
  constructor(
    private readonly report: ((p: TrainingProgress) => void) | undefined,
    /** The selection's steps; a race knows them exactly once it is decided. */
    public total: number,
  ) {}

  /** The progress callback of a fine-tuning whose step s is step offset + s of the selection. */
  from(offset: number): ((p: TrainingProgress) => void) | undefined {
    const report = this.report;
    if (!report) return undefined;
    return (p) => {
      const left = p.totalSteps - p.step;
      const secondsPerStep = left > 0 ? p.etaSeconds / left : p.elapsedSeconds / Math.max(1, p.step);
      const step = Math.min(offset + p.step, this.total);
      report({ ...p, step, totalSteps: this.total, etaSeconds: secondsPerStep * (this.total - step) });
    };
  }
}

/** Every candidate fine-tuned to the end, the best val scores kept (displaces). */
async function fineTuneEach(candidates: Initialisation[], runOptions: (init: Initialisation, index: number) => FinetuneOptions, val: LabeledImage[], tiling: ProposalOptions): Promise<Selection> {
  let best: FinetuneResult | null = null;
  let bestScore: CandidateScore | null = null;
  const scores: CandidateScore[] = [];
  for (const [i, init] of candidates.entries()) {
    const options = runOptions(init, i);
    const result = await finetune(options);
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
