/**
 * Cross-channel prediction (split-brain / colorization for fluorescence): one channel of a
 * multi-channel patch is hidden and the U-Net predicts it from the others. Meaningless on
 * single-channel images, where the task declares itself inapplicable.
 */
import * as tf from '@tensorflow/tfjs';
import { pixelHead, type PretextTask } from './task';

export const crossChannel: PretextTask = {
  name: 'cross-channel',
  summary: 'predict a hidden channel of a multi-channel image from the others',
  trains: 'unet',
  appliesTo: (channels) => channels >= 2,
  headShapes: (config) => [
    ['pretext.cross-channel.head.w', [config.baseFilters, config.inChannels]],
    ['pretext.cross-channel.head.b', [config.inChannels]],
  ],
  makeBatch(patches, size, channels, rng) {
    if (channels < 2) throw new Error('cross-channel prediction needs at least 2 channels');
    const n = patches.length;
    const inputs = new Float32Array(n * size * size * channels);
    const targets = new Float32Array(n * size * size * channels);
    const weights = new Float32Array(n * channels);
    patches.forEach((p, i) => {
      const hidden = rng.int(channels);
      inputs.set(p, i * p.length);
      targets.set(p, i * p.length);
      for (let px = 0; px < size * size; px++) inputs[i * p.length + px * channels + hidden] = 0;
      weights[i * channels + hidden] = 1;
    });
    return {
      inputs: tf.tensor4d(inputs, [n, size, size, channels]),
      targets: tf.tensor4d(targets, [n, size, size, channels]),
      weights: tf.tensor4d(weights, [n, 1, 1, channels]),
    };
  },
  loss(model, head, batch) {
    return tf.tidy(() => {
      const pred = pixelHead(model, head, 'pretext.cross-channel.head', batch.inputs);
      const w = batch.weights as tf.Tensor4D;
      const err = tf.squaredDifference(pred, batch.targets).mul(w);
      return err.sum().div(w.sum().mul(pred.shape[1] * pred.shape[2])) as tf.Scalar;
    });
  },
};
