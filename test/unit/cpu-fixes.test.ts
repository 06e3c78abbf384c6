import * as tf from '@tensorflow/tfjs';
import { expect, test } from 'vitest';
import { fixCpuKernels } from '../../src/engine/cpuFixes';

test('cpu nearest-upsampling gradient is right for batch > 1 (tfjs 4.22 is not)', async () => {
  await tf.setBackend('cpu');
  fixCpuKernels();
  // 2x nearest upsampling: each input pixel's gradient is the sum of its 2x2 block of dy.
  const x = tf.zeros([2, 2, 3, 1]);
  const dy = tf.tensor4d(Float32Array.from({ length: 2 * 4 * 6 }, (_, i) => i), [2, 4, 6, 1]);
  const dx = tf.grad((t: tf.Tensor) => tf.image.resizeNearestNeighbor(t as tf.Tensor4D, [4, 6]).mul(dy).sum())(x);
  const d = dy.arraySync() as number[][][][];
  const expected = [0, 1].map((n) => [0, 1].map((r) => [0, 1, 2].map((c) => [
    d[n][2 * r][2 * c][0] + d[n][2 * r][2 * c + 1][0] + d[n][2 * r + 1][2 * c][0] + d[n][2 * r + 1][2 * c + 1][0],
  ])));
  expect(dx.arraySync()).toEqual(expected);
});
