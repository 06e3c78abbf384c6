/**
 * Contrastive learning (SimCLR, Chen et al. 2020): two independently augmented views of each
 * patch must map close together and away from the other patches of the batch (NT-Xent loss).
 */
import * as tf from '@tensorflow/tfjs';
import { augmentPatch, cropAt } from '../data';
import type { Rng } from '../../shared/rng';
import { bottleneckFilters, dense, denseShapes, pooledBottleneck, type PretextTask } from './task';

export const CONTRASTIVE_TEMPERATURE = 0.2;
const PROJECTION = 64;

/** A view: a random sub-crop (≥ 60% of the side) rescaled back to full size, then flips/rotations and intensity jitter. */
function view(p: Float32Array, size: number, channels: number, rng: Rng): Float32Array {
  const side = Math.max(8, Math.round(size * rng.uniform(0.6, 1)));
  const x0 = rng.int(size - side + 1);
  const y0 = rng.int(size - side + 1);
  const crop = cropAt({ pixels: p, width: size, height: size, channels }, x0, y0, side).pixels;
  const scaled = new Float32Array(size * size * channels);
  const s = side / size;
  for (let y = 0; y < size; y++) {
    const sy = Math.min(side - 1, Math.floor(y * s));
    for (let x = 0; x < size; x++) {
      const sx = Math.min(side - 1, Math.floor(x * s));
      for (let c = 0; c < channels; c++) scaled[(y * size + x) * channels + c] = crop[(sy * side + sx) * channels + c];
    }
  }
  return augmentPatch({ pixels: scaled }, size, channels, rng, { flips: true, rotations: true, intensity: 1.5, noise: 0.05 }).pixels;
}

/** NT-Xent over 2N embeddings where rows i and i+N are the positive pair. */
export function ntXent(z: tf.Tensor2D, temperature = CONTRASTIVE_TEMPERATURE): tf.Scalar {
  return tf.tidy(() => {
    const n2 = z.shape[0];
    const n = n2 / 2;
    const unit = z.div(tf.norm(z, 'euclidean', 1, true).add(1e-8)) as tf.Tensor2D;
    const sim = tf.matMul(unit, unit, false, true).div(temperature);
    // A row must not count itself as a candidate.
    const masked = sim.sub(tf.eye(n2).mul(1e9));
    const positives = Array.from({ length: n2 }, (_, i) => (i + n) % n2);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(positives, 'int32'), n2), masked) as tf.Scalar;
  });
}

export const contrastive: PretextTask = {
  name: 'contrastive',
  summary: 'match two augmented views of each patch against the rest of the batch (SimCLR)',
  trains: 'encoder',
  appliesTo: () => true,
  headShapes: (config) => [
    ...denseShapes('pretext.contrastive.hidden', bottleneckFilters(config), 128),
    ...denseShapes('pretext.contrastive.out', 128, PROJECTION),
  ],
  makeBatch(patches, size, channels, rng) {
    const n = patches.length;
    const data = new Float32Array(2 * n * size * size * channels);
    patches.forEach((p, i) => {
      data.set(view(p, size, channels, rng), i * p.length);
      data.set(view(p, size, channels, rng), (i + n) * p.length);
    });
    // Targets are implicit (pairing by position); keep a tensor so every batch has the same form.
    return { inputs: tf.tensor4d(data, [2 * n, size, size, channels]), targets: tf.scalar(n, 'int32') };
  },
  loss(model, head, batch) {
    return tf.tidy(() => {
      const h = dense(pooledBottleneck(model, batch.inputs), head, 'pretext.contrastive.hidden', 'relu');
      return ntXent(dense(h, head, 'pretext.contrastive.out'));
    });
  },
};
