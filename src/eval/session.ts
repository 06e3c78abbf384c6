/**
 * The annotation feedback loop, replayed on a dataset with ground truth. A session starts with
 * no labels. Each round the current model proposes a mask for the next image (the most uncertain
 * one, or the next in a random order), a simulated annotator corrects it to the ground truth, and
 * what that correction costs is recorded against drawing the mask from nothing. The corrected
 * label joins the labels and, per the retraining policy, the model is fine-tuned again,
 * warm-started from the model before it. As in the app's training, a fifth of the labels (one
 * from the second on) are held out as val: the retrained model's foreground threshold is
 * calibrated on them, and it replaces the current model only if it scores better there.
 */
import { foregroundOf, type Proposal, type ProposalOptions } from '../engine/infer/propose';
import { dice } from '../engine/metrics';
import { Rng } from '../shared/rng';
import type { UNet } from '../engine/model/unet';
import { proposalSettings, type Initialisation } from '../engine/train/finetune';
import { evaluateOnVal, promotionDecision, valImagesFor, type ValScore } from '../engine/train/select';
import { correctionCost, DEFAULT_BRUSH, type BrushModel, type CorrectionCost } from './correction';
import { asLabeled, finetuneOn, proposalFor, scoreSplit, type EvalDataset, type EvalImage, type EvalTraining, type ProposalScores } from './setup';
import { parseTarget } from '../shared/target';
import type { ConsistencyOptions } from '../engine/train/consistency';

export type LabelOrder = 'active' | 'random';

export interface SessionOptions {
  order: LabelOrder;
  rounds: number;
  /** Retrain after every this many new labels. */
  retrainEvery: number;
  /** Steps of the first training (a first model's budget) and of each later, warm-started one. */
  firstSteps: number;
  stepsPerRetrain: number;
  /** Weights the first training starts from (undefined = scratch) and their name. */
  init?: Initialisation;
  initName: string;
  /**
   * Consistency training on the images not labeled yet (the session's pool and the set's
   * unlabeled folder), with its own steps: a consistency step costs more, so the same time buys fewer.
   */
  semi?: { consistency: ConsistencyOptions; firstSteps: number; stepsPerRetrain: number };
  /** Unlabeled images the active order scores per round (0 = all of them). */
  candidates: number;
  training: EvalTraining;
  seed: number;
  /**
   * Images outside the session (the test split) that every round's proposing model is also scored
   * on: one image per round makes the round's own cost swing with that image's difficulty, and an
   * active order picks the hardest images, so only a fixed set compares rounds and orders fairly.
   */
  scoreImages?: EvalImage[];
  brush?: BrushModel;
  onRound?: (round: LoopRound) => void;
}

export interface LoopRound extends CorrectionCost {
  dataset: string;
  order: LabelOrder;
  init: string;
  round: number;
  image: string;
  /** Labels there were when the proposing model was trained, val included (0 = no model yet: the image is drawn from nothing). */
  modelLabels: number;
  /** The proposal's foreground Dice against the ground truth (0 without a proposal). */
  proposalDice: number;
  /** Mean uncertainty of the proposal, the active order's criterion. */
  uncertainty: number;
  /**
   * With scoreImages: the proposing model's correction cost on them, pixels to correct over pixels
   * to draw pooled over the images (1 without a model: everything is drawn), and its mean Dice.
   */
  scoreChangedFraction?: number;
  /** scoreChangedFraction forgiving pixels within BOUNDARY_TOLERANCE of the true boundary. */
  scoreBandFraction?: number;
  scoreDice?: number;
  /** Instance sets: the object edits (add, delete, split, merge) the proposing model's objects need on the score images. */
  scoreObjectEdits?: ProposalScores['objectEdits'];
  retrained: boolean;
  /** Whether the retrained model replaced the previous one (promotionDecision, as in the app). */
  promoted: boolean;
  /** The promotion's one line, as the app shows it (val scores compared), when a model was retrained. */
  promotionReason?: string;
  /** The retrained model's thresholds, chosen on this round's val split (absent: none chosen). */
  foregroundThreshold?: number;
  seedThreshold?: number;
  /** Whether this round's label was held out as val rather than trained on. */
  heldOut: boolean;
  trainSeconds: number;
}

export async function simulateSession(ds: EvalDataset, options: SessionOptions): Promise<LoopRound[]> {
  const pool = new Rng(options.seed).shuffle([...ds.train]);
  const rounds = Math.min(options.rounds, pool.length);
  const train: EvalImage[] = [];
  const val: EvalImage[] = [];
  const valScore = (m: UNet, settings: ProposalOptions) => evaluateOnVal(m, parseTarget(ds.target), asLabeled(val), { seedThreshold: settings.seedThreshold });
  const results: LoopRound[] = [];
  let model: UNet | null = null;
  /** How the current model proposes: test-time augmentation and seed threshold, chosen on val as in the app. */
  let modelSettings: ProposalOptions = {};
  let modelLabels = 0;
  let modelTrainImages = 0;
  /** Val images the current model chose its best weights and thresholds on. */
  let modelValImages = 0;
  /** The current model's score on val as it is now: kept until val grows or the model changes. */
  let modelScore: ValScore | null = null;
  const pickRng = new Rng(options.seed + 7);
  /** The current model's scores on the score images: measured once per model. */
  let modelCost: Awaited<ReturnType<typeof fixedSetScores>> | null = null;
  try {
    for (let round = 1; round <= rounds; round++) {
      const proposedBy = model ? modelLabels : 0;
      if (options.scoreImages?.length && !modelCost) modelCost = await fixedSetScores(ds, model, options.scoreImages, modelSettings);
      const proposerCost = modelCost;
      const { image, proposal } = await nextImage(ds, pool, model, modelSettings, options, pickRng);
      pool.splice(pool.indexOf(image), 1);
      const fg = proposal ? foregroundOf(proposal.mask) : null;
      const cost = correctionCost(fg, image.gt.foreground, image.gt.image.width, image.gt.image.height, options.brush ?? DEFAULT_BRUSH);
      // One label per round: `round` is the number of labels.
      const heldOut = val.length < valImagesFor(round);
      if (heldOut) {
        val.push(image);
        modelScore = null;
      } else {
        train.push(image);
      }

      let retrained = false;
      let promoted = false;
      /** What the app would report of this round's retraining: the thresholds chosen on val and the promotion's line. */
      const retraining: Pick<LoopRound, 'foregroundThreshold' | 'seedThreshold' | 'promotionReason'> = {};
      let trainSeconds = 0;
      if (round % options.retrainEvery === 0 && round < rounds) {
        const t0 = performance.now();
        // Warm start: the next model continues from the current one, head included (or from the initialisation).
        const init: Initialisation | undefined = model ? { name: options.initName, weights: model.weights(), trained: 'segmentation' } : options.init;
        const retrainedWarm = model !== null;
        const semi = options.semi;
        const steps = semi ? (model ? semi.stepsPerRetrain : semi.firstSteps) : model ? options.stepsPerRetrain : options.firstSteps;
        const { model: next, meta: nextMeta } = await finetuneOn(ds, train, init, {
          ...options.training, steps, seed: options.seed + round,
          valImages: val.length ? val : undefined,
          ...(semi ? { consistency: semi.consistency, unlabeled: [...pool.map((im) => im.image), ...ds.unlabeled] } : {}),
        });
        retrained = true;
        if (nextMeta.foregroundThreshold !== undefined) retraining.foregroundThreshold = nextMeta.foregroundThreshold;
        if (nextMeta.seedThreshold !== undefined) retraining.seedThreshold = nextMeta.seedThreshold;
        // The app's promotion rule, on the val split as it is now (the current model re-scored).
        let nextScore: ValScore | null = null;
        if (model) {
          nextScore = await valScore(next, proposalSettings(nextMeta));
          modelScore ??= await valScore(model, modelSettings);
          ({ promote: promoted, reason: retraining.promotionReason } = promotionDecision(
            { score: nextScore, trainImages: train.length, valImages: val.length },
            { score: modelScore, trainImages: modelTrainImages, valImages: modelValImages, id: modelLabels },
          ));
        } else {
          promoted = true;
        }
        if (promoted) {
          model?.dispose();
          model = next;
          // A warm start keeps the augmentation decision of the model it continued; its seeds were calibrated anew.
          modelSettings = { tta: retrainedWarm ? modelSettings.tta : nextMeta.tta, seedThreshold: nextMeta.seedThreshold };
          modelScore = nextScore;
          modelCost = null;
          modelLabels = round;
          modelTrainImages = train.length;
          modelValImages = val.length;
        } else {
          next.dispose();
        }
        trainSeconds = (performance.now() - t0) / 1000;
      }
      const result: LoopRound = {
        dataset: ds.name, order: options.order, init: options.initName, round, image: image.name,
        modelLabels: proposedBy,
        proposalDice: fg ? dice(fg, image.gt.foreground) : 0,
        uncertainty: proposal?.score ?? NaN,
        ...(proposerCost ? { scoreChangedFraction: proposerCost.correctionFraction, scoreBandFraction: proposerCost.bandCorrectionFraction, scoreDice: proposerCost.dice } : {}),
        ...(proposerCost?.objectEdits ? { scoreObjectEdits: proposerCost.objectEdits } : {}),
        retrained, promoted, ...retraining, heldOut, trainSeconds, ...cost,
      };
      results.push(result);
      options.onRound?.(result);
    }
  } finally {
    model?.dispose();
  }
  return results;
}

/** A model's scores on fixed images; without a model every mask is drawn from nothing. */
async function fixedSetScores(ds: EvalDataset, model: UNet | null, images: EvalImage[], settings: ProposalOptions): Promise<Pick<ProposalScores, 'correctionFraction' | 'bandCorrectionFraction' | 'dice' | 'objectEdits'>> {
  return model ? scoreSplit(model, ds, images, settings) : { correctionFraction: 1, bandCorrectionFraction: 1, dice: 0 };
}

/** The next image to label and the current model's proposal for it. */
async function nextImage(ds: EvalDataset, pool: EvalImage[], model: UNet | null, tiling: ProposalOptions, options: SessionOptions, rng: Rng): Promise<{ image: EvalImage; proposal: Proposal | null }> {
  if (!model) return { image: pool[0], proposal: null };
  if (options.order === 'random') return { image: pool[0], proposal: await proposalFor(model, ds, pool[0], tiling) };
  const candidates = options.candidates > 0 && options.candidates < pool.length ? rng.shuffle([...pool]).slice(0, options.candidates) : pool;
  let best: { image: EvalImage; proposal: Proposal } | null = null;
  for (const image of candidates) {
    const proposal = await proposalFor(model, ds, image, tiling);
    if (!best || proposal.score > best.proposal.score) best = { image, proposal };
    await new Promise((r) => setImmediate(r));
  }
  return best as { image: EvalImage; proposal: Proposal };
}
