/**
 * Segmentation loss: cross-entropy + soft Dice, both restricted to labeled pixels so that sparse
 * labels (UNKNOWN) teach nothing either way.
 */
import * as tf from '@tensorflow/tfjs';
import { UNKNOWN } from '../data';

export interface LossWeights {
  crossEntropy: number;
  dice: number;
}

export const DEFAULT_LOSS_WEIGHTS: LossWeights = { crossEntropy: 1, dice: 1 };

const EPS = 1;

/**
 * @param logits [N,H,W,C]: C = 1 is binary (sigmoid), C > 1 is softmax over classes incl. background
 * @param labels int32 [N,H,W]: class index per pixel, UNKNOWN ignored
 */
export function segmentationLoss(logits: tf.Tensor4D, labels: tf.Tensor3D, weights: LossWeights = DEFAULT_LOSS_WEIGHTS): tf.Scalar {
  return tf.tidy(() => {
    const classes = logits.shape[3];
    const known = tf.notEqual(labels, UNKNOWN).toFloat().expandDims(3) as tf.Tensor4D; // [N,H,W,1]
    const knownCount = tf.maximum(known.sum(), 1);
    const safeLabels = tf.where(tf.equal(labels, UNKNOWN), tf.zerosLike(labels), labels);

    let ce: tf.Scalar;
    let probs: tf.Tensor4D;
    let target: tf.Tensor4D;
    if (classes === 1) {
      target = tf.equal(safeLabels, 1).toFloat().expandDims(3) as tf.Tensor4D;
      // Stable BCE with logits: max(x,0) - x*y + log(1 + exp(-|x|)).
      const bce = tf.relu(logits).sub(logits.mul(target)).add(tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
      ce = bce.mul(known).sum().div(knownCount) as tf.Scalar;
      probs = tf.sigmoid(logits);
    } else {
      target = tf.oneHot(safeLabels, classes).toFloat() as tf.Tensor4D;
      const logp = tf.logSoftmax(logits) as tf.Tensor4D;
      ce = tf.neg(logp.mul(target).mul(known).sum()).div(knownCount) as tf.Scalar;
      probs = tf.exp(logp);
    }

    // Soft Dice per foreground class over the whole batch (stable with few foreground pixels),
    // averaged over classes.
    // Every class is summed and the background dropped from the per-class result: slicing the
    // full-size tensors instead cost a full-size pad in the gradient (a quarter of the step's loss time).
    const p = probs.mul(known);
    const t = target.mul(known);
    const inter = p.mul(t).sum([0, 1, 2]);
    const denom = p.sum([0, 1, 2]).add(t.sum([0, 1, 2]));
    const perClass = inter.mul(2).add(EPS).div(denom.add(EPS));
    const dice = (classes === 1 ? perClass : perClass.slice([1], [classes - 1])).mean();
    const diceLoss = tf.sub(1, dice);

    return ce.mul(weights.crossEntropy).add(diceLoss.mul(weights.dice)) as tf.Scalar;
  });
}
