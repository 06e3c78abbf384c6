import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { BATCH_NORM_MOMENTUM, REFERENCE_UNET, UNet, normaliseBatch, parameterShapes } from '../../src/engine/model/unet';
import { loadCheckpoint, saveCheckpoint, CheckpointError } from '../../src/engine/checkpoint';
import { finetune, loadSegmentationModel, saveSegmentationModel } from '../../src/engine/train/finetune';
import { segmentationLoss } from '../../src/engine/train/losses';
import { UNKNOWN, dihedral } from '../../src/engine/data';
import { engine, labeledNuclei, nuclei } from '../helpers/engine';
import { predictBatch } from '../../src/engine/infer/predict';
import { Rng } from '../../src/shared/rng';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-model-'));

beforeAll(async () => {
  await engine();
});

describe('U-Net from a config', () => {
  test('the reference U-Net of DESIGN.md is a config with about 0.5 M parameters', () => {
    const model = UNet.create(REFERENCE_UNET);
    // 4 levels of 16..128 filters: encoder 292 464 weights+biases, decoder and head the rest.
    expect(model.parameterCount()).toBeGreaterThan(450_000);
    expect(model.parameterCount()).toBeLessThan(550_000);
    const y = model.predict(tf.zeros([2, 128, 128, 1]));
    expect(y.shape).toEqual([2, 128, 128, 1]);
    const values = y.dataSync();
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThanOrEqual(1);
    y.dispose();
    model.dispose();
  });

  test('the encoder is separable: its own parameters and forward pass', () => {
    const config = { inChannels: 3, outChannels: 4, depth: 3, baseFilters: 8 };
    const model = UNet.create(config);
    const names = parameterShapes(config).map(([n]) => n);
    expect(names.filter((n) => n.startsWith('enc')).length).toBe(3 * 2 * 2);
    const features = model.encode(tf.zeros([1, 32, 32, 3]));
    expect(features.skips.map((s) => s.shape)).toEqual([[1, 32, 32, 8], [1, 16, 16, 16]]);
    expect(features.bottom.shape).toEqual([1, 8, 8, 32]);
    tf.dispose([...features.skips, features.bottom]);
    const probs = model.predict(tf.ones([1, 32, 32, 3]));
    const sums = probs.sum(3).dataSync();
    sums.forEach((s) => expect(s).toBeCloseTo(1, 5));
    probs.dispose();
    model.dispose();
  });

  test('bad configs and inputs are refused with a clear message', () => {
    expect(() => UNet.create({ inChannels: 0, outChannels: 1, depth: 3, baseFilters: 8 })).toThrow(/inChannels/);
    const model = UNet.create({ inChannels: 1, outChannels: 1, depth: 3, baseFilters: 4 });
    expect(() => model.forward(tf.zeros([1, 30, 32, 1]))).toThrow(/multiple of 4/);
    expect(() => model.forward(tf.zeros([1, 32, 32, 2]))).toThrow(/expects 1 channels/);
    model.dispose();
  });
});

describe('batch normalisation', () => {
  const config = { inChannels: 1, outChannels: 1, depth: 2, baseFilters: 4, norm: 'batch' as const };
  const x = () => tf.randomUniform([2, 16, 16, 1], 0, 1, 'float32', 5) as tf.Tensor4D;

  test('replaces the convolution biases with scale, shift and running statistics; the head keeps its bias', () => {
    const names = parameterShapes(config).map(([n]) => n);
    expect(names).toContain('enc0.conv0.gamma');
    expect(names).toContain('dec0.up.var');
    expect(names).not.toContain('enc0.conv0.b');
    expect(names).toContain('head.b');
    const model = UNet.create(config);
    const trainable = new Set(model.variables().map((v) => v.name.split('#')[0]));
    expect(trainable.has('enc0.conv0.gamma')).toBe(true);
    expect(trainable.has('enc0.conv0.mean')).toBe(false);
    expect(trainable.has('enc0.conv0.var')).toBe(false);
    model.dispose();
  });

  test('the written-out gradient equals the automatic gradient of the formula', () => {
    const x = tf.randomNormal([3, 5, 4, 6], 0.7, 2, 'float32', 21) as tf.Tensor4D;
    const gamma = tf.randomUniform([6], 0.5, 1.5, 'float32', 22);
    const beta = tf.randomUniform([6], -1, 1, 'float32', 23);
    // An uneven upstream gradient, so every term of the formula matters.
    const weights = tf.randomNormal([3, 5, 4, 6], 0, 1, 'float32', 24);
    const loss = (norm: (x: tf.Tensor4D, g: tf.Tensor, b: tf.Tensor) => tf.Tensor) => (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(norm(x as tf.Tensor4D, g, b), weights)) as tf.Scalar;
    const formula = (v: tf.Tensor4D, g: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(v, [0, 1, 2]);
      return v.sub(mean).div(variance.add(1e-3).sqrt()).mul(g).add(b);
    };
    const written = tf.grads(loss(normaliseBatch))([x, gamma, beta]);
    const automatic = tf.grads(loss(formula))([x, gamma, beta]);
    written.forEach((g, i) => {
      const a = g.dataSync();
      const e = automatic[i].dataSync();
      const scale = Math.max(...Array.from(e, Math.abs));
      let worst = 0;
      for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j] - e[j]));
      expect(worst / scale, ['x', 'gamma', 'beta'][i]).toBeLessThan(1e-4);
    });
    const value = normaliseBatch(x, gamma, beta).dataSync();
    const expected = formula(x, gamma, beta).dataSync();
    for (let j = 0; j < value.length; j += 7) expect(value[j]).toBeCloseTo(expected[j], 4);
    tf.dispose([x, gamma, beta, weights, ...written, ...automatic]);
  });

  test('a training pass normalises by the batch and moves the running statistics towards it', () => {
    const model = UNet.create(config, 3);
    const input = x();
    const features = tf.tidy(() => model.encode(input, true).skips[0]);
    // First conv of level 0, recomputed by hand from its filter.
    const raw = tf.conv2d(input, model.params.get('enc0.conv0.w') as tf.Tensor4D, 1, 'same');
    const { mean, variance } = tf.moments(raw, [0, 1, 2]);
    const count = 2 * 16 * 16;
    const running = model.params.get('enc0.conv0.mean')?.dataSync() as Float32Array;
    const runningVar = model.params.get('enc0.conv0.var')?.dataSync() as Float32Array;
    const m = mean.dataSync();
    const v = variance.dataSync();
    for (let c = 0; c < 4; c++) {
      expect(running[c]).toBeCloseTo(BATCH_NORM_MOMENTUM * m[c], 5);
      expect(runningVar[c]).toBeCloseTo(1 - BATCH_NORM_MOMENTUM + BATCH_NORM_MOMENTUM * v[c] * (count / (count - 1)), 4);
    }
    // After conv1 + ReLU the batch statistics are not visible; the level's output is still
    // non-negative and not all zero.
    const out = features.dataSync();
    expect(Math.min(...out)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...out)).toBeGreaterThan(0);
    tf.dispose([input, features, raw, mean, variance]);
    model.dispose();
  });

  test('inference with the statistics folded into the filters equals normalising explicitly', () => {
    const model = UNet.create({ ...config, depth: 1 }, 4);
    for (const [name, v] of model.params) {
      if (name.endsWith('.mean')) v.assign(tf.randomUniform(v.shape, -0.5, 0.5, 'float32', 8));
      if (name.endsWith('.var')) v.assign(tf.randomUniform(v.shape, 0.2, 2, 'float32', 9));
      if (name.endsWith('.gamma')) v.assign(tf.randomUniform(v.shape, 0.5, 1.5, 'float32', 10));
      if (name.endsWith('.beta')) v.assign(tf.randomUniform(v.shape, -0.3, 0.3, 'float32', 11));
    }
    const p = (n: string) => model.params.get(n) as tf.Tensor;
    const input = x();
    const expected = tf.tidy(() => {
      let h: tf.Tensor4D = input;
      for (const layer of ['enc0.conv0', 'enc0.conv1']) {
        const y = tf.conv2d(h, p(`${layer}.w`) as tf.Tensor4D, 1, 'same');
        h = tf.relu(y.sub(p(`${layer}.mean`)).div(p(`${layer}.var`).add(1e-3).sqrt()).mul(p(`${layer}.gamma`)).add(p(`${layer}.beta`))) as tf.Tensor4D;
      }
      return tf.conv2d(h, p('head.w') as tf.Tensor4D, 1, 'same').add(p('head.b'));
    });
    const actual = model.forward(input);
    const a = actual.dataSync();
    const e = expected.dataSync();
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - e[i]));
    expect(worst).toBeLessThan(1e-4);
    tf.dispose([input, expected, actual]);
    model.dispose();
  });

  test('a training step on this backend matches the cpu backend: loss, gradients and running statistics', async () => {
    const weights = UNet.create(config, 6).weights();
    const step = () => {
      const model = UNet.fromWeights(config, weights);
      const input = x();
      const labels = tf.tensor3d(Array.from({ length: 2 * 16 * 16 }, (_, i) => (i % 7 < 3 ? 1 : 0)), [2, 16, 16], 'int32');
      const { value, grads } = tf.variableGrads(() => segmentationLoss(model.forward(input, true), labels), model.variables());
      const result = {
        loss: value.dataSync()[0],
        grads: Object.fromEntries(Object.entries(grads).map(([n, g]) => [n.split('#')[0], Array.from(g.dataSync())])),
        running: Array.from((model.params.get('enc1.conv1.var') as tf.Tensor).dataSync()),
      };
      tf.dispose([input, labels, value, ...Object.values(grads)]);
      model.dispose();
      return result;
    };
    const here = step();
    const active = tf.getBackend();
    await tf.setBackend('cpu');
    const reference = step();
    await tf.setBackend(active);
    expect(here.loss).toBeCloseTo(reference.loss, 4);
    expect(Object.keys(here.grads).sort()).toEqual(Object.keys(reference.grads).sort());
    for (const [name, g] of Object.entries(reference.grads)) {
      const scale = Math.max(...g.map(Math.abs), 1e-6);
      const diff = Math.max(...g.map((v, i) => Math.abs(v - here.grads[name][i])));
      expect(diff / scale, name).toBeLessThan(1e-3);
    }
    here.running.forEach((v, i) => expect(v).toBeCloseTo(reference.running[i], 4));
    for (const t of weights.values()) t.dispose();
  });
});

describe('loss', () => {
  test('pixels marked unknown teach nothing: changing their logits leaves loss and gradients unchanged', () => {
    const labels = tf.tensor3d([0, 1, UNKNOWN, 1, 0, UNKNOWN, 1, 1, 0], [1, 3, 3], 'int32');
    const a = tf.tensor4d([0.1, 2, -3, 1, -1, 5, 0.5, 0.3, -0.2], [1, 3, 3, 1]);
    const b = tf.tensor4d([0.1, 2, 9, 1, -1, -7, 0.5, 0.3, -0.2], [1, 3, 3, 1]);
    const la = segmentationLoss(a, labels).dataSync()[0];
    const lb = segmentationLoss(b, labels).dataSync()[0];
    expect(lb).toBeCloseTo(la, 6);
    const g = tf.grad((x: tf.Tensor) => segmentationLoss(x as tf.Tensor4D, labels))(a).dataSync();
    expect(g[2]).toBe(0);
    expect(g[5]).toBe(0);
    expect(Math.abs(g[0])).toBeGreaterThan(0);
  });

  test('a confident correct prediction costs less than a wrong one, for sigmoid and softmax heads', () => {
    const labels = tf.tensor3d([1, 0, 2, 0], [1, 2, 2], 'int32');
    const right = tf.oneHot(tf.tensor3d([1, 0, 2, 0], [1, 2, 2], 'int32'), 3).mul(10).toFloat() as tf.Tensor4D;
    const wrong = tf.oneHot(tf.tensor3d([0, 2, 1, 1], [1, 2, 2], 'int32'), 3).mul(10).toFloat() as tf.Tensor4D;
    expect(segmentationLoss(right, labels).dataSync()[0]).toBeLessThan(0.05);
    expect(segmentationLoss(wrong, labels).dataSync()[0]).toBeGreaterThan(5);
    const binary = tf.tensor3d([1, 0], [1, 1, 2], 'int32');
    expect(segmentationLoss(tf.tensor4d([8, -8], [1, 1, 2, 1]), binary).dataSync()[0]).toBeLessThan(0.01);
    expect(segmentationLoss(tf.tensor4d([-8, 8], [1, 1, 2, 1]), binary).dataSync()[0]).toBeGreaterThan(5);
  });
});

describe('augmentation geometry', () => {
  test('four quarter turns are the identity and a flip is its own inverse', () => {
    const size = 5;
    const src = Float32Array.from({ length: size * size * 2 }, (_, i) => i);
    let r = src;
    for (let k = 0; k < 4; k++) r = dihedral(r, size, 2, 1);
    expect(Array.from(r)).toEqual(Array.from(src));
    expect(Array.from(dihedral(dihedral(src, size, 2, 4), size, 2, 4))).toEqual(Array.from(src));
    expect(Array.from(dihedral(src, size, 2, 1))).not.toEqual(Array.from(src));
    // rotation by 1 then by 3 is the identity: labels and pixels stay aligned whatever is drawn
    expect(Array.from(dihedral(dihedral(src, size, 2, 1), size, 2, 3))).toEqual(Array.from(src));
  });
});

describe('checkpoints', () => {
  test('a saved model reloads and predicts identically', async () => {
    const data = labeledNuclei(nuclei(2, 64));
    const { model, meta } = await finetune({
      images: data, target: { kind: 'semantic', classes: 1 }, config: { depth: 3, baseFilters: 8 },
      steps: 3, batchSize: 2, patchSize: 32,
    });
    const file = path.join(tmp, 'model ünïcode.mlckpt');
    await saveSegmentationModel(file, model, meta);
    const loaded = loadSegmentationModel(file);
    expect(loaded.meta.step).toBe(3);
    expect(loaded.meta.target).toEqual({ kind: 'semantic', classes: 1 });
    const x = tf.randomUniform([2, 64, 64, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
    const a = model.predict(x).dataSync();
    const b = loaded.model.predict(x).dataSync();
    expect(Array.from(b)).toEqual(Array.from(a));
    model.dispose();
    loaded.model.dispose();
  });

  test('a truncated or foreign file gives a clear error', async () => {
    const file = path.join(tmp, 'c.mlckpt');
    await saveCheckpoint(file, { meta: { a: 1 }, groups: { w: new Map([['x', tf.ones([100])]]) } });
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 10));
    expect(() => loadCheckpoint(file)).toThrow(/truncated/);
    fs.writeFileSync(file, 'hello world, not a checkpoint');
    expect(() => loadCheckpoint(file)).toThrow(CheckpointError);
  });
});

describe('tensor memory', () => {
  test('does not grow across training steps or predictions', async () => {
    const data = labeledNuclei(nuclei(2, 64));
    const run = async (steps: number) => {
      const before = tf.memory().numTensors;
      const { model } = await finetune({
        images: data, target: { kind: 'instance' }, config: { depth: 3, baseFilters: 4, norm: 'batch' }, steps, batchSize: 2, patchSize: 32,
        checkpointFile: path.join(tmp, `mem-${steps}.mlckpt`), checkpointEvery: 2,
      });
      const during = tf.memory().numTensors - before;
      for (let i = 0; i < steps; i++) tf.tidy(() => { model.predict(tf.zeros([1, 32, 32, 1])); });
      const afterPredict = tf.memory().numTensors - before;
      model.dispose();
      return { during, afterPredict, after: tf.memory().numTensors - before };
    };
    const short = await run(2);
    const long = await run(8);
    // Whatever stays alive is the model itself, independent of how many steps ran.
    expect(long.during).toBe(short.during);
    expect(long.afterPredict).toBe(long.during);
    expect(long.after).toBe(0);
    expect(short.after).toBe(0);
  });
});

describe('test-time augmentation', () => {
  test('averages over the eight symmetries: the averaged prediction turns with its input', () => {
    const model = UNet.create({ inChannels: 1, outChannels: 3, depth: 2, baseFilters: 4 }, 5);
    const size = 32;
    const rng = new Rng(3);
    const x = Float32Array.from({ length: size * size }, () => rng.next());
    const predict = (pixels: Float32Array, tta: boolean) => tf.tidy(() => predictBatch(model, tf.tensor4d(pixels, [1, size, size, 1]), tta).dataSync() as Float32Array);
    const averaged = predict(x, true);
    // A random network is not symmetric itself, so averaging changes its output.
    const plain = predict(x, false);
    expect(Math.max(...plain.map((v, i) => Math.abs(v - averaged[i])))).toBeGreaterThan(1e-4);
    for (let k = 1; k < 8; k++) {
      const turned = predict(dihedral(x, size, 1, k), true);
      const expected = dihedral(averaged, size, 3, k);
      expect(Math.max(...turned.map((v, i) => Math.abs(v - expected[i]))), `symmetry ${k}`).toBeLessThan(1e-4);
    }
    model.dispose();
  });

  test('keeps the shape of tiles that are not square', () => {
    const model = UNet.create({ inChannels: 2, outChannels: 1, depth: 2, baseFilters: 4 }, 5);
    const out = tf.tidy(() => predictBatch(model, tf.zeros([2, 16, 40, 2]) as tf.Tensor4D, true).shape);
    expect(out).toEqual([2, 16, 40, 1]);
    model.dispose();
  });
});
