import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { cropRect, UNKNOWN } from '../../src/engine/data';
import { classMap, imageSource, predictImage, predictTiled, tileOrigins } from '../../src/engine/infer/predict';
import { foregroundOf, propose } from '../../src/engine/infer/propose';
import { instanceLabels, labeled, prepareImage } from '../../src/engine/input';
import { dice, matchInstances } from '../../src/engine/metrics';
import { isEncoderParam, isHeadParam, isStatistic, sizeMultiple, UNet } from '../../src/engine/model/unet';
import { encoderWarmupFor, finetune, FOREGROUND_PATCH_SHARE, sampleLabeledPatch, type Initialisation } from '../../src/engine/train/finetune';
import { Rng } from '../../src/shared/rng';
import { createOptimizer, learningRateAt, setLearningRate } from '../../src/engine/train/optimizerState';
import { evaluateOnVal, plannedSelectionSteps, raceLeader, raceStep, raceSteps, selectInitialisation } from '../../src/engine/train/select';
import { instancesFromInterior } from '../../src/imaging/instances';
import { engine, labeledNuclei, mean, nuclei } from '../helpers/engine';

beforeAll(async () => {
  await engine();
});

const arch = { depth: 3, baseFilters: 8 };

describe('fine-tuning', () => {
  test('Dice on held-out images rises well above the trivial all-foreground baseline', async () => {
    const train = labeledNuclei(nuclei(3, 96, 101));
    const test = nuclei(3, 96, 201);
    const { model, losses } = await finetune({ images: train, target: { kind: 'semantic', classes: 1 }, config: arch, steps: 60, batchSize: 8, patchSize: 64, learningRate: 3e-3 });
    expect(mean(losses.slice(-10))).toBeLessThan(mean(losses.slice(0, 10)));
    const scores = await Promise.all(test.map(async (s) => dice(classMap(await predictImage(model, prepareImage(s.image), { tile: 64, overlap: 16 })), s.foreground)));
    const trivial = test.map((s) => dice(new Uint8Array(s.foreground.length).fill(1), s.foreground));
    expect(mean(scores)).toBeGreaterThan(0.7);
    expect(mean(scores)).toBeGreaterThan(mean(trivial) + 0.3);
    model.dispose();
  });

  test('with batch normalisation the network learns as well, and a pretrained start keeps the normalisation it was trained with', async () => {
    const train = labeledNuclei(nuclei(3, 96, 101));
    const test = nuclei(3, 96, 201);
    const target = { kind: 'semantic', classes: 1 } as const;
    const normed = await finetune({ images: train, target, config: { ...arch, norm: 'batch' }, steps: 60, batchSize: 8, patchSize: 64, learningRate: 3e-3 });
    expect(normed.meta.config.norm).toBe('batch');
    const scores = await Promise.all(test.map(async (s) => dice(classMap(await predictImage(normed.model, prepareImage(s.image), { tile: 64, overlap: 16 })), s.foreground)));
    expect(mean(scores)).toBeGreaterThan(0.7);
    // Weights of a network without normalisation (a project's pretext checkpoint from before it existed).
    const plain = UNet.create({ inChannels: 1, outChannels: 1, ...arch }, 3);
    const fromPlain = await finetune({ images: train, target, config: { ...arch, norm: 'batch' }, init: { name: 'old', weights: plain.weights(), trained: 'encoder' }, steps: 2, batchSize: 2, patchSize: 64 });
    expect(fromPlain.meta.config.norm).toBe('none');
    const fromNormed = await finetune({ images: train, target, config: arch, init: { name: 'new', weights: normed.model.weights(), trained: 'unet' }, steps: 2, batchSize: 2, patchSize: 64 });
    expect(fromNormed.meta.config.norm).toBe('batch');
    for (const m of [normed.model, plain, fromPlain.model, fromNormed.model]) m.dispose();
  });

  test('sparse labels: training only on a scribble-like subset of pixels still segments', async () => {
    const samples = nuclei(3, 96, 301);
    const train = labeledNuclei(samples).map((im) => {
      const labels = im.labels.slice();
      // Keep every 7th row labeled; the rest is unknown, as after a few brush strokes.
      for (let i = 0; i < labels.length; i++) if (Math.floor(i / im.width) % 7 !== 0) labels[i] = UNKNOWN;
      return { ...im, labels };
    });
    const { model } = await finetune({ images: train, target: { kind: 'semantic', classes: 1 }, config: arch, steps: 60, batchSize: 8, patchSize: 64, learningRate: 3e-3 });
    const s = samples[0];
    const score = dice(classMap(await predictImage(model, prepareImage(s.image), { tile: 64, overlap: 16 })), s.foreground);
    expect(score).toBeGreaterThan(0.6);
    model.dispose();
  });

  test('a pretext encoder stays frozen for the first tenth of the steps by default; scratch and warm starts train at once', async () => {
    const weights = new Map([['enc0.w', tf.zeros([1])]]);
    expect(encoderWarmupFor({ name: 'rotation', weights, trained: 'encoder' }, 400)).toBe(40);
    expect(encoderWarmupFor({ name: 'inpainting', weights, trained: 'unet' }, 55)).toBe(5);
    expect(encoderWarmupFor({ name: 'earlier', weights, trained: 'segmentation' }, 400)).toBe(0);
    expect(encoderWarmupFor(undefined, 400)).toBe(0);
    tf.dispose([...weights.values()]);

    // One step of a ten-step run (stopped there): a tenth of ten is one frozen step.
    const train = labeledNuclei(nuclei(1, 64, 11));
    const target = { kind: 'semantic', classes: 1 } as const;
    const pretext = UNet.create({ inChannels: 1, outChannels: 1, ...arch }, 5);
    const afterOneStep = async (init: Initialisation | undefined) => {
      const stop = new AbortController();
      const { model, status } = await finetune({ images: train, target, config: arch, init, steps: 10, batchSize: 2, patchSize: 64, seed: 2, signal: stop.signal, onProgress: () => stop.abort() });
      expect(status).toBe('cancelled');
      // Scratch starts from the same seeded weights as this.
      const untrained = init ? null : UNet.create({ inChannels: 1, outChannels: 1, ...arch }, 2);
      const before = init?.weights ?? (untrained as UNet).weights();
      const moved = (encoder: boolean) =>
        [...model.weights()].filter(([name, w]) => isEncoderParam(name) === encoder && tf.tidy(() => tf.any(tf.notEqual(w, before.get(name) as tf.Tensor)).dataSync()[0] === 1)).length;
      const result = { encoder: moved(true), rest: moved(false) };
      model.dispose();
      untrained?.dispose();
      return result;
    };
    const fromPretext = await afterOneStep({ name: 'inpainting', weights: pretext.weights(), trained: 'unet' });
    expect(fromPretext.encoder).toBe(0);
    expect(fromPretext.rest).toBeGreaterThan(0);
    const warm = await afterOneStep({ name: 'earlier', weights: pretext.weights(), trained: 'segmentation' });
    expect(warm.encoder).toBeGreaterThan(0);
    expect((await afterOneStep(undefined)).encoder).toBeGreaterThan(0);
    pretext.dispose();
  });

  test("a pretrained encoder's rate can be a share of the decoder's", async () => {
    const train = labeledNuclei(nuclei(1, 64, 11));
    const pretext = UNet.create({ inChannels: 1, outChannels: 1, ...arch }, 5);
    const before = pretext.weights();
    // Adam's first step moves every parameter by about the rate, whatever its gradient.
    const largestMove = async (encoderRateFactor: number) => {
      const stop = new AbortController();
      const { model } = await finetune({
        images: train, target: { kind: 'semantic', classes: 1 }, config: arch, init: { name: 'inpainting', weights: before, trained: 'unet' },
        steps: 10, batchSize: 2, patchSize: 64, seed: 2, learningRate: 0.01, schedule: 'constant', encoderWarmupSteps: 0, encoderRateFactor,
        signal: stop.signal, onProgress: () => stop.abort(),
      });
      const move = (encoder: boolean) => Math.max(...[...model.weights()]
        .filter(([name]) => !isStatistic(name) && !isHeadParam(name) && isEncoderParam(name) === encoder)
        .map(([name, w]) => tf.tidy(() => tf.max(tf.abs(tf.sub(w, before.get(name) as tf.Tensor))).dataSync()[0])));
      const result = { encoder: move(true), decoder: move(false) };
      model.dispose();
      return result;
    };
    const even = await largestMove(1);
    expect(even.encoder).toBeCloseTo(0.01, 3);
    expect(even.decoder).toBeCloseTo(0.01, 3);
    const slow = await largestMove(0.1);
    expect(slow.encoder).toBeCloseTo(0.001, 4);
    expect(slow.decoder).toBeCloseTo(0.01, 3);
    await expect(largestMove(0)).rejects.toThrow(/encoderRateFactor must be > 0/);
    pretext.dispose();
  });

  test('labels outside the target classes are refused', async () => {
    const [im] = labeledNuclei(nuclei(1, 32, 1));
    const bad = { ...im, labels: im.labels.map((v) => (v ? 3 : 0)) };
    await expect(finetune({ images: [bad], target: { kind: 'semantic', classes: 1 }, config: arch, steps: 1 })).rejects.toThrow(/label value 3/);
  });

  test('instance target (interior/boundary) recovers the nuclei of an unseen image as separate objects', async () => {
    const samples = nuclei(4, 96, 401);
    const train = samples.slice(0, 3).map((s) => labeled(prepareImage(s.image), instanceLabels(s.instances, 96, 96)));
    const { model } = await finetune({ images: train, target: { kind: 'instance' }, config: arch, steps: 80, batchSize: 8, patchSize: 64, learningRate: 3e-3 });
    const s = samples[3];
    const p = await predictImage(model, prepareImage(s.image), { tile: 96, overlap: 0 });
    expect(p.channels).toBe(3);
    const interior = new Float32Array(96 * 96);
    const foreground = new Float32Array(96 * 96);
    for (let i = 0; i < interior.length; i++) {
      interior[i] = p.probabilities[i * 3 + 1];
      foreground[i] = 1 - p.probabilities[i * 3];
    }
    const objects = instancesFromInterior(interior, 96, 96, { foreground, minSize: 8 });
    const [score] = matchInstances(objects.labels, s.instances, [0.5]);
    expect(score.f1).toBeGreaterThan(0.5);

    // Val F1 rebuilds the true objects from the three-class labels: it must equal matching the
    // proposal against the original instances, also when part of the image is unknown.
    const target = { kind: 'instance' } as const;
    const image = labeled(prepareImage(s.image), instanceLabels(s.instances, 96, 96));
    const proposal = (await propose(model, target, imageSource(image))).mask;
    const val = await evaluateOnVal(model, target, [image]);
    expect(val.f1).toBeCloseTo(matchInstances(proposal, s.instances, [0.5])[0].f1, 10);
    expect(val.dice).toBeCloseTo(dice(foregroundOf(proposal), foregroundOf(s.instances)), 10);
    const leftUnknown = (ids: ArrayLike<number>) => Int32Array.from(ids, (id, i) => (i % 96 < 48 ? 0 : id));
    const halfImage = { ...image, labels: image.labels.map((c, i) => (i % 96 < 48 ? UNKNOWN : c)) };
    const half = await evaluateOnVal(model, target, [halfImage]);
    expect(half.f1).toBeCloseTo(matchInstances(leftUnknown(proposal), leftUnknown(s.instances), [0.5])[0].f1, 10);
    model.dispose();
  });
});

describe('choosing the initialisation on the val split', () => {
  test('a harmful initialisation loses to scratch and the scores are reported', async () => {
    const samples = nuclei(4, 64, 501);
    const all = labeledNuclei(samples);
    // A 'pretrained' encoder whose weights are all zero: its ReLUs are dead, nothing can be learned.
    const harmful = UNet.create({ inChannels: 1, outChannels: 1, ...arch }, 9);
    const zeros = new Map([...harmful.weights()].map(([k, v]) => [k, tf.zerosLike(v)]));
    harmful.dispose();
    const selection = await selectInitialisation(
      [{ name: 'scratch' }, { name: 'dead-encoder', weights: zeros, trained: 'unet' }],
      { images: all.slice(0, 3), target: { kind: 'semantic', classes: 1 }, config: arch, steps: 40, batchSize: 8, patchSize: 64, learningRate: 3e-3 },
      all.slice(3),
      { tile: 64, overlap: 16 },
    );
    tf.dispose([...zeros.values()]);
    expect(selection.scores.map((s) => s.name)).toEqual(['scratch', 'dead-encoder']);
    expect(selection.bestName).toBe('scratch');
    expect(selection.scores[0].dice).toBeGreaterThan(selection.scores[1].dice);
    expect(selection.scores[0].f1).toBeUndefined();
    expect(await evaluateOnVal(selection.best.model, { kind: 'semantic', classes: 1 }, all.slice(3), { tile: 64, overlap: 16 })).toEqual({ dice: selection.scores[0].dice });
    selection.best.model.dispose();
  });

  test('a fine-tuning paused at a step and continued is the run trained straight through, batch statistics and best weights included', async () => {
    const all = labeledNuclei(nuclei(3, 96, 611));
    const config = { ...arch, norm: 'batch' as const };
    const pretext = UNet.create({ inChannels: 1, outChannels: 1, ...config }, 4);
    const init: Initialisation = { name: 'pretext', weights: pretext.weights(), trained: 'unet' };
    const base = { images: all.slice(0, 2), valImages: all.slice(2), target: { kind: 'semantic', classes: 1 } as const, config, init, steps: 24, batchSize: 4, patchSize: 64, learningRate: 3e-3 };
    const straight = await finetune(base);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pause-')), 'run.mlckpt');
    // The warmup (2 steps from pretext weights) must be over: its optimizer is not saved.
    await expect(finetune({ ...base, checkpointFile: file, pauseAt: 2 })).rejects.toThrow(/after the encoder warmup/);
    await expect(finetune({ ...base, pauseAt: 9 })).rejects.toThrow(/checkpoint file/);
    const paused = await finetune({ ...base, checkpointFile: file, pauseAt: 9 });
    expect(paused.status).toBe('paused');
    expect(paused.meta.step).toBe(9);
    expect(paused.pausedValDice).toBeGreaterThanOrEqual(0);
    paused.model.dispose();
    const continued = await finetune({ ...base, checkpointFile: file, resume: true });
    expect(continued.status).toBe('completed');
    expect(continued.losses.length).toBe(15);
    continued.losses.forEach((loss, i) => expect(loss).toBe(straight.losses[9 + i]));
    expect(continued.meta.foregroundThreshold).toBe(straight.meta.foregroundThreshold);
    const [a, b] = [straight.model.weights(), continued.model.weights()];
    for (const [name, w] of a) expect(Array.from(b.get(name)?.dataSync() ?? []), name).toEqual(Array.from(w.dataSync()));
    for (const m of [pretext, straight.model, continued.model]) m.dispose();
  });

  test('candidates with checkpoints race: each trains to its race step, only the leader goes on, and progress counts the whole selection', async () => {
    const all = labeledNuclei(nuclei(5, 96, 501));
    const harmful = UNet.create({ inChannels: 1, outChannels: 1, ...arch }, 9);
    const zeros = new Map([...harmful.weights()].map(([k, v]) => [k, tf.zerosLike(v)]));
    harmful.dispose();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'race-'));
    const steps = 40;
    const progress: { step: number; total: number }[] = [];
    const selection = await selectInitialisation(
      [{ name: 'scratch' }, { name: 'dead-encoder', weights: zeros, trained: 'unet' }],
      {
        images: all.slice(0, 3), target: { kind: 'semantic', classes: 1 }, config: arch, steps, batchSize: 8, patchSize: 64, learningRate: 3e-3,
        checkpointFor: (name) => path.join(dir, `${name}.mlckpt`), onProgress: (p) => progress.push({ step: p.step, total: p.totalSteps }),
      },
      all.slice(3),
      { tile: 64, overlap: 16 },
    );
    tf.dispose([...zeros.values()]);
    const at = raceStep(steps) as number;
    expect(at).toBe(10);
    expect(selection.bestName).toBe('scratch');
    expect(selection.best.meta.step).toBe(steps);
    expect(selection.scores.map((s) => [s.name, s.stoppedAt])).toEqual([['scratch', undefined], ['dead-encoder', at]]);
    // Both raced a quarter, the leader went on: 10 + 10 + 30 steps in all, never counted backwards.
    expect(progress.at(-1)).toEqual({ step: 2 * at + steps - at, total: 2 * at + steps - at });
    for (let i = 1; i < progress.length; i++) expect(progress[i].step).toBeGreaterThanOrEqual(progress[i - 1].step);
    expect(plannedSelectionSteps([steps, steps])).toBe(2 * at + steps - at);
    // A race needs room before and after its step; one candidate does not race.
    expect(raceStep(1)).toBeNull();
    expect(raceSteps([steps])).toBeNull();
    expect(raceLeader([{ name: 'scratch', valDice: 0.8 }, { name: 'pretext', valDice: 0.805 }])).toBe(0);
    expect(raceLeader([{ name: 'scratch', valDice: 0.8 }, { name: 'pretext', valDice: 0.82 }])).toBe(1);
    selection.best.model.dispose();
  });
});

describe('tiled inference', () => {
  test('tile origins cover the image and end flush with it', () => {
    expect(tileOrigins(100, 128, 32)).toEqual([0]);
    expect(tileOrigins(300, 128, 32)).toEqual([0, 96, 172]);
    expect(tileOrigins(256, 128, 32)).toEqual([0, 96, 128]);
  });

  test('seams are invisible: tiled and whole-image predictions agree', async () => {
    const model = UNet.create({ inChannels: 1, outChannels: 1, depth: 3, baseFilters: 8 }, 5);
    const [s] = nuclei(1, 160, 7);
    // An image that is not a multiple of the tile and wider than tall.
    const image = prepareImage({ ...s.image, width: 160, height: 160 });
    const whole = tf.tidy(() => model.predict(tf.tensor4d(image.pixels, [1, 160, 160, 1]))).dataSync();
    const tiled = await predictImage(model, image, { tile: 64, overlap: 32 });
    let maxDiff = 0;
    let sumDiff = 0;
    for (let i = 0; i < whole.length; i++) {
      const d = Math.abs(whole[i] - tiled.probabilities[i]);
      maxDiff = Math.max(maxDiff, d);
      sumDiff += d;
    }
    expect(sumDiff / whole.length).toBeLessThan(2e-3);
    expect(maxDiff).toBeLessThan(0.05);
    model.dispose();
  });

  test('a small non-square image is one tile of its own aspect, padded by reflection to the size multiple', async () => {
    const model = UNet.create({ inChannels: 1, outChannels: 1, depth: 4, baseFilters: 8 }, 9);
    expect(sizeMultiple(model.config)).toBe(8);
    const [s] = nuclei(1, 160, 4);
    // 150 x 90: neither side a multiple of 8, so the tile is 152 x 96, not a 152 x 152 square.
    const image = { width: 150, height: 90, channels: 1, pixels: cropRect(prepareImage(s.image), 0, 0, 150, 90).pixels };
    const padded = cropRect(image, 0, 0, 152, 96).pixels;
    const direct = tf.tidy(() => model.predict(tf.tensor4d(padded, [1, 96, 152, 1]))).dataSync();
    const tiled = await predictImage(model, image);
    let maxDiff = 0;
    for (let y = 0; y < 90; y++) for (let x = 0; x < 150; x++) maxDiff = Math.max(maxDiff, Math.abs(direct[y * 152 + x] - tiled.probabilities[y * 150 + x]));
    expect(maxDiff).toBeLessThan(1e-5);
    model.dispose();
  });

  test('uncertainty is the normalised entropy of the probabilities, whole or tiled', async () => {
    const model = UNet.create({ inChannels: 1, outChannels: 3, depth: 2, baseFilters: 4 }, 3);
    const [s] = nuclei(1, 96, 2);
    const image = prepareImage(s.image);
    for (const options of [{}, { tile: 48, overlap: 16 }]) {
      const p = await predictImage(model, image, options);
      let sum = 0;
      for (let i = 0; i < 96 * 96; i++) {
        let h = 0;
        for (let c = 0; c < 3; c++) h -= p.probabilities[i * 3 + c] * Math.log(p.probabilities[i * 3 + c]);
        expect(p.uncertainty[i]).toBeCloseTo(h / Math.log(3), 5);
        sum += p.uncertainty[i];
      }
      expect(p.score).toBeCloseTo(sum / (96 * 96), 6);
    }
    model.dispose();
  });

  test('streams rows in order with memory bounded by the band, and scores uncertainty', async () => {
    const model = UNet.create({ inChannels: 1, outChannels: 1, depth: 2, baseFilters: 4 }, 1);
    const width = 300;
    const height = 1000;
    const source = { width, height, channels: 1, read: (x: number, y: number, w: number, h: number) => new Float32Array(w * h).fill(((x + y) % 7) / 7) };
    let next = 0;
    let largest = 0;
    const score = await predictTiled(model, source, (y0, rows, probs, unc) => {
      expect(y0).toBe(next);
      expect(probs.length).toBe(rows * width);
      expect(unc.every((u) => u >= 0 && u <= 1)).toBe(true);
      next = y0 + rows;
      largest = Math.max(largest, rows);
    }, { tile: 128, overlap: 32 });
    expect(next).toBe(height);
    expect(largest).toBeLessThanOrEqual(128);
    expect(score).toBeGreaterThan(0);
    expect(score).toBeLessThanOrEqual(1);
    // An untrained sigmoid head hovers near 0.5: high uncertainty.
    expect(score).toBeGreaterThan(0.5);
    model.dispose();
  });
});

describe('training patches', () => {
  test('a third of the patches are centred on foreground, however sparse it is', () => {
    const size = 512;
    const labels = new Uint8Array(size * size);
    for (let y = 300; y < 304; y++) for (let x = 100; x < 104; x++) labels[y * size + x] = 1;
    const image = { pixels: new Float32Array(size * size), width: size, height: size, channels: 1, labels };
    const rng = new Rng(3);
    let withForeground = 0;
    const draws = 600;
    for (let i = 0; i < draws; i++) if ((sampleLabeledPatch([image], 64, rng).labels as Uint8Array).some((v) => v === 1)) withForeground++;
    // Uniform crops would hold the 4x4 square about 1.8% of the time.
    expect(withForeground / draws).toBeGreaterThan(FOREGROUND_PATCH_SHARE - 0.06);
    expect(withForeground / draws).toBeLessThan(FOREGROUND_PATCH_SHARE + 0.1);
  });
});

describe('learning-rate schedule', () => {
  test('cosine starts at the base rate, falls steadily and ends at a twentieth of it; constant stays', () => {
    const rates = Array.from({ length: 50 }, (_, i) => learningRateAt(0.002, i, 50, 'cosine'));
    expect(rates[0]).toBeCloseTo(0.002, 12);
    expect(rates[49]).toBeCloseTo(0.0001, 12);
    for (let i = 1; i < rates.length; i++) expect(rates[i]).toBeLessThan(rates[i - 1]);
    // Halfway through the run the rate is halfway between the two ends.
    expect(learningRateAt(0.002, 25, 51, 'cosine')).toBeCloseTo(0.00105, 12);
    expect(learningRateAt(0.002, 30, 50, 'constant')).toBe(0.002);
    expect(learningRateAt(0.002, 0, 1, 'cosine')).toBe(0.002);
  });

  test("the rate set before a step is the one tfjs' Adam applies", () => {
    // Adam's first step moves each weight by exactly its rate against the gradient's sign.
    const x = tf.variable(tf.scalar(1));
    const adam = createOptimizer(0.1);
    adam.minimize(() => x.mul(2) as tf.Scalar, false, [x]);
    expect(x.dataSync()[0]).toBeCloseTo(0.9, 5);
    setLearningRate(adam, 0);
    adam.minimize(() => x.mul(2) as tf.Scalar, false, [x]);
    expect(x.dataSync()[0]).toBeCloseTo(0.9, 5);
    setLearningRate(adam, 0.05);
    adam.minimize(() => x.mul(2) as tf.Scalar, false, [x]);
    expect(x.dataSync()[0]).toBeCloseTo(0.85, 3);
    adam.dispose();
    x.dispose();
  });

  test('fine-tuning follows the schedule it is given', async () => {
    const train = labeledNuclei(nuclei(2, 64, 7));
    const run = (schedule: 'cosine' | 'constant') =>
      finetune({ images: train, target: { kind: 'semantic', classes: 1 }, config: { depth: 2, baseFilters: 4 }, steps: 4, batchSize: 2, patchSize: 32, learningRate: 0.01, seed: 3, schedule });
    const [cosine, constant] = [await run('cosine'), await run('constant')];
    // Same seed, same patches: the first step is identical, the later ones take smaller steps.
    expect(cosine.losses[0]).toBeCloseTo(constant.losses[0], 6);
    const change = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.sub(a, b).abs().max().dataSync()[0]);
    const start = UNet.create({ ...cosine.meta.config }, 3);
    let cosineMoved = 0;
    let constantMoved = 0;
    for (const [name, w] of start.weights()) {
      cosineMoved += change(cosine.model.weights().get(name) as tf.Tensor, w);
      constantMoved += change(constant.model.weights().get(name) as tf.Tensor, w);
    }
    expect(cosineMoved).toBeLessThan(0.8 * constantMoved);
    for (const m of [start, cosine.model, constant.model]) m.dispose();
  });
});
