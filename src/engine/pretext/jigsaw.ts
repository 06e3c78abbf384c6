/**
 * Jigsaw puzzle (Noroozi & Favaro 2016), 2x2 version: the patch is cut into four tiles which are
 * shuffled by one of the 24 permutations; the encoder must name the permutation. A small gap of
 * reflected pixels is not needed at 2x2: tiles are whole quadrants and the network sees the
 * reassembled image, so low-level edge continuity is one cue among texture and layout.
 */
import * as tf from '@tensorflow/tfjs';
import { bottleneckFilters, dense, denseShapes, type PretextTask } from './task';

function permutations(items: number[]): number[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((x, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest]));
}

export const JIGSAW_PERMUTATIONS = permutations([0, 1, 2, 3]);

/** Moves quadrant perm[q] of the source to quadrant q of the result. */
export function shuffleQuadrants(src: Float32Array, size: number, channels: number, perm: number[]): Float32Array {
  const half = size / 2;
  const dst = new Float32Array(src.length);
  for (let q = 0; q < 4; q++) {
    const from = perm[q];
    const fx = (from % 2) * half;
    const fy = Math.floor(from / 2) * half;
    const tx = (q % 2) * half;
    const ty = Math.floor(q / 2) * half;
    for (let y = 0; y < half; y++) {
      const s = ((fy + y) * size + fx) * channels;
      const d = ((ty + y) * size + tx) * channels;
      dst.set(src.subarray(s, s + half * channels), d);
    }
  }
  return dst;
}

export const jigsaw: PretextTask = {
  name: 'jigsaw',
  summary: 'name the permutation of a patch cut into 2x2 shuffled tiles',
  trains: 'encoder',
  appliesTo: () => true,
  headShapes: (config) => [
    ...denseShapes('pretext.jigsaw.hidden', 4 * bottleneckFilters(config), 128),
    ...denseShapes('pretext.jigsaw.out', 128, JIGSAW_PERMUTATIONS.length),
  ],
  makeBatch(patches, size, channels, rng) {
    const data = new Float32Array(patches.length * size * size * channels);
    const classes: number[] = [];
    patches.forEach((p, i) => {
      const k = rng.int(JIGSAW_PERMUTATIONS.length);
      data.set(shuffleQuadrants(p, size, channels, JIGSAW_PERMUTATIONS[k]), i * p.length);
      classes.push(k);
    });
    return { inputs: tf.tensor4d(data, [patches.length, size, size, channels]), targets: tf.tensor1d(classes, 'int32') };
  },
  loss(model, head, batch) {
    return tf.tidy(() => {
      const { bottom } = model.encode(batch.inputs, true);
      // One pooled descriptor per quadrant, in quadrant order, so the head sees the layout.
      const [n, h, w, f] = bottom.shape;
      const quadrants = tf.avgPool(bottom, [h / 2, w / 2], [h / 2, w / 2], 'valid').reshape([n, 4 * f]) as tf.Tensor2D;
      const logits = dense(dense(quadrants, head, 'pretext.jigsaw.hidden', 'relu'), head, 'pretext.jigsaw.out');
      return tf.losses.softmaxCrossEntropy(tf.oneHot(batch.targets as tf.Tensor1D, JIGSAW_PERMUTATIONS.length), logits) as tf.Scalar;
    });
  },
};
