/**
 * Saving and restoring Adam's moments, so that a resumed run continues the same optimisation
 * rather than restarting it with cold moments (which shows as a loss spike after resume).
 */
import * as tf from '@tensorflow/tfjs';
import { saveCheckpoint } from '../checkpoint';

export function createOptimizer(learningRate: number): tf.AdamOptimizer {
  return tf.train.adam(learningRate) as tf.AdamOptimizer;
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
export async function saveTrainingCheckpoint<M>(file: string, meta: M, weights: Map<string, tf.Tensor>, optimizer: tf.Optimizer): Promise<void> {
  const state = await optimizerState(optimizer);
  try {
    await saveCheckpoint(file, { meta, groups: { weights, optimizer: state } });
  } finally {
    state.get('0000')?.dispose(); // the iteration count is a fresh tensor; the slots belong to the optimizer
  }
}
