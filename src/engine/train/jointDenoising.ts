/**
 * Denoising while fine-tuning, after DenoiSeg (Buchholz et al. 2020): the U-Net that learns to
 * segment also learns blind-spot denoising (the `denoising` pretext task, Noise2Void) in the same
 * forward pass, on its labeled patches and on patches of images without labels. Where labels are
 * few, the denoising loss keeps the whole network, encoder and decoder, learning the structure of
 * every image of the project, not only of the labeled ones.
 *
 * It costs almost nothing per step: the blind spots replace 2% of the input pixels, the
 * reconstruction is a 1x1 convolution on the decoder's features, and the unlabeled patches take
 * some of the batch's places rather than adding to it. So within a wall-clock budget it gets the
 * same steps as plain fine-tuning (unlike consistency training, whose teacher pass costs a second
 * forward pass). Measured within the first model's budget it does not beat plain fine-tuning
 * (docs/RESULTS.md), so only the evaluations use it (`eval curve --inits scratch+denoise`).
 */
import * as tf from '@tensorflow/tfjs';
import { augmentPatch, randomCrop, UNKNOWN, type AugmentOptions, type Patch } from '../data';
import type { Params, UNet } from '../model/unet';
import { denoising } from '../pretext/denoising';
import { createHead, headOnFeatures, type PretextBatch } from '../pretext/task';
import type { Rng } from '../../shared/rng';
import type { UnlabeledPool } from './semi';

export interface JointDenoisingOptions {
  /**
   * Weight of the denoising loss against the segmentation loss. The denoising loss is in units of
   * the batch's pixel variance (segmentAndDenoise), whatever the images' intensity scale; 1 weighs
   * the two as DenoiSeg's α = 0.5 does.
   */
  weight: number;
  /** Share of the batch's places given to patches from the unlabeled pool (at least one where the pool has images). */
  unlabeledShare: number;
}

/** DenoiSeg's equal weighting; a quarter of each batch from images without labels. */
export const DEFAULT_JOINT_DENOISING: JointDenoisingOptions = { weight: 1, unlabeledShare: 0.25 };

/** The name of the reconstruction head's weights: the denoising pretext task's, so a pretrained one carries over. */
const HEAD = `pretext.${denoising.name}.head`;

/** Places of a batch of `batchSize` that go to unlabeled patches: none without a pool, and never all of them. */
export function unlabeledPlaces(batchSize: number, options: JointDenoisingOptions, poolSize: number): number {
  if (poolSize === 0 || batchSize < 2) return 0;
  return Math.min(batchSize - 1, Math.max(1, Math.round(batchSize * options.unlabeledShare)));
}

/** An augmented patch of an image from the pool, labeled UNKNOWN except where a sparse label decided. */
export function unlabeledPatch(pool: UnlabeledPool, size: number, channels: number, rng: Rng, augment: AugmentOptions): Patch & { labels: Uint8Array } {
  const image = pool[rng.int(pool.length)];
  const crop = randomCrop(image, size, rng, image.labels);
  const aug = augmentPatch({ pixels: crop.pixels, labels: crop.labels ?? new Uint8Array(size * size).fill(UNKNOWN) }, size, channels, rng, augment);
  return { pixels: aug.pixels, labels: aug.labels as Uint8Array };
}

/** The reconstruction head: the pretrained one where the initialisation has it (a `denoising` pretext checkpoint), a fresh one otherwise. */
export function denoisingHead(model: UNet, seed: number, weights?: Map<string, tf.Tensor>): Params {
  const head = createHead(denoising, model.config, seed);
  for (const [name, v] of head) {
    const w = weights?.get(name);
    if (w && tf.util.arraysEqual(w.shape, v.shape)) v.assign(w);
  }
  return head;
}

/** Blind-spot inputs for a step: the batch's patches with scattered pixels replaced, the originals as targets. */
export function blindSpotBatch(pixels: Float32Array[], size: number, channels: number, rng: Rng): PretextBatch {
  return denoising.makeBatch(pixels, size, channels, rng);
}

/**
 * The segmentation logits of the blind-spot inputs and the denoising loss from the same forward
 * pass: the squared error at the blind spots against the batch's pixels standardised to zero mean
 * and unit variance, as DenoiSeg standardises its images. Against raw intensities a fresh head,
 * which predicts about 0, would start many times the variance away (the mean's square), and that
 * error would dominate the first hundreds of steps.
 */
export function segmentAndDenoise(model: UNet, head: Params, batch: PretextBatch): { logits: tf.Tensor4D; denoisingLoss: tf.Scalar } {
  const features = model.decode(model.encode(batch.inputs, true), true);
  const logits = model.head(features, true);
  const denoisingLoss = tf.tidy(() => {
    const reconstruction = headOnFeatures(features, head, HEAD);
    const scored = batch.weights as tf.Tensor4D;
    const channels = reconstruction.shape[3];
    const { mean, variance } = tf.moments(batch.targets);
    // Floored so that an almost blank batch does not blow the error up.
    const standardised = batch.targets.sub(mean).div(tf.sqrt(tf.maximum(variance, 1e-4)));
    return tf.squaredDifference(reconstruction, standardised).mul(scored).sum().div(tf.maximum(scored.sum().mul(channels), 1)) as tf.Scalar;
  });
  return { logits, denoisingLoss };
}
