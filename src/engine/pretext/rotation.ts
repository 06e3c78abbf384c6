/**
 * Rotation prediction (Gidaris et al. 2018): each patch is rotated by 0/90/180/270° and the
 * encoder must tell which. Microscopy has no canonical "up", so this task is often weak here;
 * maskloop keeps it because it is measured, not assumed (eval curve).
 */
import * as tf from '@tensorflow/tfjs';
import { dihedral } from '../data';
import { bottleneckFilters, dense, denseShapes, pooledBottleneck, type PretextTask } from './task';

export const rotation: PretextTask = {
  name: 'rotation',
  summary: 'predict which of 4 rotations was applied to a patch',
  trains: 'encoder',
  appliesTo: () => true,
  headShapes: (config) => [...denseShapes('pretext.rotation.hidden', bottleneckFilters(config), 64), ...denseShapes('pretext.rotation.out', 64, 4)],
  makeBatch(patches, size, channels, rng) {
    const rotated: Float32Array[] = [];
    const classes: number[] = [];
    for (const p of patches) {
      const r = rng.int(4);
      rotated.push(dihedral(p, size, channels, r));
      classes.push(r);
    }
    const data = new Float32Array(patches.length * size * size * channels);
    rotated.forEach((p, i) => data.set(p, i * p.length));
    return { inputs: tf.tensor4d(data, [patches.length, size, size, channels]), targets: tf.tensor1d(classes, 'int32') };
  },
  loss(model, head, batch) {
    return tf.tidy(() => {
      const h = dense(pooledBottleneck(model, batch.inputs), head, 'pretext.rotation.hidden', 'relu');
      const logits = dense(h, head, 'pretext.rotation.out');
      return tf.losses.softmaxCrossEntropy(tf.oneHot(batch.targets as tf.Tensor1D, 4), logits) as tf.Scalar;
    });
  },
};
