/**
 * Train, within a wall-clock budget: a project's first model is fine-tuned on every current label
 * from scratch and from each pretext checkpoint, and the initialisation that scores best on val is
 * kept; later trainings continue the promoted model (a warm start). The new model replaces the
 * promoted one by the promotion rule (promotionDecision), on today's val split. Older models stay
 * for rollback.
 */
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../../engine/backend';
import { architectureOf, DEFAULT_ARCH } from '../../engine/model/unet';
import { loadSegmentationModel, saveSegmentationModel, type Initialisation } from '../../engine/train/finetune';
import { recordTarget, sameTarget, type SegmentationTarget } from '../../shared/target';
import { candidateRecord, choosesAugmentation, evaluateOnVal, formatValScore, plannedSelectionSteps, promotionDecision, selectInitialisation, valImagesFor, type CandidateScore, type ValScore } from '../../engine/train/select';
import type { JsonObject, Project, RunRecord } from '../../store';
import { TRAINING } from '../../shared/training';
import { planSteps, type StepPlan } from '../../engine/train/budget';
import type { TrainOutcome } from '../../shared/types';
import { firstModelCandidates, loadLabeled, loadUnlabeled, projectSpanFloor } from '../data';
import { DEFAULT_CONSISTENCY } from '../../engine/train/consistency';
import { SEMI, semiSupervised } from '../../engine/train/semi';
import { NEVER_ABORTED, type WorkHooks } from '../hooks';
import { runToContinue } from './continuable';

export interface TrainModelOptions {
  /**
   * Wall-clock seconds for the whole run (default TRAINING.firstModelSeconds for a first model,
   * TRAINING.retrainSeconds for a warm start), turned into steps per candidate by a probe
   * (planSteps). Ignored when `steps` is given.
   */
  budgetSeconds?: number;
  /** Fine-tuning steps per candidate, instead of a budget. */
  steps?: number;
  target: SegmentationTarget;
  /** Default TRAINING.learningRate. */
  learningRate?: number;
  /**
   * Continue the promoted model (of the same target) on all current labels rather than choosing
   * an initialisation again (default true): each retraining then adds to what the model learned,
   * so training grows with the labels while each retraining stays within its budget.
   */
  warmStart?: boolean;
  /**
   * Learn from the project's unlabeled images as well: a first model tries consistency training
   * as a candidate, a warm start keeps it where its model had it. Off by default: within a first
   * model's two minutes it measured worse than plain fine-tuning on every set tried (docs/RESULTS.md),
   * and as a candidate it takes half of plain scratch's time.
   */
  semiSupervised?: boolean;
  /** 'ifDue': train only when the retrain policy says enough new labels arrived. */
  when: 'now' | 'ifDue';
  /** With 'ifDue': new labels needed (default: the project setting autoRetrainAfterLabels). */
  after?: number;
  /**
   * A train run to continue (its id, or true for the latest that did not complete): each candidate
   * goes on from its checkpoint, with the steps and learning rate its run recorded.
   */
  resume?: number | boolean;
}

/** Steps between candidate checkpoints: a kill loses at most this much training. */
const TRAIN_CHECKPOINT_EVERY = 25;

export interface RetrainPolicyState {
  newLabels: number;
  needed: number;
  due: boolean;
  lastTrainedAt: number | null;
}

/** New label versions since the last completed training, against the number the policy asks for (0: on demand only). */
export function retrainPolicyState(project: Project, after?: number): RetrainPolicyState {
  const needed = after ?? project.getSetting('autoRetrainAfterLabels');
  const last = project.listRuns({ kind: 'train', status: 'completed', limit: 1 })[0];
  const newLabels = project.countLabeledImagesSince(last?.startedAt ?? 0);
  return { newLabels, needed, due: needed > 0 && newLabels >= needed, lastTrainedAt: last?.startedAt ?? null };
}

/** What a training decided: the contract's TrainOutcome, with the engine's candidate scores and the split sizes. */
export type TrainComparison = Omit<TrainOutcome, 'candidates'> & {
  candidates: CandidateScore[];
  trainImages: number;
  valImages: number;
  /** Steps each candidate trained, and the plan that bought them (null when steps were given). */
  steps: number;
  /** Steps of the candidates with consistency training (SEMI), which cost more each; null when there were none. */
  semiSteps: number | null;
  plan: StepPlan | null;
};

export type TrainModelResult =
  | { status: 'skipped'; newLabels: number; needed: number }
  | { status: 'cancelled'; runId: number }
  | ({ status: 'completed'; runId: number; message: string } & TrainComparison);

/**
 * Tops the val split up to a fifth of the labeled images (valImagesFor) from those without a
 * split. Images first labeled after the promoted model was made come first: the promoted model is
 * re-scored on the val split to decide promotion, and an image it trained on would flatter it.
 * Within each group the order is by content hash, a fixed pseudo-random pick that does not depend
 * on import order.
 */
export function ensureValidationSplit(project: Project): void {
  const labeled = project.labeledImages({ split: ['unassigned', 'train', 'val'] });
  const missing = valImagesFor(labeled.length) - labeled.filter((l) => l.image.split === 'val').length;
  if (missing <= 0) return;
  const promotedAt = project.promotedModel()?.createdAt ?? -Infinity;
  const unseenFirst = (l: (typeof labeled)[number]) => (l.firstLabeledAt > promotedAt ? 0 : 1);
  const unassigned = labeled
    .filter((l) => l.image.split === 'unassigned')
    .sort((a, b) => unseenFirst(a) - unseenFirst(b) || a.image.contentHash.localeCompare(b.image.contentHash));
  const val = unassigned.slice(0, missing).map((l) => l.image.id);
  if (val.length) project.setImageSplit(val, 'val');
}

export async function trainModel(project: Project, options: TrainModelOptions, hooks: WorkHooks = {}): Promise<TrainModelResult> {
  const signal = hooks.signal ?? NEVER_ABORTED;
  const startedAt = performance.now();
  const { target } = options;
  if (options.when === 'ifDue') {
    const policy = retrainPolicyState(project, options.after);
    if (!policy.due) return { status: 'skipped', newLabels: policy.newLabels, needed: policy.needed };
  }
  if (options.budgetSeconds !== undefined && !(options.budgetSeconds > 0)) throw new Error(`the training budget must be > 0 seconds, got ${options.budgetSeconds}`);
  ensureValidationSplit(project);
  await initEngine({ log: Boolean(hooks.logBackend) });
  const minSpans = await projectSpanFloor(project);
  const train = await loadLabeled(project, ['train', 'unassigned'], target, minSpans);
  const val = await loadLabeled(project, ['val'], target, minSpans);
  if (train.images.length === 0) throw new Error('no labeled training images: label some, or import labels (maskloop labels import)');
  if (val.images.length === 0) throw new Error('no labeled images in the val split to judge a model by (maskloop needs at least 2 labeled images)');
  const previous = runToContinue(project, 'train', options.resume);
  // One checkpoint per candidate under this prefix; a resumed run keeps its predecessor's (runs
  // from before checkpoints existed have none and start over).
  const inherited = previous?.config.checkpoints;
  const checkpoints = typeof inherited === 'string' ? inherited : project.cachePath('checkpoints', `train-${Date.now()}`);
  const checkpointFor = (candidate: string) => `${checkpoints}-${candidate.replace(/[^a-z0-9+-]/gi, '_')}.mlckpt`;

  // The promoted model: re-scored on today's val split to decide promotion (the split may have
  // grown since), and the model a warm start continues.
  const promoted = project.promotedModel();
  const current = promoted && fs.existsSync(promoted.absoluteCheckpointPath) ? loadSegmentationModel(promoted.absoluteCheckpointPath) : null;
  let candidates: Initialisation[] = [];
  try {
    const continuesTarget = current !== null && sameTarget(current.meta.target, target);
    const resumedWarm = previous ? typeof previous.config.warmStartFrom === 'number' : undefined;
    const warm = continuesTarget && (resumedWarm ?? options.warmStart !== false);
    // Consistency training: a first model tries it as a candidate where the project has unlabeled
    // images; a warm start keeps it when the model it continues was trained with it.
    // A resumed run keeps the choice its run recorded.
    const semiAllowed = typeof previous?.config.semiSupervised === 'boolean' ? previous.config.semiSupervised : options.semiSupervised === true;
    const consistency = !semiAllowed ? undefined : warm ? current?.meta.consistency : DEFAULT_CONSISTENCY;
    const unlabeled = consistency ? await loadUnlabeled(project, { images: TRAINING.consistencyMaxImages, pixels: TRAINING.consistencyMaxPixels }, minSpans) : [];
    const semi = consistency && unlabeled.length > 0 ? { consistency, unlabeled } : null;
    candidates = warm
      ? [{ name: `from #${promoted?.id}${semi ? SEMI : ''}`, weights: (current as NonNullable<typeof current>).model.weights(), trained: 'segmentation' }]
      : firstModelCandidates(project, { semiSupervised: semi !== null });
    const trainsSemi = candidates.some((c) => semiSupervised(c.name).semi);
    // A warm start keeps the network it continues; a first model is the default one.
    const config = warm ? architectureOf((current as NonNullable<typeof current>).meta.config) : DEFAULT_ARCH;
    const learningRate = recordedNumber(previous, 'learningRate') ?? options.learningRate ?? TRAINING.learningRate;
    // Steps: a resumed run's own, else those given, else what the budget buys on this machine.
    let steps: number | undefined = recordedNumber(previous, 'steps') ?? options.steps;
    let semiSteps: number | undefined = recordedNumber(previous, 'semiSteps') ?? options.steps;
    let plan: StepPlan | null = null;
    const budgetSeconds = options.budgetSeconds ?? (warm ? TRAINING.retrainSeconds : TRAINING.firstModelSeconds);
    if (steps === undefined) {
      plan = await planSteps({
        budgetSeconds, candidates: candidates.length, choosesAugmentation: !warm, spentSeconds: (performance.now() - startedAt) / 1000,
        images: train.images, valImages: val.images, target, config,
        ...(trainsSemi && semi ? { consistency: { options: semi.consistency, unlabeled: semi.unlabeled, continuesTrainedModel: warm } } : {}),
      });
      steps = plan.steps;
      semiSteps = plan.consistency?.steps ?? steps;
    }
    // Runs recorded before consistency training existed gave every candidate the same steps.
    semiSteps ??= steps;
    const stepsOf = (c: Initialisation) => (semiSupervised(c.name).semi ? (semiSteps as number) : (steps as number));
    const run = project.startRun({
      kind: 'train',
      config: {
        target: recordTarget(target), steps, ...(trainsSemi ? { semiSteps } : {}), learningRate, budgetSeconds: plan ? budgetSeconds : null, secondsPerStep: plan?.secondsPerStep ?? null,
        warmStartFrom: warm ? (promoted?.id ?? null) : null, semiSupervised: semiAllowed, train: train.images.length, val: val.images.length,
        checkpoints, checkpointEvery: TRAIN_CHECKPOINT_EVERY, resumes: previous?.id ?? null,
      },
    });
    hooks.onRun?.(run);
    try {
      // The run's progress counts the steps of the whole selection (selectInitialisation), race included.
      let total = plannedSelectionSteps(candidates.map(stepsOf));
      project.updateRunProgress(run.id, { step: 0, total });
      const selection = await selectInitialisation(
        candidates,
        {
          images: train.images, target, config, steps, learningRate, signal, progressEvery: 5,
          checkpointFor, checkpointEvery: TRAIN_CHECKPOINT_EVERY,
          ...(trainsSemi && semi ? { semi: { ...semi, steps: semiSteps as number } } : {}),
          onProgress: (p) => {
            total = p.totalSteps;
            // Recorded before it is announced: whoever sees step n may rely on the store saying n.
            project.updateRunProgress(run.id, { step: p.step, total });
            hooks.onProgress?.({ ...p, elapsedSeconds: (performance.now() - startedAt) / 1000 });
          },
        },
        val.images,
      );
      const { best, bestName, scores } = selection;
      if (signal.aborted) {
        best.model.dispose();
        project.finishRun(run.id, { status: 'cancelled', message: 'cancelled; it can be resumed from its checkpoints' });
        return { status: 'cancelled', runId: run.id };
      }
      for (const c of candidates) fs.rmSync(checkpointFor(c.name), { force: true });
      const chosen = scores.find((s) => s.name === bestName) as CandidateScore;
      // Test-time augmentation: a first model decides on val, a warm start keeps its parent's decision.
      const augmentation = warm ? { tta: Boolean(current?.meta.tta), ttaScore: null } : await choosesAugmentation(best.model, target, val.images, chosen, best.meta.seedThreshold);
      const file = project.cachePath('checkpoints', `model-run${run.id}.mlckpt`);
      // Prelabeling normalises with the floor the model was trained with, whatever folder it reads.
      await saveSegmentationModel(file, best.model, { ...best.meta, minSpans, tta: augmentation.tta });
      best.model.dispose();
      // The network that was trained: a candidate from an older pretext checkpoint keeps its kind.
      const { depth, baseFilters, norm } = architectureOf(best.meta.config);
      // Re-scored as it proposes: with the seeds it was calibrated with (both scores leave augmentation out).
      const incumbent: ValScore | null = continuesTarget && current ? await evaluateOnVal(current.model, target, val.images, { seedThreshold: current.meta.seedThreshold }) : null;
      const incumbentImages = Number(promoted?.valMetrics?.trainImages);
      // A model recorded before val images were counted is taken to have been fitted to today's.
      const incumbentVal = Number(promoted?.valMetrics?.valImages);
      const { promote: better, reason: decision } = promotionDecision(
        { score: chosen, trainImages: train.images.length, valImages: val.images.length },
        incumbent === null || !promoted ? null : {
          score: incumbent, trainImages: Number.isFinite(incumbentImages) ? incumbentImages : 0,
          valImages: Number.isFinite(incumbentVal) ? incumbentVal : val.images.length, id: promoted.id,
        },
      );
      const metrics: JsonObject = {
        dice: chosen.dice, ...(chosen.f1 !== undefined ? { f1: chosen.f1 } : {}), valImages: val.images.length, trainImages: train.images.length,
        candidates: scores.map(candidateRecord),
        incumbentId: incumbent === null ? null : (promoted?.id ?? null), incumbentDice: incumbent?.dice ?? null,
        ...(incumbent?.f1 !== undefined ? { incumbentF1: incumbent.f1 } : {}), decision,
        semiSupervised: Boolean(best.meta.consistency),
        tta: augmentation.tta, ...(augmentation.ttaScore ? { ttaDice: augmentation.ttaScore.dice, ...(augmentation.ttaScore.f1 !== undefined ? { ttaF1: augmentation.ttaScore.f1 } : {}) } : {}),
      };
      // A warm start keeps the lineage of the model it continues.
      const pretextBase = semiSupervised(bestName).base;
      const pretextInit = warm ? (promoted?.pretextInit ?? null) : pretextBase === 'scratch' ? null : pretextBase;
      const model = project.addModel({ kind: 'segmentation', checkpointPath: file, parentId: promoted?.id ?? null, pretextInit, config: { depth, baseFilters, norm, target: recordTarget(target) }, valMetrics: metrics });
      if (better) project.promoteModel(model.id, { reason: decision });
      const message = `model #${model.id} (${bestName}, ${semiSupervised(bestName).semi ? semiSteps : steps} steps${augmentation.tta ? ', test-time augmentation' : ''}${best.meta.seedThreshold !== undefined ? `, objects seeded at ${best.meta.seedThreshold}` : ''}): ${formatValScore(chosen)} — ${decision}`;
      project.updateRunProgress(run.id, { step: total });
      project.finishRun(run.id, { status: 'completed', modelId: model.id, message });
      return {
        status: 'completed', runId: run.id, message, modelId: model.id, init: bestName, valDice: chosen.dice, valF1: chosen.f1 ?? null,
        incumbentId: incumbent === null ? null : (promoted?.id ?? null), incumbentDice: incumbent?.dice ?? null, incumbentF1: incumbent?.f1 ?? null, promoted: better,
        decision, candidates: scores, trainImages: train.images.length, valImages: val.images.length, steps, semiSteps: trainsSemi ? (semiSteps as number) : null, plan,
      };
    } catch (err) {
      project.finishRun(run.id, { status: 'failed', message: (err as Error).message });
      throw err;
    }
  } finally {
    current?.model.dispose();
    // A warm start's weights are the current model's, disposed with it.
    for (const c of candidates) if (c.trained !== 'segmentation') tf.dispose([...(c.weights?.values() ?? [])]);
  }
}

/** A number a resumed run recorded in its config, or undefined (runs from before it was recorded). */
function recordedNumber(run: RunRecord | undefined, key: string): number | undefined {
  const value = run?.config[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
