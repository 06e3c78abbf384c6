/**
 * Saving and restoring Adam's moments, so that a resumed run continues the same optimisation
 * rather than restarting it with cold moments (which shows as a loss spike after resume).
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import { disposeCheckpoint, loadCheckpoint, readCheckpointMeta, saveCheckpoint, type Checkpoint } from '../checkpoint';
import { architectureOf, type Architecture, type UNetConfig } from '../model/unet';
import type { TrainingRunOptions } from './loop';

/**
 * A backend that runs Adam's update of one weight tensor as one kernel (the native backend:
 * `adam` in eltwise.cc): tfjs' Adam runs fifteen small kernels per weight tensor, some 800 per
 * step of the default U-Net, whose dispatch cost more than their arithmetic.
 */
export interface FusedAdamBackend {
  /** New weights and moments after one step; `settings` as the native `adam` kernel takes them. */
  adamStep(weights: tf.Tensor, gradient: tf.Tensor, m: tf.Tensor, v: tf.Tensor, settings: Float32Array): { weights: tf.Tensor; m: tf.Tensor; v: tf.Tensor };
}

/** tfjs' Adam's own state, which the fused step reads and updates as tfjs' applyGradients does (tfjs 4.x). */
interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  incrementIterations(): void;
}

/**
 * tfjs' Adam, with each weight tensor's update fused into one kernel where the backend has one.
 * The moments live where tfjs keeps them, so its getWeights/setWeights (checkpoints) and the rate
 * a schedule sets work unchanged, and the update is the same arithmetic in the same order.
 */
class FusedAdam extends tf.AdamOptimizer {
  override applyGradients(variableGradients: Parameters<tf.AdamOptimizer['applyGradients']>[0]): void {
    const backend = tf.backend() as Partial<FusedAdamBackend>;
    if (typeof backend.adamStep !== 'function') return super.applyGradients(variableGradients);
    const fused = backend as FusedAdamBackend;
    const self = this as unknown as AdamInternals;
    const entries: Array<readonly [string, tf.Tensor | null]> = Array.isArray(variableGradients) ? variableGradients.map((g) => [g.name, g.tensor] as const) : Object.entries(variableGradients);
    const f = Math.fround;
    const [accBeta1, accBeta2] = [self.accBeta1.dataSync()[0], self.accBeta2.dataSync()[0]];
    const settings = Float32Array.from([self.learningRate, self.beta1, self.beta2, f(1 - self.beta1), f(1 - self.beta2), f(1 - accBeta1), f(1 - accBeta2), self.epsilon]);
    tf.tidy(() => {
      entries.forEach(([name, gradient], i) => {
        const value = tf.engine().registeredVariables[name];
        const moment = (slot: string) => ({ originalName: `${name}/${slot}`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) });
        self.accumulatedFirstMoment[i] ??= moment('m');
        self.accumulatedSecondMoment[i] ??= moment('v');
        if (gradient == null) return;
        const m = (self.accumulatedFirstMoment[i] as { variable: tf.Variable }).variable;
        const v = (self.accumulatedSecondMoment[i] as { variable: tf.Variable }).variable;
        const next = fused.adamStep(value, gradient, m, v, settings);
        m.assign(next.m);
        v.assign(next.v);
        value.assign(next.weights);
      });
      self.accBeta1.assign(tf.mul(self.accBeta1, self.beta1));
      self.accBeta2.assign(tf.mul(self.accBeta2, self.beta2));
    });
    self.incrementIterations();
  }
}

export function createOptimizer(learningRate: number): tf.AdamOptimizer {
  // tf.train.adam's defaults: beta1 0.9, beta2 0.999, the backend's epsilon.
  return new FusedAdam(learningRate, 0.9, 0.999);
}

/**
 * How the fine-tuning learning rate moves over a run. 'cosine' decays it from the base rate to a
 * twentieth of it: the last steps then refine instead of jumping around, which on PFC raised test
 * Dice at one and two labels by 0.07 and 0.10 (docs/results/history-2026-12-03.md). 'constant' is how maskloop
 * trained before, kept so that earlier figures can be reproduced.
 */
export type LearningRateSchedule = 'cosine' | 'constant';
export const LEARNING_RATE_SCHEDULES: readonly LearningRateSchedule[] = ['cosine', 'constant'];
export const DEFAULT_SCHEDULE: LearningRateSchedule = 'cosine';

/** The learning rate at a step (0-based) of a run of totalSteps steps. */
export function learningRateAt(base: number, step: number, totalSteps: number, schedule: LearningRateSchedule): number {
  if (schedule === 'constant') return base;
  // A run of one step takes it at the base rate.
  const progress = totalSteps > 1 ? Math.min(step / (totalSteps - 1), 1) : 0;
  const floor = base / 20;
  return floor + (base - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** tfjs' Adam reads its rate on every update, so a schedule sets it before each step. */
export function setLearningRate(optimizer: tf.AdamOptimizer, rate: number): void {
  (optimizer as unknown as { learningRate: number }).learningRate = rate;
}

/**
 * tfjs keys Adam's slots by variable name but applies them by position; variable names carry a
 * per-process suffix, so state is stored by position ("0000", "0001", …) and restored in order.
 */
export async function optimizerState(optimizer: tf.Optimizer): Promise<Map<string, tf.Tensor>> {
  const weights = await optimizer.getWeights();
  return new Map(weights.map((w, i) => [String(i).padStart(4, '0'), w.tensor]));
}

export async function restoreOptimizer(optimizer: tf.Optimizer, state: Map<string, tf.Tensor>): Promise<void> {
  const ordered = [...state.entries()].sort(([a], [b]) => a.localeCompare(b));
  // getWeights() returns the iteration count first, then the slots; setWeights expects the same.
  await optimizer.setWeights(ordered.map(([, tensor], i) => ({ name: i === 0 ? 'iter' : `slot${i}`, tensor: tensor.clone() })));
}

/** Saves weights, Adam's state and meta atomically: everything a resumed run needs. */
/** `extra`: further tensor groups the run needs to continue (fine-tuning's best weights so far). */
export async function saveTrainingCheckpoint<M>(file: string, meta: M, weights: Map<string, tf.Tensor>, optimizer: tf.Optimizer, extra: Record<string, Map<string, tf.Tensor>> = {}): Promise<void> {
  const state = await optimizerState(optimizer);
  try {
    await saveCheckpoint(file, { meta, groups: { ...extra, weights, optimizer: state } });
  } finally {
    state.get('0000')?.dispose(); // the iteration count is a fresh tensor; the slots belong to the optimizer
  }
}

/** The checkpoint a run continues from: with `resume`, its checkpoint file if one was saved. */
function checkpointToResume(run: TrainingRunOptions): string | null {
  return run.resume && run.checkpointFile && fs.existsSync(run.checkpointFile) ? run.checkpointFile : null;
}

/**
 * The network a run builds: `arch`, or for a resumed run the network its checkpoint was saved
 * from. The caller's choice may have changed since (the default network gained normalisation), and
 * the saved weights and Adam's moments only fit the network they were trained in.
 */
export function networkToTrain(run: TrainingRunOptions, arch: Architecture): Architecture {
  const file = checkpointToResume(run);
  const saved = file ? readCheckpointMeta<{ config?: UNetConfig }>(file).config : undefined;
  return saved ? architectureOf(saved) : arch;
}

/**
 * Where a run starts: step 0, or — with `resume` and an existing checkpoint — the checkpoint's
 * step, with its weights applied by `restore` (which may refuse a foreign checkpoint by throwing)
 * and Adam's state restored.
 */
export async function resumePoint<M extends { step: number; losses?: number[] }>(
  run: TrainingRunOptions,
  optimizer: tf.Optimizer,
  restore: (checkpoint: Checkpoint<M>) => void,
): Promise<{ startStep: number; history: number[] }> {
  const file = checkpointToResume(run);
  if (!file) return { startStep: 0, history: [] };
  const checkpoint = loadCheckpoint<M>(file);
  try {
    restore(checkpoint);
    if (checkpoint.groups.optimizer) await restoreOptimizer(optimizer, checkpoint.groups.optimizer);
    return { startStep: checkpoint.meta.step, history: checkpoint.meta.losses ?? [] };
  } finally {
    disposeCheckpoint(checkpoint);
  }
}
