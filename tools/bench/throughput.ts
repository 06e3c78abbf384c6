/**
 * DESIGN.md's speed measure for the reference U-Net, shared by `bench` and `gpu-check`: training
 * (Adam, binary cross-entropy alone) and inference on batches of 8 random 128x128 inputs, in
 * images per second after warm-up.
 */
import * as tf from '@tensorflow/tfjs';
import type { UNet } from '../../src/engine/model/unet';
import { segmentationLoss } from '../../src/engine/train/losses';
import { createOptimizer } from '../../src/engine/train/optimizerState';

export const REFERENCE_BATCH = 8;
export const REFERENCE_INPUT = 128;

export interface Throughput {
  trainImagesPerSecond: number;
  predictImagesPerSecond: number;
}

/** Times `model` (one input and one output channel); it is trained by the measurement. */
export async function referenceThroughput(model: UNet, options: { steps: number; warmup: number }): Promise<Throughput> {
  const x = tf.randomUniform([REFERENCE_BATCH, REFERENCE_INPUT, REFERENCE_INPUT, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
  const y = tf.randomUniform([REFERENCE_BATCH, REFERENCE_INPUT, REFERENCE_INPUT], 0, 2, 'int32', 2) as tf.Tensor3D;
  const optimizer = createOptimizer(1e-3);
  // Each step reads its result back asynchronously: a GPU backend has no synchronous read-back in Node.
  const imagesPerSecond = async (step: () => tf.Tensor | null) => {
    const run = async () => {
      const t = step();
      await t?.data();
      t?.dispose();
    };
    for (let i = 0; i < options.warmup; i++) await run();
    const t0 = performance.now();
    for (let i = 0; i < options.steps; i++) await run();
    return (options.steps * REFERENCE_BATCH) / ((performance.now() - t0) / 1000);
  };
  try {
    return {
      trainImagesPerSecond: await imagesPerSecond(() => optimizer.minimize(() => segmentationLoss(model.forward(x, true), y, { crossEntropy: 1, dice: 0 }), true)),
      predictImagesPerSecond: await imagesPerSecond(() => model.predict(x)),
    };
  } finally {
    tf.dispose([x, y]);
    optimizer.dispose();
  }
}
