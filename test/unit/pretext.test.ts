import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { pretextTask, pretextTaskNames } from '../../src/engine/pretext/registry';
import { PRETEXT_TASKS } from '../../src/shared/types';
import { JIGSAW_PERMUTATIONS, shuffleQuadrants } from '../../src/engine/pretext/jigsaw';
import { ntXent } from '../../src/engine/pretext/contrastive';
import { corrupt } from '../../src/engine/pretext/restoration';
import { dihedral, randomCrop } from '../../src/engine/data';
import { prepareImage } from '../../src/engine/input';
import { pretrain } from '../../src/engine/train/pretrain';
import { Rng } from '../../src/shared/rng';
import { engine, mean, nuclei } from '../helpers/engine';

beforeAll(async () => {
  await engine();
});

const size = 32;

function patches(channels: number, n = 4): Float32Array[] {
  const images = nuclei(2, 64, 5, channels).map((s) => prepareImage(s.image));
  const rng = new Rng(9);
  return Array.from({ length: n }, (_, i) => randomCrop(images[i % 2], size, rng).pixels);
}

test('all eight pretext tasks are registered by name', () => {
  expect(pretextTaskNames().sort()).toEqual(['contrastive', 'cross-channel', 'denoising', 'inpainting', 'jigsaw', 'masked', 'restoration', 'rotation']);
  // The contract's list (what the app may ask for) is the registry's, and nothing else.
  expect([...PRETEXT_TASKS].sort()).toEqual(pretextTaskNames().sort());
  expect(() => pretextTask('colour')).toThrow(/unknown pretext task 'colour'/);
});

describe('pretext labels are right', () => {
  test('rotation: undoing the labelled rotation gives back the patch', () => {
    const src = patches(1);
    const batch = pretextTask('rotation').makeBatch(src, size, 1, new Rng(1));
    const inputs = batch.inputs.arraySync() as number[][][][];
    const classes = Array.from(batch.targets.dataSync());
    expect(new Set(classes).size).toBeGreaterThan(1);
    classes.forEach((r, i) => {
      const rotated = Float32Array.from(inputs[i].flat(2));
      const undone = dihedral(rotated, size, 1, (4 - r) % 4);
      expect(Array.from(undone)).toEqual(Array.from(src[i]));
    });
    tf.dispose([batch.inputs, batch.targets]);
  });

  test('jigsaw: the labelled permutation, inverted, reassembles the patch', () => {
    const src = patches(2);
    const batch = pretextTask('jigsaw').makeBatch(src, size, 2, new Rng(2));
    const inputs = batch.inputs.arraySync() as number[][][][];
    Array.from(batch.targets.dataSync()).forEach((k, i) => {
      const perm = JIGSAW_PERMUTATIONS[k];
      const inverse = perm.map((_, q) => perm.indexOf(q));
      const back = shuffleQuadrants(Float32Array.from(inputs[i].flat(2)), size, 2, inverse);
      expect(Array.from(back)).toEqual(Array.from(src[i]));
    });
    expect(JIGSAW_PERMUTATIONS.length).toBe(24);
    tf.dispose([batch.inputs, batch.targets]);
  });

  test('inpainting: hidden pixels read 0, are flagged, and the target is the original', () => {
    const src = patches(1);
    const batch = pretextTask('inpainting').makeBatch(src, size, 1, new Rng(3));
    const x = batch.inputs.dataSync();
    const t = batch.targets.dataSync();
    const w = (batch.weights as tf.Tensor).dataSync();
    const hidden = Array.from(w).reduce((a, b) => a + b, 0) / w.length;
    expect(hidden).toBeGreaterThan(0.2);
    expect(hidden).toBeLessThan(0.6);
    for (let i = 0; i < x.length; i++) {
      expect(t[i]).toBe(src[Math.floor(i / (size * size))][i % (size * size)]);
      if (w[i]) expect(x[i]).toBe(0);
      else expect(x[i]).toBe(t[i]);
    }
    tf.dispose([batch.inputs, batch.targets, batch.weights as tf.Tensor]);
  });

  test('masked: 16 px blocks hidden whole, about 60% of them, and only they are scored', () => {
    const src = patches(1, 16);
    const batch = pretextTask('masked').makeBatch(src, size, 1, new Rng(5));
    const x = batch.inputs.dataSync();
    const w = (batch.weights as tf.Tensor).dataSync();
    let hiddenBlocks = 0;
    for (let i = 0; i < src.length; i++) {
      for (let by = 0; by < size / 16; by++) {
        for (let bx = 0; bx < size / 16; bx++) {
          const flags = new Set<number>();
          for (let y = by * 16; y < by * 16 + 16; y++) for (let x0 = bx * 16; x0 < bx * 16 + 16; x0++) flags.add(w[i * size * size + y * size + x0]);
          expect(flags.size).toBe(1);
          if (flags.has(1)) hiddenBlocks++;
        }
      }
    }
    expect(hiddenBlocks / (src.length * 4)).toBeGreaterThan(0.4);
    expect(hiddenBlocks / (src.length * 4)).toBeLessThan(0.8);
    for (let i = 0; i < x.length; i++) if (w[i]) expect(x[i]).toBe(0);
    tf.dispose([batch.inputs, batch.targets, batch.weights as tf.Tensor]);
  });

  test('restoration: the target is the original; the input is a corrupted copy of it, the same for the same seed', () => {
    const src = patches(2, 8);
    const batch = pretextTask('restoration').makeBatch(src, size, 2, new Rng(6));
    const x = batch.inputs.dataSync();
    const t = batch.targets.dataSync();
    expect(Array.from(t)).toEqual(src.flatMap((p) => Array.from(p)));
    const per = size * size * 2;
    const changed = src.filter((_, i) => x.subarray(i * per, (i + 1) * per).some((v, j) => v !== t[i * per + j])).length;
    expect(changed).toBeGreaterThanOrEqual(6);
    expect(Array.from(corrupt(src[0], size, 2, new Rng(11)))).toEqual(Array.from(corrupt(src[0], size, 2, new Rng(11))));
    expect(Array.from(src[0])).toEqual(Array.from(t.subarray(0, per)));
    tf.dispose([batch.inputs, batch.targets]);
  });

  test('denoising: a few scattered pixels take a near neighbour\'s value, and only they are scored', () => {
    const src = patches(1, 4);
    const batch = pretextTask('denoising').makeBatch(src, size, 1, new Rng(8));
    const x = batch.inputs.dataSync();
    const w = (batch.weights as tf.Tensor).dataSync();
    const blind = Array.from(w).reduce((a, b) => a + b, 0);
    expect(blind).toBeGreaterThan(0);
    expect(blind).toBeLessThanOrEqual(src.length * Math.round(size * size * 0.02));
    for (let i = 0; i < src.length; i++) {
      for (let p = 0; p < size * size; p++) {
        const at = i * size * size + p;
        if (!w[at]) {
          expect(x[at]).toBe(src[i][p]);
          continue;
        }
        // Its value is one of the pixels within two of it.
        const [px, py] = [p % size, Math.floor(p / size)];
        const near: number[] = [];
        for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) if ((dx || dy) && px + dx >= 0 && px + dx < size && py + dy >= 0 && py + dy < size) near.push(src[i][(py + dy) * size + px + dx]);
        expect(near).toContain(x[at]);
      }
    }
    tf.dispose([batch.inputs, batch.targets, batch.weights as tf.Tensor]);
  });

  test('contrastive: two different views per patch, pairs at i and i + N', () => {
    const src = patches(1);
    const batch = pretextTask('contrastive').makeBatch(src, size, 1, new Rng(4));
    expect(batch.inputs.shape).toEqual([8, size, size, 1]);
    const v = batch.inputs.arraySync() as number[][][][];
    expect(v[0].flat(2)).not.toEqual(v[4].flat(2));
    // NT-Xent is low when each embedding matches its partner and high when pairs are shuffled.
    const z = tf.tensor2d([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]);
    const shuffled = tf.tensor2d([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0]]);
    // Perfect pairs at temperature 0.2: -log(e^5 / (e^5 + 4)) = 0.0266.
    expect(ntXent(z).dataSync()[0]).toBeCloseTo(Math.log(1 + 4 * Math.exp(-5)), 4);
    expect(ntXent(shuffled).dataSync()[0]).toBeGreaterThan(5);
    tf.dispose([batch.inputs, batch.targets, z, shuffled]);
  });

  test('cross-channel: one channel hidden per patch, and the task refuses single-channel images', () => {
    const task = pretextTask('cross-channel');
    expect(task.appliesTo(1)).toBe(false);
    expect(task.appliesTo(2)).toBe(true);
    const src = patches(2);
    const batch = task.makeBatch(src, size, 2, new Rng(5));
    const x = batch.inputs.arraySync() as number[][][][];
    const w = (batch.weights as tf.Tensor).arraySync() as number[][][][];
    x.forEach((img, i) => {
      const hidden = w[i][0][0].indexOf(1);
      expect(w[i][0][0].reduce((a, b) => a + b, 0)).toBe(1);
      expect(img.flat().every((px) => px[hidden] === 0)).toBe(true);
      expect(img.flat().some((px) => px[1 - hidden] !== 0)).toBe(true);
    });
    tf.dispose([batch.inputs, batch.targets, batch.weights as tf.Tensor]);
  });
});

describe('pretext losses fall on synthetic data', () => {
  // Synthetic nuclei look the same in every orientation, so rotation and jigsaw get an uneven
  // illumination ramp (as in real widefield images) to have something to learn from. Contrastive
  // learning collapses at high learning rates, hence its lower rate.
  const cases: Array<{ name: string; channels: number; steps: number; lr: number; ramp: number; drop: number }> = [
    { name: 'rotation', channels: 1, steps: 300, lr: 2e-3, ramp: 0.5, drop: 0.5 },
    { name: 'jigsaw', channels: 1, steps: 500, lr: 2e-3, ramp: 0.5, drop: 0.85 },
    { name: 'inpainting', channels: 1, steps: 40, lr: 2e-3, ramp: 0, drop: 0.9 },
    { name: 'masked', channels: 1, steps: 40, lr: 2e-3, ramp: 0, drop: 0.9 },
    { name: 'restoration', channels: 1, steps: 40, lr: 2e-3, ramp: 0, drop: 0.9 },
    { name: 'denoising', channels: 1, steps: 40, lr: 2e-3, ramp: 0, drop: 0.9 },
    { name: 'contrastive', channels: 1, steps: 400, lr: 5e-4, ramp: 0, drop: 0.95 },
    { name: 'cross-channel', channels: 2, steps: 40, lr: 2e-3, ramp: 0, drop: 0.9 },
  ];
  for (const { name, channels, steps, lr, ramp, drop } of cases) {
    test(name, async () => {
      const images = nuclei(6, 64, 21, channels).map((s) => {
        const im = prepareImage(s.image);
        for (let i = 0; i < im.pixels.length; i++) im.pixels[i] += (ramp * (Math.floor(i / channels) % im.width)) / im.width;
        return im;
      });
      const before = tf.memory().numTensors;
      const result = await pretrain({
        tasks: [name], images, config: { depth: 3, baseFilters: 8 }, steps, batchSize: 8, patchSize: 32, learningRate: lr, seed: 3,
      });
      const window = Math.max(8, Math.floor(steps / 10));
      const first = mean(result.losses.slice(0, window));
      const last = mean(result.losses.slice(-window));
      expect(last).toBeLessThan(first * drop);
      result.model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  }
});
