/**
 * Saving and restoring Adam's moments, so that a resumed run continues the same optimisation
 * rather than restarting it with cold moments (which shows as a loss spike after resume).
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import { disposeCheckpoint, loadCheckpoint, readCheckpointMeta, saveCheckpoint, type Checkpoint } from '../checkpoint';
import { architectureOf, type Architecture, type UNetConfig } from '../model/unet';
import type { TrainingRunOptions } from './loop';

export function createOptimizer(learningRate: number): tf.AdamOptimizer {
  return tf.train.adam(learningRate) as tf.AdamOptimizer;
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
