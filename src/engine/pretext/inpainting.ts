/**
 * Inpainting / masked-image modelling (Pathak et al. 2016; MAE-style random block masking): random
 * square blocks are hidden and the whole U-Net reconstructs them. The loss counts only hidden
 * pixels, so copying the input earns nothing.
 */
import * as tf from '@tensorflow/tfjs';
import { pixelHead, type PretextTask } from './task';

/** Block edge in pixels and the fraction of blocks hidden. */
export const INPAINT_BLOCK = 8;
export const INPAINT_RATIO = 0.4;

export const inpainting: PretextTask = {
  name: 'inpainting',
  summary: 'reconstruct randomly hidden 8x8 blocks (masked-image modelling)',
  trains: 'unet',
  appliesTo: () => true,
  headShapes: (config) => [
    ['pretext.inpainting.head.w', [config.baseFilters, config.inChannels]],
    ['pretext.inpainting.head.b', [config.inChannels]],
  ],
  makeBatch(patches, size, channels, rng) {
    const n = patches.length;
    const inputs = new Float32Array(n * size * size * channels);
    const targets = new Float32Array(n * size * size * channels);
    const hidden = new Float32Array(n * size * size);
    const blocks = Math.ceil(size / INPAINT_BLOCK);
    patches.forEach((p, i) => {
      targets.set(p, i * p.length);
      inputs.set(p, i * p.length);
      for (let by = 0; by < blocks; by++) {
        for (let bx = 0; bx < blocks; bx++) {
          if (rng.next() >= INPAINT_RATIO) continue;
          for (let y = by * INPAINT_BLOCK; y < Math.min(size, (by + 1) * INPAINT_BLOCK); y++) {
            for (let x = bx * INPAINT_BLOCK; x < Math.min(size, (bx + 1) * INPAINT_BLOCK); x++) {
              const px = i * size * size + y * size + x;
              hidden[px] = 1;
              // Hidden pixels read as 0 (the normalised background level), not as noise, so
              // the network cannot recover them from per-pixel statistics.
              for (let c = 0; c < channels; c++) inputs[px * channels + c] = 0;
            }
          }
        }
      }
    });
    return {
      inputs: tf.tensor4d(inputs, [n, size, size, channels]),
      targets: tf.tensor4d(targets, [n, size, size, channels]),
      weights: tf.tensor4d(hidden, [n, size, size, 1]),
    };
  },
  loss(model, head, batch) {
    return tf.tidy(() => {
      const recon = pixelHead(model, head, 'pretext.inpainting.head', batch.inputs);
      const w = batch.weights as tf.Tensor4D;
      const err = tf.squaredDifference(recon, batch.targets).mul(w);
      return err.sum().div(tf.maximum(w.sum().mul(recon.shape[3]), 1)) as tf.Scalar;
    });
  },
};
