/**
 * Label-efficiency curves: test accuracy against the number of labeled training images, for
 * training from scratch, from each pretext task and from the best combination of two, over
 * several random label subsets. Every initialisation sees the same label subsets with the same
 * fine-tuning seed, so differences between initialisations are paired, not subset noise.
 *
 * The 'auto' line is what maskloop does for a user: per label subset, keep the initialisation
 * with the best val scores (scratch included; the rule of `maskloop train`, select.ts), and
 * report that model's test scores.
 */
import fs from 'node:fs';
import path from 'node:path';
import { backendInfo } from '../engine/backend';
import { BEST_CHECK_EVERY, proposalSettings, type Initialisation } from '../engine/train/finetune';
import { DEFAULT_CONSISTENCY, type ConsistencyOptions } from '../engine/train/consistency';
import { DENOISE, semiSupervised, SEMI } from '../engine/train/semi';
import { DEFAULT_JOINT_DENOISING, type JointDenoisingOptions } from '../engine/train/jointDenoising';
import type { Normalisation } from '../engine/model/unet';
import type { LearningRateSchedule } from '../engine/train/optimizerState';
import { displaces, raceLeader, type ValScore } from '../engine/train/select';
import { chooseLabeled, disposeInit, finetuneOn, pixelClassifierScores, pretrainedInit, scoreSplit, type EvalDataset, type EvalTraining, type ProposalScores } from './setup';

export const ALL_LABELS = 0;
export const COMBINATION = 'combo';
export const AUTO = 'auto';
/**
 * The first model maskloop trains, per label subset: the candidates race (select.ts), the leader
 * at the race step is the model. Its runs are the leader's own (a run paused at its race step and
 * continued is the run trained straight through), so it needs no training of its own; its steps
 * are those a race buys (budget.ts), which every line of such a curve is planned at.
 */
export const RACED = 'raced';
/** The ilastik-style pixel classifier's line: a baseline on the same label subsets, never a candidate of 'auto'. */
export const PIXEL_CLASSIFIER = 'ilastik-rf';

/** How a curve sets each model's foreground decision: calibrated on the val split, or fixed at 0.5. */
export const FOREGROUND_THRESHOLDS = ['calibrated', 'fixed'] as const;
export type ForegroundThreshold = (typeof FOREGROUND_THRESHOLDS)[number];

/** Which weights of a fine-tuning a curve scores: the best of the val checks (finetune.ts' keepBest), or the last. */
export const KEPT_WEIGHTS = ['best', 'last'] as const;
export type KeptWeights = (typeof KEPT_WEIGHTS)[number];

/**
 * Which weights a curve with these settings scores in effect: a run too short for a val check
 * along the way keeps its last weights either way, so its 'best' and 'last' are one measurement.
 */
export function weightsInEffect(finetuneSteps: number, weights: KeptWeights | undefined): KeptWeights {
  return finetuneSteps <= BEST_CHECK_EVERY ? 'last' : (weights ?? 'last');
}

export interface CurveOptions {
  /** Labeled-image counts; ALL_LABELS (0) = the whole train split. */
  ks: number[];
  /** Random label subsets per k ≤ 5, where labels are scarce and subsets differ most. */
  subsets: number;
  /** Random label subsets per k > 5 (k = all has one subset; it is repeated `allRepeats` times with other seeds). */
  largeSubsets: number;
  allRepeats: number;
  /** 'scratch', pretext task names, and COMBINATION for the best two tasks trained jointly. */
  inits: string[];
  pretrainSteps: number;
  finetuneSteps: number;
  /** Steps of a SEMI run: what the same share of the budget buys with consistency's dearer steps. */
  consistencySteps?: number;
  training: EvalTraining;
  /** 'calibrated': each model's foreground threshold is chosen on the val split (calibrate.ts); 'fixed': 0.5. */
  threshold: ForegroundThreshold;
  weights: KeptWeights;
  seed: number;
  /** Pretrained checkpoints are kept here and reused. */
  cacheDir?: string;
  /** Runs already measured (from an earlier, interrupted invocation): skipped, kept in the result. */
  done?: CurveRun[];
  onRun?: (run: CurveRun) => void;
  onMessage?: (text: string) => void;
}

export interface CurveRun {
  dataset: string;
  target: string;
  init: string;
  /** Labeled images actually used. */
  k: number;
  /** 'all' or the requested k, the curve's x value. */
  kLabel: string;
  subset: number;
  seed: number;
  valDice: number;
  /** Instance sets: val F1 at IoU 0.5 (absent in runs measured before it was recorded). */
  valF1?: number;
  /** Val Dice at the run's race step (raceStep), where the product's first model decides between its candidates. */
  raceValDice?: number;
  testDice: number;
  testIoU: number;
  testF1?: number;
  testAP?: number;
  /** Whether the model's proposals used test-time augmentation (chosen on val; absent: no). */
  tta?: boolean;
  /** 'off' when the run was told never to try test-time augmentation (absent: chosen on val). */
  ttaChoice?: 'off';
  /** Instance sets: object edits (add, delete, split, merge) summed over the test images, and their true objects. */
  testObjectEdits?: ProposalScores['objectEdits'];
  /** Mean share of pixels proposed as foreground on test images without any (absent: none, or runs from before it was recorded). */
  testEmptyForeground?: number;
  pretrainSteps: number;
  /** Pretrained runs: pretraining's learning rate (absent in runs from before it was recorded: TRAINING.pretrainLearningRate). */
  pretrainLearningRate?: number;
  /** Pretrained runs: the encoder's fine-tuning rate as a share of the decoder's (absent in runs from before it was recorded: 1). */
  encoderRateFactor?: number;
  finetuneSteps: number;
  /** The U-Net's normalisation (absent in runs measured before it existed: 'none'). */
  norm?: Normalisation;
  /** Fine-tuning's learning-rate schedule (absent in runs measured before it existed: 'constant'). */
  schedule?: LearningRateSchedule;
  /** How the foreground threshold was set (absent in runs measured before calibration: 'fixed'). */
  threshold?: ForegroundThreshold;
  /** Which weights were scored (absent in runs measured before the val checks: 'last'). */
  weights?: KeptWeights;
  /** With 'best': the fine-tuning step whose weights the val checks kept. */
  bestStep?: number;
  /** SEMI runs: the consistency training they were fine-tuned with. */
  consistency?: ConsistencyOptions;
  /** DENOISE runs: the joint denoising they were fine-tuned with. */
  jointDenoising?: JointDenoisingOptions;
  /** Pretraining wall time, paid once per initialisation and shared by its runs. */
  pretrainSeconds: number;
  /** Fine-tuning plus scoring wall time of this run. */
  wallSeconds: number;
  backend: string;
  threads: number;
  trainImages: string[];
  /** Auto runs only: the initialisation the val split chose. */
  chosenInit?: string;
}

export function runKey(r: Pick<CurveRun, 'init' | 'kLabel' | 'subset'>): string {
  return `${r.init}|${r.kLabel}|${r.subset}`;
}

/** The (k, subset, seed) cells of a curve, identical for every initialisation. */
export function curveCells(ds: EvalDataset, options: Pick<CurveOptions, 'ks' | 'subsets' | 'largeSubsets' | 'allRepeats' | 'seed'>) {
  const cells: { kLabel: string; subset: number; seed: number; images: EvalDataset['train'] }[] = [];
  for (const k of options.ks) {
    const all = k === ALL_LABELS || k >= ds.train.length;
    const repeats = all ? options.allRepeats : k <= 5 ? options.subsets : options.largeSubsets;
    for (let s = 0; s < repeats; s++) {
      const seed = options.seed + s;
      // The subset depends on k and s, so k = 2 is not simply the first two of k = 5.
      const images = all ? ds.train : chooseLabeled(ds.train, k, seed * 1009 + k);
      cells.push({ kLabel: all ? 'all' : String(k), subset: s, seed, images });
    }
  }
  // Two requested ks can both mean 'all' (k = 20 on a 20-image train split).
  return cells.filter((c, i) => cells.findIndex((d) => d.kLabel === c.kLabel && d.subset === c.subset) === i);
}

export async function runCurve(ds: EvalDataset, options: CurveOptions): Promise<CurveRun[]> {
  const runs: CurveRun[] = [...(options.done ?? [])];
  const measured = new Set(runs.map(runKey));
  const cells = curveCells(ds, options);
  const learnsFromUnlabeled = (init: string) => {
    const { semi, denoise } = semiSupervised(init);
    return semi || denoise;
  };
  const singles = options.inits.filter((i) => i !== COMBINATION && i !== PIXEL_CLASSIFIER && !learnsFromUnlabeled(i));
  // Semi-supervised lines after the plain ones, so that a '+semi' of the combination knows its tasks.
  const semis = options.inits.filter(learnsFromUnlabeled);
  const order = [...singles, ...(options.inits.includes(COMBINATION) ? [COMBINATION] : []), ...semis];

  const baselineCells = options.inits.includes(PIXEL_CLASSIFIER) ? cells.filter((c) => !measured.has(runKey({ init: PIXEL_CLASSIFIER, kLabel: c.kLabel, subset: c.subset }))) : [];
  if (baselineCells.length) {
    options.onMessage?.(`${PIXEL_CLASSIFIER}: ${baselineCells.length} forest(s) on the same label subsets`);
    const t0 = performance.now();
    const scores = pixelClassifierScores(ds, baselineCells, ds.test);
    const seconds = (performance.now() - t0) / 1000 / baselineCells.length;
    baselineCells.forEach((cell, i) => {
      const test = scores[i];
      const run: CurveRun = {
        dataset: ds.name, target: ds.target, init: PIXEL_CLASSIFIER, k: cell.images.length, kLabel: cell.kLabel, subset: cell.subset, seed: cell.seed,
        valDice: NaN, testDice: test.dice, testIoU: test.iou, ...(test.f1 !== undefined ? { testF1: test.f1, testAP: test.ap } : {}),
        ...(test.emptyForeground !== undefined ? { testEmptyForeground: test.emptyForeground } : {}),
        pretrainSteps: 0, finetuneSteps: 0, pretrainSeconds: 0, wallSeconds: seconds,
        backend: 'js', threads: 1, trainImages: cell.images.map((im) => im.name),
      };
      runs.push(run);
      measured.add(runKey(run));
      options.onRun?.(run);
    });
  }

  // maskloop's networks pause at the race step and continue (finetuneOn), where there is a place for the pause's checkpoint.
  const raceCheckpoint = options.cacheDir ? path.join(options.cacheDir, 'race-finetune.mlckpt') : undefined;
  if (options.cacheDir) fs.mkdirSync(options.cacheDir, { recursive: true });
  for (const requestedInit of order) {
    const { base: requested, semi, denoise } = semiSupervised(requestedInit);
    let tasks: string[] | null = requested === 'scratch' ? null : requested.split('+');
    if (requested === COMBINATION) {
      tasks = bestTasks(runs, singles, 2);
      if (tasks.length < 2) {
        options.onMessage?.('combination skipped: fewer than two pretext tasks were measured');
        continue;
      }
      options.onMessage?.(`combination: ${tasks.join('+')} (the two best tasks by val Dice at k ≤ 5)`);
    }
    const name = (tasks ? tasks.join('+') : 'scratch') + (denoise ? DENOISE : '') + (semi ? SEMI : '');
    const steps = semi ? (options.consistencySteps ?? options.finetuneSteps) : options.finetuneSteps;
    const todo = cells.filter((c) => !measured.has(runKey({ init: name, kLabel: c.kLabel, subset: c.subset })));
    if (todo.length === 0) continue;

    let init: Initialisation | undefined;
    let pretrainSeconds = 0;
    if (tasks) {
      options.onMessage?.(`pretraining ${tasks.join('+')} (${options.pretrainSteps} steps)`);
      const p = await pretrainedInit(ds, tasks, { ...options.training, steps: options.pretrainSteps, seed: options.seed, cacheDir: options.cacheDir });
      init = p.init;
      pretrainSeconds = p.seconds;
    }
    try {
      for (const cell of todo) {
        const t0 = performance.now();
        // What a user has unlabeled beside these labels: the rest of the train split and the unlabeled folder.
        const unlabeled = semi || denoise ? [...ds.train.filter((im) => !cell.images.includes(im)).map((im) => im.image), ...ds.unlabeled] : undefined;
        const { model, meta, raceValDice } = await finetuneOn(ds, cell.images, init, {
          ...options.training, steps, seed: cell.seed, ...(raceCheckpoint ? { raceCheckpoint } : {}),
          valImages: ds.val, calibrate: options.threshold === 'calibrated', keepBest: options.weights === 'best',
          ...(semi ? { consistency: DEFAULT_CONSISTENCY } : {}), ...(denoise ? { jointDenoising: DEFAULT_JOINT_DENOISING } : {}), unlabeled,
        });
        try {
          const tiling = proposalSettings(meta);
          const val = ds.val.length > 0 ? await scoreSplit(model, ds, ds.val, tiling) : { dice: NaN, f1: undefined };
          const test = await scoreSplit(model, ds, ds.test, tiling);
          const run: CurveRun = {
            dataset: ds.name, target: ds.target, init: name, k: cell.images.length, kLabel: cell.kLabel, subset: cell.subset, seed: cell.seed,
            valDice: val.dice, ...(val.f1 !== undefined ? { valF1: val.f1 } : {}), ...(raceValDice !== undefined ? { raceValDice } : {}), testDice: test.dice, testIoU: test.iou,
            ...(test.f1 !== undefined ? { testF1: test.f1, testAP: test.ap } : {}),
            ...(test.objectEdits ? { testObjectEdits: test.objectEdits } : {}),
            ...(test.emptyForeground !== undefined ? { testEmptyForeground: test.emptyForeground } : {}),
            pretrainSteps: tasks ? options.pretrainSteps : 0, ...(tasks ? { pretrainLearningRate: options.training.pretrainLearningRate, encoderRateFactor: options.training.encoderRateFactor ?? 1 } : {}), finetuneSteps: steps, norm: options.training.arch.norm ?? 'none',
            schedule: options.training.schedule, threshold: options.threshold, weights: options.weights,
            ...(meta.best ? { bestStep: meta.best.step } : {}), ...(meta.consistency ? { consistency: meta.consistency } : {}), ...(meta.jointDenoising ? { jointDenoising: meta.jointDenoising } : {}), ...(meta.tta ? { tta: true } : {}), ...(options.training.tta === false ? { ttaChoice: 'off' } : {}), pretrainSeconds,
            wallSeconds: (performance.now() - t0) / 1000,
            backend: backendInfo()?.choice ?? 'unknown', threads: backendInfo()?.threads ?? 0,
            trainImages: cell.images.map((im) => im.name),
          };
          runs.push(run);
          measured.add(runKey(run));
          options.onRun?.(run);
        } finally {
          model.dispose();
        }
      }
    } finally {
      if (init) disposeInit(init);
    }
  }
  return runs;
}

/** The n single pretext tasks with the best mean val Dice at few labels (k ≤ 5), best first. */
export function bestTasks(runs: CurveRun[], candidates: string[], n: number): string[] {
  const few = runs.filter((r) => r.kLabel !== 'all' && r.k <= 5);
  const pool = few.length > 0 ? few : runs;
  const scored = candidates
    .filter((t) => t !== 'scratch')
    .map((t) => {
      const mine = pool.filter((r) => r.init === t && Number.isFinite(r.valDice));
      return { t, score: mine.length ? stat(mine.map((r) => r.valDice)).mean : -Infinity };
    })
    .filter((s) => Number.isFinite(s.score))
    .sort((a, b) => b.score - a.score);
  return scored.slice(0, n).map((s) => s.t);
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/**
 * maskloop's own choice per (k, subset), the rule `maskloop train` applies (`displaces`): the
 * initialisation with the best val scores, where a pretrained one must beat scratch by `margin`.
 * Runs recorded before val F1 was are compared by val Dice alone.
 */
export function autoRuns(runs: CurveRun[], margin: number): CurveRun[] {
  const chosen: CurveRun[] = [];
  const valScore = (r: CurveRun): ValScore => ({ dice: r.valDice, f1: r.valF1 });
  // The baseline is not one of maskloop's initialisations: the val rule never picks it.
  for (const cell of groupBy(runs.filter((r) => r.init !== PIXEL_CLASSIFIER), (r) => `${r.kLabel}|${r.subset}`).values()) {
    const scratch = cell.find((r) => r.init === 'scratch');
    const scratchScore = scratch && valScore(scratch);
    let best = scratch;
    for (const r of cell) {
      if (r !== scratch && (!best || displaces(valScore(r), valScore(best), best === scratch, scratchScore, margin))) best = r;
    }
    if (best) chosen.push({ ...best, init: AUTO, chosenInit: best.init });
  }
  return chosen;
}

/**
 * The race's leader per (k, subset) among maskloop's networks that recorded a race check
 * (raceLeader, scratch first); cells where no two did are left out.
 */
export function racedRuns(runs: CurveRun[]): CurveRun[] {
  const chosen: CurveRun[] = [];
  const raced = runs.filter((r) => r.init !== PIXEL_CLASSIFIER && r.raceValDice !== undefined);
  for (const cell of groupBy(raced, (r) => `${r.kLabel}|${r.subset}`).values()) {
    if (cell.length < 2) continue;
    const ordered = [...cell.filter((r) => r.init === 'scratch'), ...cell.filter((r) => r.init !== 'scratch')];
    const leader = ordered[raceLeader(ordered.map((r) => ({ name: r.init, valDice: r.raceValDice as number })))];
    chosen.push({ ...leader, init: RACED, chosenInit: leader.init });
  }
  return chosen;
}

export interface CurvePoint {
  init: string;
  kLabel: string;
  /** Mean labeled-image count (the x position: 'all' sits at the train split's size). */
  k: number;
  runs: number;
  dice: Stat;
  iou: Stat;
  f1?: Stat;
  ap?: Stat;
  /** For 'auto': how often each initialisation was chosen. */
  chosen?: Record<string, number>;
}

export interface Stat {
  mean: number;
  /** Sample standard deviation over subsets (0 with one run). */
  sd: number;
}

export function stat(values: number[]): Stat {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, sd };
}

/** Mean and spread per initialisation and k, plus the 'auto' and 'raced' lines. */
export function summarizeCurve(runs: CurveRun[], autoMargin: number): CurvePoint[] {
  const all = [...runs, ...autoRuns(runs, autoMargin), ...racedRuns(runs)];
  const points: CurvePoint[] = [];
  for (const group of groupBy(all, (r) => `${r.init}|${r.kLabel}`).values()) {
    const first = group[0];
    const point: CurvePoint = {
      init: first.init,
      kLabel: first.kLabel,
      k: group.reduce((a, r) => a + r.k, 0) / group.length,
      runs: group.length,
      dice: stat(group.map((r) => r.testDice)),
      iou: stat(group.map((r) => r.testIoU)),
    };
    if (first.testF1 !== undefined) {
      point.f1 = stat(group.map((r) => r.testF1 as number));
      point.ap = stat(group.map((r) => r.testAP as number));
    }
    if (first.init === AUTO || first.init === RACED) {
      point.chosen = {};
      for (const r of group) point.chosen[r.chosenInit as string] = (point.chosen[r.chosenInit as string] ?? 0) + 1;
    }
    points.push(point);
  }
  return points.sort((a, b) => a.init.localeCompare(b.init) || a.k - b.k);
}
