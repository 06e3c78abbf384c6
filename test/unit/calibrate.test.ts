import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { UNKNOWN, type LabeledImage } from '../../src/engine/data';
import { classMap, foregroundProbability, predictImage } from '../../src/engine/infer/predict';
import { instanceLabels, labeled, prepareImage } from '../../src/engine/input';
import { UNet } from '../../src/engine/model/unet';
import { DEFAULT_SEED_THRESHOLD } from '../../src/engine/infer/propose';
import { calibrateForeground, calibrateSeeds, chooseThreshold, foldThreshold, heldOutDice, SEED_THRESHOLDS } from '../../src/engine/train/calibrate';
import { finetune } from '../../src/engine/train/finetune';
import { evaluateOnVal } from '../../src/engine/train/select';
import { engine, labeledNuclei, nuclei } from '../helpers/engine';

beforeAll(async () => {
  await engine();
});

const arch = { depth: 3, baseFilters: 8 };
const binary = { kind: 'semantic', classes: 1 } as const;

/** Foreground probability per pixel: the sigmoid, or 1 − background for softmax heads. */
async function foregroundMap(model: UNet, image: LabeledImage): Promise<Float32Array> {
  const p = await predictImage(model, image);
  return Float32Array.from({ length: image.width * image.height }, (_, i) => foregroundProbability(p.probabilities, i * p.channels, p.channels));
}

/** Pooled foreground Dice of "probability ≥ threshold" on the labeled pixels, computed directly. */
async function pooledDice(model: UNet, images: LabeledImage[], threshold = 0.5): Promise<number> {
  let [tp, fp, fn] = [0, 0, 0];
  for (const im of images) {
    const p = await foregroundMap(model, im);
    for (let i = 0; i < p.length; i++) {
      if (im.labels[i] === UNKNOWN) continue;
      const marked = p[i] >= threshold;
      const truth = im.labels[i] > 0;
      if (marked && truth) tp++;
      else if (marked) fp++;
      else if (truth) fn++;
    }
  }
  return (2 * tp) / (2 * tp + fp + fn);
}

function histogram(values: number[]): Float64Array {
  const h = new Float64Array(200);
  for (const v of values) h[Math.min(199, Math.floor(v * 200))]++;
  return h;
}

describe('foreground calibration', () => {
  test('chooses the threshold that separates a biased model\'s classes, and keeps 0.5 when nothing is gained', () => {
    // Foreground pixels at 0.75–0.95, background spread over 0.05–0.72: a model biased upwards.
    const fg = Array.from({ length: 1000 }, (_, i) => 0.75 + (0.2 * i) / 1000);
    const bg = Array.from({ length: 3000 }, (_, i) => 0.05 + (0.67 * i) / 3000);
    const biased = chooseThreshold(histogram(fg), histogram(bg));
    expect(biased.threshold).toBe(0.75);
    expect(biased.diceAfter).toBe(1);
    expect(biased.diceBefore).toBeCloseTo((2 * 1000) / (2 * 1000 + 3000 * (0.22 / 0.67)), 2);
    // Perfectly separated at 0.5 already: every threshold in 0.3–0.7 scores the same.
    const clean = chooseThreshold(histogram(fg.map((v) => v - 0.0)), histogram(bg.map((v) => v * 0.4)));
    expect(clean.threshold).toBe(0.5);
    expect(clean.diceAfter).toBe(clean.diceBefore);
  });

  test('folding a threshold into the head makes the 0.5 decision equal the threshold decision, for sigmoid and softmax heads', async () => {
    const image = labeledNuclei(nuclei(1, 64, 5))[0];
    for (const outChannels of [1, 3]) {
      const model = UNet.create({ inChannels: 1, outChannels, ...arch, norm: 'batch' }, 7);
      const before = await foregroundMap(model, image);
      const sorted = Float32Array.from(before).sort();
      // A threshold inside the model's range, so that the decision actually moves.
      const t = sorted[Math.floor(sorted.length * 0.3)];
      foldThreshold(model, t);
      const after = await foregroundMap(model, image);
      let moved = 0;
      let disagree = 0;
      for (let i = 0; i < before.length; i++) {
        if (Math.abs(before[i] - t) < 1e-5) continue; // on the boundary, float rounding decides
        if ((after[i] >= 0.5) !== (before[i] >= t)) disagree++;
        if ((before[i] >= 0.5) !== (before[i] >= t)) moved++;
      }
      expect(disagree).toBe(0);
      expect(moved).toBeGreaterThan(0);
      model.dispose();
    }
  });

  test('a fine-tuned model pushed to over-segment is calibrated back: the folded model scores what the histograms said', async () => {
    const images = labeledNuclei(nuclei(2, 96, 31));
    const { model } = await finetune({ images, target: binary, config: arch, steps: 30, batchSize: 4, patchSize: 64, learningRate: 3e-3 });
    // Bias the foreground logit up by 3: most background pixels near objects become foreground.
    const bias = model.params.get('head.b') as tf.Variable;
    bias.assign(bias.add(3));
    const skewed = await pooledDice(model, images);
    const calibration = await calibrateForeground(model, binary, images);
    expect(calibration.threshold).toBeGreaterThan(0.5);
    expect(calibration.diceBefore).toBeCloseTo(skewed, 3);
    expect(calibration.diceAfter).toBeGreaterThan(skewed + 0.01);
    // The folded model's own 0.5 decision, measured directly, is what the calibration promised.
    expect(await pooledDice(model, images)).toBeCloseTo(calibration.diceAfter, 3);
    model.dispose();
  });

  test('fine-tuning calibrates on the held-out images it is given and records the threshold; instance models too; multi-class models are left alone', async () => {
    const samples = nuclei(4, 96, 41);
    const images = labeledNuclei(samples);
    const [train, heldOut] = [images.slice(0, 2), images.slice(2)];
    const semantic = await finetune({ images: train, target: binary, config: arch, steps: 4, batchSize: 2, patchSize: 64, valImages: heldOut });
    expect(semantic.meta.foregroundThreshold).toBeGreaterThanOrEqual(0.1);
    expect(semantic.meta.foregroundThreshold).toBeLessThanOrEqual(0.9);
    // Without held-out images the model keeps its own 0.5 decision: its training images would mislead.
    const uncalibrated = await finetune({ images: train, target: binary, config: arch, steps: 4, batchSize: 2, patchSize: 64 });
    expect(uncalibrated.meta.foregroundThreshold).toBeUndefined();

    const instanceImages = samples.map((s) => labeled(prepareImage(s.image), instanceLabels(s.instances, s.image.width, s.image.height)));
    const instance = await finetune({ images: instanceImages.slice(0, 2), target: { kind: 'instance' }, config: arch, steps: 4, batchSize: 2, patchSize: 64, valImages: instanceImages.slice(2) });
    expect(instance.meta.foregroundThreshold).toBeDefined();

    // Two classes take the most probable one; a threshold on "not background" would change that rule.
    const twoClass = images.map((im) => ({ ...im, labels: im.labels.map((v, i) => (v === 1 && i % 2 ? 2 : v)) }));
    const multi = await finetune({ images: twoClass.slice(0, 2), target: { kind: 'semantic', classes: 2 }, config: arch, steps: 2, batchSize: 2, patchSize: 64, learningRate: 0, valImages: twoClass.slice(2) });
    const head = multi.model.params.get('head.b') as tf.Variable;
    const fresh = UNet.create(multi.meta.config, 1).params.get('head.b') as tf.Variable;
    expect(Array.from(head.dataSync())).toEqual(Array.from(fresh.dataSync()));
    expect(multi.meta.foregroundThreshold).toBe(0.5);
    // Its val score (what keeping the best weights compares) is the Dice of its most probable class.
    let [tp, fp, fn] = [0, 0, 0];
    for (const im of twoClass.slice(2)) {
      const classes = classMap(await predictImage(multi.model, im));
      for (let i = 0; i < classes.length; i++) {
        const marked = classes[i] > 0;
        const truth = im.labels[i] > 0;
        tp += Number(marked && truth);
        fp += Number(marked && !truth);
        fn += Number(!marked && truth);
      }
    }
    expect(await heldOutDice(multi.model, { kind: 'semantic', classes: 2 }, twoClass.slice(2), true)).toBeCloseTo((2 * tp) / (2 * tp + fp + fn), 10);
    for (const m of [semantic.model, uncalibrated.model, instance.model, multi.model]) m.dispose();
  });

  test('instance models: the seed threshold chosen on val is the best there, its proposals score what the calibration measured, and the model records it', async () => {
    const samples = nuclei(5, 96, 71);
    const images = samples.map((s) => labeled(prepareImage(s.image), instanceLabels(s.instances, s.image.width, s.image.height)));
    const [train, val] = [images.slice(0, 3), images.slice(3)];
    const target = { kind: 'instance' } as const;
    const { model, meta } = await finetune({ images: train, target, config: arch, steps: 40, batchSize: 4, patchSize: 64, learningRate: 3e-3, valImages: val });
    const calibration = await calibrateSeeds(model, target, val);
    expect(meta.seedThreshold).toBe(calibration.threshold);
    expect(SEED_THRESHOLDS).toContain(calibration.threshold);
    const f1At = async (seedThreshold: number) => (await evaluateOnVal(model, target, val, { seedThreshold })).f1 as number;
    expect(await f1At(calibration.threshold)).toBeCloseTo(calibration.f1After, 10);
    expect(await f1At(DEFAULT_SEED_THRESHOLD)).toBeCloseTo(calibration.f1Before, 10);
    for (const t of SEED_THRESHOLDS) expect(await f1At(t)).toBeLessThanOrEqual(calibration.f1After + 1e-12);
    // Semantic models have no seeds.
    expect((await calibrateSeeds(model, binary, val)).threshold).toBe(DEFAULT_SEED_THRESHOLD);
    model.dispose();
  });

  test('val Dice of an instance model is scored with the decision its proposals use, not the most probable class', async () => {
    const samples = nuclei(2, 96, 61);
    const images = samples.map((s) => labeled(prepareImage(s.image), instanceLabels(s.instances, s.image.width, s.image.height)));
    const { model } = await finetune({ images, target: { kind: 'instance' }, config: arch, steps: 6, batchSize: 2, patchSize: 64 });
    let expected = 0;
    for (const im of images) expected += (await pooledDice(model, [im])) / images.length;
    expect((await evaluateOnVal(model, { kind: 'instance' }, images)).dice).toBeCloseTo(expected, 4);
    model.dispose();
  });

  test('a warm start from a segmentation model continues its head; a pretext start gets a fresh one', async () => {
    const images = labeledNuclei(nuclei(2, 96, 51));
    const first = await finetune({ images, target: binary, config: arch, steps: 10, batchSize: 2, patchSize: 64, learningRate: 3e-3 });
    const headOf = (m: UNet) => Array.from((m.params.get('head.w') as tf.Variable).dataSync());
    // A zero learning rate leaves every trained weight where the initialisation put it.
    const options = { images, target: binary, config: arch, steps: 1, batchSize: 2, patchSize: 64, learningRate: 0 };
    const warm = await finetune({ ...options, init: { name: 'previous', weights: first.model.weights(), trained: 'segmentation' } });
    const pretext = await finetune({ ...options, init: { name: 'pretext', weights: first.model.weights(), trained: 'unet' } });
    expect(headOf(warm.model)).toEqual(headOf(first.model));
    expect(headOf(pretext.model)).not.toEqual(headOf(first.model));
    for (const m of [first.model, warm.model, pretext.model]) m.dispose();
  });
});
