/**
 * A project measured on its own labels: k-fold cross-validation over the labeled images. Each fold
 * is held out as test once; the next fold is val (it picks the best weights, the foreground
 * threshold and test-time augmentation, as in maskloop train) and the rest is trained on, from
 * scratch and from each pretext checkpoint, within a first model's budget. What it answers: how
 * good a model of this project is on images it never saw, and which initialisation wins on the
 * lab's own images. Nothing is written to the project.
 */
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../../engine/backend';
import type { LabeledImage } from '../../engine/data';
import { DEFAULT_ARCH } from '../../engine/model/unet';
import { planSteps, type StepPlan } from '../../engine/train/budget';
import { finetune, type Initialisation } from '../../engine/train/finetune';
import type { SegmentationTarget } from '../../engine/target';
import { choosesAugmentation, displaces, evaluateOnVal, type ValScore } from '../../engine/train/select';
import { TRAINING } from '../../shared/training';
import type { Project } from '../../store';
import { firstModelCandidates, loadLabeled, loadUnlabeled, projectSpanFloor } from '../data';
import { DEFAULT_CONSISTENCY, type SemiSupervisedTraining } from '../../engine/train/consistency';
import { semiSupervised } from '../../engine/train/semi';
import { NEVER_ABORTED, type WorkHooks } from '../hooks';

export interface EvaluateProjectOptions {
  target: SegmentationTarget;
  /** Folds (default DEFAULT_FOLDS, at most one per labeled image). */
  folds?: number;
  /** Steps per candidate instead of a first model's budget. */
  steps?: number;
  learningRate?: number;
  /** Also measure consistency training on the project's unlabeled images, as `maskloop train --semi` would try it. */
  semiSupervised?: boolean;
}

export const DEFAULT_FOLDS = 5;

export interface FoldResult {
  fold: number;
  trainImages: number;
  valImages: number;
  testImages: number;
  /** Test scores per initialisation, and the one val chose (as maskloop train would). */
  scores: Record<string, ValScore>;
  chosen: string;
}

export interface ProjectEvaluation {
  folds: FoldResult[];
  steps: number;
  plan: StepPlan | null;
  /** Per initialisation and for the val-chosen model: mean and standard deviation of test Dice (and F1) over the folds. */
  summary: Array<{ name: string; dice: Spread; f1?: Spread }>;
  cancelled: boolean;
}

export interface Spread {
  mean: number;
  sd: number;
}

/** The line of the val-chosen model in the summary. */
export const VAL_CHOSEN = 'val-chosen';

export async function evaluateProject(project: Project, options: EvaluateProjectOptions, hooks: WorkHooks = {}): Promise<ProjectEvaluation> {
  const signal = hooks.signal ?? NEVER_ABORTED;
  const startedAt = performance.now();
  await initEngine({ log: Boolean(hooks.logBackend) });
  const minSpans = await projectSpanFloor(project);
  // Every labeled image, whatever its split: the folds make their own.
  const { images, records } = await loadLabeled(project, ['train', 'val', 'unassigned', 'test'], options.target, minSpans);
  if (images.length < 3) throw new Error(`a k-fold evaluation needs at least 3 labeled images (test, val and train); this project has ${images.length}`);
  const k = Math.min(options.folds ?? DEFAULT_FOLDS, images.length);
  if (!(k >= 3)) throw new Error(`a k-fold evaluation needs at least 3 folds, got ${options.folds}`);
  // Folds by content hash: fixed by the images, not by import order.
  const order = records.map((r, i) => ({ hash: r.contentHash, i })).sort((a, b) => a.hash.localeCompare(b.hash)).map((e) => e.i);
  const foldOf = new Map(order.map((imageIndex, rank) => [imageIndex, rank % k]));
  /** Fold f is test, the next one val, the rest train. */
  const splitFor = (f: number) => {
    const valFold = (f + 1) % k;
    return {
      test: images.filter((_, i) => foldOf.get(i) === f),
      val: images.filter((_, i) => foldOf.get(i) === valFold),
      train: images.filter((_, i) => foldOf.get(i) !== f && foldOf.get(i) !== valFold),
    };
  };

  // As in maskloop train --semi: consistency training is a candidate where there are unlabeled images.
  const unlabeled = options.semiSupervised ? await loadUnlabeled(project, { images: TRAINING.consistencyMaxImages, pixels: TRAINING.consistencyMaxPixels }, minSpans) : [];
  const semi = unlabeled.length > 0 ? { consistency: DEFAULT_CONSISTENCY, unlabeled } : null;
  const candidates = firstModelCandidates(project, { semiSupervised: semi !== null });
  try {
    const first = splitFor(0);
    let plan: StepPlan | null = null;
    let steps = options.steps;
    let semiSteps = options.steps;
    if (steps === undefined) {
      plan = await planSteps({
        budgetSeconds: TRAINING.firstModelSeconds, candidates: candidates.length, races: false, spentSeconds: (performance.now() - startedAt) / 1000,
        images: first.train, valImages: first.val, target: options.target, config: DEFAULT_ARCH,
        ...(semi ? { consistency: { options: semi.consistency, unlabeled: semi.unlabeled } } : {}),
      });
      steps = plan.steps;
      semiSteps = plan.consistency?.steps ?? steps;
    }
    const folds: FoldResult[] = [];
    for (let f = 0; f < k && !signal.aborted; f++) {
      const result = await evaluateFold(f, splitFor(f), candidates, options, { steps, semi: semi && { ...semi, steps: semiSteps as number } }, hooks);
      if (!result) break;
      folds.push(result);
      hooks.onMessage?.(`fold ${f + 1}/${k}: ${Object.entries(result.scores).map(([name, s]) => `${name} ${formatScore(s)}`).join(', ')}; val chose ${result.chosen}`);
    }
    const names = [...candidates.map((c) => c.name), VAL_CHOSEN];
    const summary = names.map((name) => {
      const scores = folds.map((f) => (name === VAL_CHOSEN ? f.scores[f.chosen] : f.scores[name]));
      const f1 = scores.every((s) => s.f1 !== undefined) && scores.length ? spread(scores.map((s) => s.f1 as number)) : undefined;
      return { name, dice: spread(scores.map((s) => s.dice)), ...(f1 ? { f1 } : {}) };
    });
    return { folds, steps, plan, summary, cancelled: signal.aborted };
  } finally {
    for (const c of candidates) tf.dispose([...(c.weights?.values() ?? [])]);
  }
}

/** One fold: each candidate trained on train, judged on val, scored on test; null when cancelled. */
async function evaluateFold(
  fold: number,
  split: { train: LabeledImage[]; val: LabeledImage[]; test: LabeledImage[] },
  candidates: Initialisation[],
  options: EvaluateProjectOptions,
  training: { steps: number; semi: SemiSupervisedTraining | null },
  hooks: WorkHooks,
): Promise<FoldResult | null> {
  const scores: Record<string, ValScore> = {};
  let chosen: { name: string; val: ValScore } | null = null;
  let scratchVal: ValScore | undefined;
  for (const init of candidates) {
    const semi = semiSupervised(init.name).semi ? training.semi : null;
    const run = await finetune({
      images: split.train, valImages: split.val, target: options.target, config: DEFAULT_ARCH, init,
      steps: semi ? semi.steps : training.steps, ...(semi ? { consistency: semi.consistency, unlabeled: semi.unlabeled } : {}),
      learningRate: options.learningRate, seed: 1 + fold, signal: hooks.signal, progressEvery: 5,
      onProgress: (p) => hooks.onProgress?.({ ...p, phase: `fold ${fold + 1}: ${p.phase}` }),
    });
    try {
      if (run.status === 'cancelled') return null;
      const { seedThreshold } = run.meta;
      const val = await evaluateOnVal(run.model, options.target, split.val, { seedThreshold });
      const { tta } = await choosesAugmentation(run.model, options.target, split.val, val, seedThreshold);
      scores[init.name] = await evaluateOnVal(run.model, options.target, split.test, { tta, seedThreshold });
      if (init.name === 'scratch') scratchVal = val;
      // The choice maskloop train makes (selectInitialisation): a pretext encoder must beat scratch by a margin.
      if (!chosen || displaces(val, chosen.val, chosen.name === 'scratch', scratchVal)) chosen = { name: init.name, val };
    } finally {
      run.model.dispose();
    }
  }
  return { fold, trainImages: split.train.length, valImages: split.val.length, testImages: split.test.length, scores, chosen: (chosen as { name: string }).name };
}

function spread(values: number[]): Spread {
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
  const sd = values.length > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1)) : 0;
  return { mean, sd };
}

function formatScore(s: ValScore): string {
  return `Dice ${s.dice.toFixed(3)}${s.f1 !== undefined ? ` F1 ${s.f1.toFixed(3)}` : ''}`;
}
