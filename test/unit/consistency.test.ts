import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { UNKNOWN } from '../../src/engine/data';
import { classMap, predictImage } from '../../src/engine/infer/predict';
import { prepareImage } from '../../src/engine/input';
import { dice } from '../../src/engine/metrics';
import { consistencyBatch, consistencyStart, cutMix, DEFAULT_CONSISTENCY, pseudoLabels, strongView } from '../../src/engine/train/consistency';
import { unlabeledPool } from '../../src/engine/train/semi';
import { finetune } from '../../src/engine/train/finetune';
import { Rng } from '../../src/shared/rng';
import { engine, labeledNuclei, mean, nuclei } from '../helpers/engine';

beforeAll(async () => {
  await engine();
});

const arch = { depth: 3, baseFilters: 8 };
const target = { kind: 'semantic', classes: 1 } as const;

describe('consistency training (semi-supervised)', () => {
  test('pseudo-labels: the most likely class where it is confident, unknown elsewhere, a sparse label where one was drawn', () => {
    expect([...pseudoLabels(Float32Array.from([0.99, 0.5, 0.01, 0.96]), 1, 0.95)]).toEqual([1, UNKNOWN, 0, 1]);
    // Three classes, two pixels: the second is not confident; a drawn label overrides the first.
    const probs = Float32Array.from([0.02, 0.97, 0.01, 0.4, 0.35, 0.25]);
    expect([...pseudoLabels(probs, 3, 0.95)]).toEqual([1, UNKNOWN]);
    expect([...pseudoLabels(probs, 3, 0.95, Uint8Array.from([2, UNKNOWN]))]).toEqual([2, UNKNOWN]);
  });

  test('a fresh model learns supervised first; a warm start uses consistency from its first step', () => {
    expect(consistencyStart(120, DEFAULT_CONSISTENCY, false)).toBe(120 * DEFAULT_CONSISTENCY.startShare);
    expect(consistencyStart(120, DEFAULT_CONSISTENCY, true)).toBe(0);
  });

  test('the strong view perturbs intensities only; CutMix moves pixels and labels together', () => {
    const size = 16;
    const rng = new Rng(3);
    const flat = new Float32Array(size * size).fill(0.5);
    const views = Array.from({ length: 20 }, () => strongView(flat, size, 1, rng));
    // A flat patch stays nearly flat (no geometry added), but views differ from it and from each other.
    for (const v of views) expect(Math.max(...v) - Math.min(...v)).toBeLessThan(1);
    expect(new Set(views.map((v) => mean([...v]).toFixed(3))).size).toBeGreaterThan(15);
    expect(flat.every((v) => v === 0.5)).toBe(true);

    const into = { pixels: new Float32Array(size * size * 2), labels: new Uint8Array(size * size) };
    const from = { pixels: new Float32Array(size * size * 2).fill(1), labels: new Uint8Array(size * size).fill(1) };
    cutMix(into, from, size, 2, new Rng(1));
    const pasted = into.labels.reduce((a, v) => a + v, 0);
    expect(pasted).toBeGreaterThanOrEqual(4 * 4);
    expect(pasted).toBeLessThanOrEqual(8 * 8);
    for (let i = 0; i < size * size; i++) expect([into.pixels[2 * i], into.pixels[2 * i + 1]]).toEqual([into.labels[i], into.labels[i]]);
  });

  test('off, or at weight 0, it leaves the labeled batches and the weights as supervised fine-tuning has them', async () => {
    const train = labeledNuclei(nuclei(2, 64, 11));
    const unlabeled = nuclei(3, 64, 12).map((s) => prepareImage(s.image));
    const common = { images: train, target, config: { ...arch, norm: 'none' as const }, steps: 6, batchSize: 4, patchSize: 32, seed: 4 };
    const plain = await finetune(common);
    const silent = await finetune({ ...common, unlabeled, consistency: { ...DEFAULT_CONSISTENCY, weight: 0 } });
    expect(silent.meta.consistency).toMatchObject({ weight: 0 });
    expect(plain.meta.consistency).toBeUndefined();
    expect(silent.losses).toEqual(plain.losses);
    for (const [name, w] of plain.model.weights()) expect(Array.from(silent.model.weights().get(name)!.dataSync())).toEqual(Array.from(w.dataSync()));
    plain.model.dispose();
    silent.model.dispose();
    await expect(finetune({ ...common, consistency: DEFAULT_CONSISTENCY })).rejects.toThrow(/needs unlabeled images/);
  });

  test('scribbles and unlabeled images: the model segments held-out images, and its confident pseudo-labels agree with the truth', async () => {
    const samples = nuclei(2, 96, 301);
    const scribbled = labeledNuclei(samples).map((im) => {
      const labels = im.labels.slice();
      for (let i = 0; i < labels.length; i++) if (Math.floor(i / im.width) % 7 !== 0) labels[i] = UNKNOWN;
      return { ...im, labels };
    });
    const unlabeledSamples = nuclei(4, 96, 302);
    const unlabeled = unlabeledSamples.map((s) => prepareImage(s.image));
    const { model, meta } = await finetune({
      images: scribbled, unlabeled, consistency: DEFAULT_CONSISTENCY, target, config: { ...arch, norm: 'batch' },
      steps: 60, batchSize: 8, patchSize: 64, learningRate: 3e-3,
    });
    expect(meta.consistency).toEqual(DEFAULT_CONSISTENCY);
    const test = nuclei(3, 96, 303);
    const scores = await Promise.all(test.map(async (s) => dice(classMap(await predictImage(model, prepareImage(s.image), { tile: 64, overlap: 16 })), s.foreground)));
    expect(mean(scores)).toBeGreaterThan(0.7);

    // Where the model is confident on an unlabeled image its pseudo-labels are nearly always right.
    for (const [i, im] of unlabeled.entries()) {
      const probs = tf.tidy(() => model.predict(tf.tensor4d(im.pixels, [1, im.height, im.width, 1])));
      const pseudo = pseudoLabels(probs.dataSync() as Float32Array, 1, DEFAULT_CONSISTENCY.threshold);
      probs.dispose();
      const truth = unlabeledSamples[i].foreground;
      const decided = pseudo.filter((l) => l !== UNKNOWN).length;
      const right = pseudo.filter((l, p) => l !== UNKNOWN && l === (truth[p] ? 1 : 0)).length;
      console.log(`unlabeled image ${i}: ${((100 * decided) / pseudo.length).toFixed(1)}% confident, ${((100 * right) / decided).toFixed(1)}% of them right`);
      expect(decided / pseudo.length).toBeGreaterThan(0.05);
      expect(right / decided).toBeGreaterThan(0.95);
    }
    // A step's batch: as many strong views as asked, each with its pseudo-labels.
    const batch = consistencyBatch(model, unlabeledPool(unlabeled, scribbled), 3, 64, DEFAULT_CONSISTENCY, new Rng(9));
    expect(batch.strong.shape).toEqual([3, 64, 64, 1]);
    expect(batch.labels.shape).toEqual([3, 64, 64]);
    expect(batch.confident).toBeGreaterThan(0);
    tf.dispose([batch.strong, batch.labels]);
    model.dispose();
  });
});
