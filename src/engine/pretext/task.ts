/**
 * The pretext-task interface. Each task is one file implementing it and registering itself by
 * name in ./registry. A task turns unlabeled patches into (input, target) pairs and a loss; the
 * pretraining loop (train/pretrain) is the same for all of them.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../shared/rng';
import type { Params, UNet, UNetConfig } from '../model/unet';
import { initTensor } from '../model/unet';

export interface PretextBatch {
  inputs: tf.Tensor4D;
  /** Task-specific targets (class ids, pixels, a second view …). */
  targets: tf.Tensor;
  /** Optional per-pixel weights, e.g. the masked region of inpainting. */
  weights?: tf.Tensor;
}

export interface PretextTask {
  readonly name: string;
  readonly summary: string;
  /**
   * What transfers to fine-tuning: 'encoder' for tasks with a global head (the decoder is never
   * trained by them), 'unet' for dense tasks that train the decoder too.
   */
  readonly trains: 'encoder' | 'unet';
  /** False where the task is meaningless, e.g. cross-channel prediction on one channel. */
  appliesTo(channels: number): boolean;
  /** Shapes of the task's own head parameters, named `pretext.<task>.*`. */
  headShapes(config: Required<UNetConfig>): Array<[string, number[]]>;
  /** Builds a batch from raw (unaugmented) square patches of the unlabeled images. */
  makeBatch(patches: Float32Array[], size: number, channels: number, rng: Rng): PretextBatch;
  loss(model: UNet, head: Params, batch: PretextBatch): tf.Scalar;
}

export function createHead(task: PretextTask, config: Required<UNetConfig>, seed: number): Params {
  const head: Params = new Map();
  task.headShapes(config).forEach(([name, shape], i) => {
    const init = initTensor(name, shape, seed * 7919 + i);
    head.set(name, tf.variable(init, true, `${name}#${seed}-${headCounter++}`));
    init.dispose();
  });
  return head;
}
let headCounter = 0;

export function disposeBatch(batch: PretextBatch): void {
  batch.inputs.dispose();
  batch.targets.dispose();
  batch.weights?.dispose();
}

export function param(head: Params, name: string): tf.Variable {
  const v = head.get(name);
  if (!v) throw new Error(`pretext head has no parameter '${name}'`);
  return v;
}

/** Global average pool of the encoder's bottleneck: [N, F]. */
export function pooledBottleneck(model: UNet, inputs: tf.Tensor4D): tf.Tensor2D {
  const { bottom } = model.encode(inputs, true);
  return bottom.mean([1, 2]) as tf.Tensor2D;
}

export function dense(x: tf.Tensor2D, head: Params, name: string, activation: 'relu' | 'linear' = 'linear'): tf.Tensor2D {
  const y = tf.matMul(x, param(head, `${name}.w`)).add(param(head, `${name}.b`)) as tf.Tensor2D;
  return activation === 'relu' ? tf.relu(y) : y;
}

export function denseShapes(name: string, inputs: number, outputs: number): Array<[string, number[]]> {
  return [
    [`${name}.w`, [inputs, outputs]],
    [`${name}.b`, [outputs]],
  ];
}

/** The 1x1 head of a task that reconstructs the input's channels (pixelHead). */
export function reconstructionHeadShapes(task: string, config: Required<UNetConfig>): Array<[string, number[]]> {
  return [
    [`pretext.${task}.head.w`, [config.baseFilters, config.inChannels]],
    [`pretext.${task}.head.b`, [config.inChannels]],
  ];
}

/**
 * A batch whose targets are the original patches and whose weights mark the pixels to score
 * (hidden or replaced in the inputs): interleaved HWC arrays of n square patches.
 */
export function reconstructionBatch(inputs: Float32Array, targets: Float32Array, scored: Float32Array, n: number, size: number, channels: number): PretextBatch {
  return {
    inputs: tf.tensor4d(inputs, [n, size, size, channels]),
    targets: tf.tensor4d(targets, [n, size, size, channels]),
    weights: tf.tensor4d(scored, [n, size, size, 1]),
  };
}

/** Mean squared error of the task's reconstruction over the scored pixels only, so copying the input earns nothing. */
export function scoredReconstructionLoss(task: string, model: UNet, head: Params, batch: PretextBatch): tf.Scalar {
  return tf.tidy(() => {
    const out = pixelHead(model, head, `pretext.${task}.head`, batch.inputs);
    const w = batch.weights as tf.Tensor4D;
    return tf.squaredDifference(out, batch.targets).mul(w).sum().div(tf.maximum(w.sum().mul(out.shape[3]), 1)) as tf.Scalar;
  });
}

/** 1x1 convolution head on the decoder's full-resolution features. */
export function pixelHead(model: UNet, head: Params, name: string, inputs: tf.Tensor4D): tf.Tensor4D {
  return headOnFeatures(model.decode(model.encode(inputs, true), true), head, name);
}

/** The 1x1 convolution head `name` on features already decoded. */
export function headOnFeatures(features: tf.Tensor4D, head: Params, name: string): tf.Tensor4D {
  const w = param(head, `${name}.w`);
  const b = param(head, `${name}.b`);
  const [cin, cout] = w.shape as number[];
  return tf.conv2d(features, w.reshape([1, 1, cin, cout]) as tf.Tensor4D, 1, 'same').add(b) as tf.Tensor4D;
}

export function bottleneckFilters(config: Required<UNetConfig>): number {
  return config.baseFilters * 2 ** (config.depth - 1);
}
