/**
 * Turning a wall-clock budget into fine-tuning steps. The step count is fixed before training from
 * a short probe on the images to be trained on, rather than training until a deadline: the
 * learning-rate schedule and the frozen-encoder warmup need the length of the run in advance, and
 * a run of known length can be recorded, resumed and compared with others step for step.
 */
import type { EngineImage, LabeledImage } from '../data';
import type { ConsistencyOptions } from './consistency';
import type { Architecture } from '../model/unet';
import { heldOutDice } from './calibrate';
import { BEST_CHECK_EVERY, finetune } from './finetune';
import type { SegmentationTarget } from '../target';
import { raceCost, TTA_VAL_PASSES } from './select';

/** What a budget bought: steps per candidate, and the measurements they were derived from. */
export interface StepPlan {
  budgetSeconds: number;
  candidates: number;
  steps: number;
  secondsPerStep: number;
  /** One pass over the val images, as a check of the best weights or the calibration makes it. */
  secondsPerValCheck: number;
  /**
   * When the plan was asked for consistency training: what a candidate fine-tuned with it gets.
   * Every candidate gets the same share of the budget, so a consistency step, which costs more,
   * buys fewer steps.
   */
  consistency?: { steps: number; secondsPerStep: number };
}

/**
 * The fewest steps a plan gives each candidate however short the budget: below this a model has
 * not learned enough to propose anything worth correcting, so a too-short budget runs over rather
 * than producing noise.
 */
export const MIN_PLANNED_STEPS = 20;

/** Probe steps whose time is measured, after one step that warms the kernels up. */
const PROBE_STEPS = 3;

/**
 * Val passes per candidate besides the periodic best-weights checks: the final check, the
 * foreground calibration and the candidate's score; plus, for the whole run, the promoted model
 * re-scored and, for a first model, the test-time augmentation decision (TTA_VAL_PASSES).
 */
const VAL_PASSES_PER_CANDIDATE = 3;
const VAL_PASSES_PER_RUN = 1;

/**
 * Steps per candidate that fit `secondsLeft`: each candidate costs steps × secondsPerStep plus a
 * val pass every BEST_CHECK_EVERY steps and VAL_PASSES_PER_CANDIDATE more. Candidates that race
 * (select.ts) cost raceCost(candidates) of one trained to the end, not one each; counting the
 * losers' val passes in full errs short.
 */
export function stepsWithin(secondsLeft: number, candidates: number, secondsPerStep: number, secondsPerValCheck: number, choosesAugmentation = true, races = true): number {
  if (!(candidates >= 1)) throw new Error(`a plan needs at least one candidate, got ${candidates}`);
  const perRun = VAL_PASSES_PER_RUN + (choosesAugmentation ? TTA_VAL_PASSES : 0);
  const shares = races ? raceCost(candidates) : candidates;
  const perCandidate = (secondsLeft - perRun * secondsPerValCheck) / shares - VAL_PASSES_PER_CANDIDATE * secondsPerValCheck;
  const perStep = secondsPerStep + secondsPerValCheck / BEST_CHECK_EVERY;
  return Math.max(MIN_PLANNED_STEPS, Math.floor(perCandidate / perStep));
}

export interface PlanOptions {
  budgetSeconds: number;
  /** Initialisations that will each be fine-tuned within the budget. */
  candidates: number;
  /** Whether the candidates race (selectInitialisation with checkpoint files; default true) or each trains to the end. */
  races?: boolean;
  /** Whether the run decides on test-time augmentation (a first model; default true). */
  choosesAugmentation?: boolean;
  /** Seconds of the budget already spent (loading the images). */
  spentSeconds?: number;
  images: LabeledImage[];
  valImages: LabeledImage[];
  target: SegmentationTarget;
  config: Architecture;
  batchSize?: number;
  patchSize?: number;
  /**
   * Also plan for candidates fine-tuned with consistency training on these unlabeled images;
   * `continuesTrainedModel`: a warm start, which uses it from the first step (consistencyStart).
   */
  consistency?: { options: ConsistencyOptions; unlabeled: EngineImage[]; continuesTrainedModel?: boolean };
}

/** Seconds per step of a few probe steps of a throwaway model, and the model. */
async function probeSteps(options: PlanOptions, consistency?: PlanOptions['consistency']) {
  const elapsed: number[] = [];
  const probe = await finetune({
    images: options.images, target: options.target, config: options.config, steps: PROBE_STEPS + 1,
    batchSize: options.batchSize, patchSize: options.patchSize, onProgress: (p) => elapsed.push(p.elapsedSeconds),
    // Every probe step with consistency: the plan weighs the steps without it itself.
    ...(consistency ? { consistency: { ...consistency.options, startShare: 0 }, unlabeled: consistency.unlabeled } : {}),
  });
  return { model: probe.model, secondsPerStep: (elapsed[PROBE_STEPS] - elapsed[0]) / PROBE_STEPS };
}

/**
 * Measures a training step and a val pass on the images to be trained on (a few steps of a
 * throwaway model from scratch, whose encoder is never frozen, so the estimate errs long), and
 * plans the steps the rest of the budget buys.
 */
export async function planSteps(options: PlanOptions): Promise<StepPlan> {
  const t0 = performance.now();
  const probe = await probeSteps(options);
  try {
    const { secondsPerStep } = probe;
    let secondsPerValCheck = 0;
    if (options.valImages.length > 0) {
      const v0 = performance.now();
      await heldOutDice(probe.model, options.target, options.valImages, true);
      secondsPerValCheck = (performance.now() - v0) / 1000;
    }
    let consistency: StepPlan['consistency'];
    if (options.consistency) {
      const semi = await probeSteps(options, options.consistency);
      semi.model.dispose();
      // The mean step: supervised until consistencyStart, with consistency after.
      const share = options.consistency.continuesTrainedModel ? 1 : 1 - options.consistency.options.startShare;
      consistency = { steps: 0, secondsPerStep: secondsPerStep + share * (semi.secondsPerStep - secondsPerStep) };
    }
    const spent = (options.spentSeconds ?? 0) + (performance.now() - t0) / 1000;
    const within = (perStep: number) => stepsWithin(options.budgetSeconds - spent, options.candidates, perStep, secondsPerValCheck, options.choosesAugmentation !== false, options.races !== false);
    if (consistency) consistency.steps = within(consistency.secondsPerStep);
    return { budgetSeconds: options.budgetSeconds, candidates: options.candidates, steps: within(secondsPerStep), secondsPerStep, secondsPerValCheck, ...(consistency ? { consistency } : {}) };
  } finally {
    probe.model.dispose();
  }
}
