/**
 * Denoising while fine-tuning (DenoiSeg-style): the segmentation is the U-Net's own forward pass,
 * the unlabeled patches teach no segmentation, the reconstruction head is dropped from the model,
 * and an interrupted run continues with the head it had.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { DEFAULT_AUGMENT, UNKNOWN } from '../../src/engine/data';
import { classMap, predictImage } from '../../src/engine/infer/predict';
import { prepareImage } from '../../src/engine/input';
import { dice } from '../../src/engine/metrics';
import { UNet } from '../../src/engine/model/unet';
import { finetune } from '../../src/engine/train/finetune';
import { blindSpotBatch, DEFAULT_JOINT_DENOISING, denoisingHead, segmentAndDenoise, unlabeledPatch, unlabeledPlaces } from '../../src/engine/train/jointDenoising';
import { semiSupervised } from '../../src/engine/train/semi';
import { headOnFeatures } from '../../src/engine/pretext/task';
import { Rng } from '../../src/shared/rng';
import { engine, labeledNuclei, mean, nuclei } from '../helpers/engine';

beforeAll(async () => {
  await engine();
});

const arch = { depth: 3, baseFilters: 8 };
const target = { kind: 'semantic', classes: 1 } as const;

describe('joint denoising while fine-tuning', () => {
  test("a candidate's name says which semi-supervised recipes it uses, whatever its initialisation", () => {
    expect(semiSupervised('scratch')).toEqual({ base: 'scratch', semi: false, denoise: false });
    expect(semiSupervised('scratch+denoise')).toEqual({ base: 'scratch', semi: false, denoise: true });
    expect(semiSupervised('inpainting+rotation+semi')).toEqual({ base: 'inpainting+rotation', semi: true, denoise: false });
    expect(semiSupervised('denoising+denoise+semi')).toEqual({ base: 'denoising', semi: true, denoise: true });
  });

  test('unlabeled patches take a share of the batch: none without a pool, at least one with it, never all', () => {
    expect(unlabeledPlaces(8, DEFAULT_JOINT_DENOISING, 0)).toBe(0);
    expect(unlabeledPlaces(8, DEFAULT_JOINT_DENOISING, 5)).toBe(2);
    expect(unlabeledPlaces(2, { ...DEFAULT_JOINT_DENOISING, unlabeledShare: 0.1 }, 5)).toBe(1);
    expect(unlabeledPlaces(4, { ...DEFAULT_JOINT_DENOISING, unlabeledShare: 1 }, 5)).toBe(3);
    expect(unlabeledPlaces(1, DEFAULT_JOINT_DENOISING, 5)).toBe(0);
  });

  test("an unlabeled image's patch is all unknown; a sparse label's keeps its drawn pixels where they moved", () => {
    const [image] = nuclei(1, 48, 5).map((s) => prepareImage(s.image));
    const blank = unlabeledPatch([image], 32, 1, new Rng(2), DEFAULT_AUGMENT);
    expect(blank.labels.every((l) => l === UNKNOWN)).toBe(true);
    // The label marks each pixel's own intensity (quantised), so after flips and rotations it must still match the pixel under it.
    const labels = Uint8Array.from(image.pixels, (v, i) => (i % 3 === 0 ? Math.min(200, Math.round(v * 100)) : UNKNOWN));
    for (let seed = 1; seed < 6; seed++) {
      const patch = unlabeledPatch([{ ...image, labels }], 32, 1, new Rng(seed), { ...DEFAULT_AUGMENT, intensity: 0, noise: 0 });
      const drawn = [...patch.labels.keys()].filter((i) => patch.labels[i] !== UNKNOWN);
      expect(drawn.length).toBeGreaterThan(32 * 32 * 0.2);
      for (const i of drawn) expect(patch.labels[i]).toBe(Math.min(200, Math.round(patch.pixels[i] * 100)));
    }
  });

  test('the segmentation comes from the same forward pass as plain training, and the denoising loss is scored at the blind spots only', () => {
    const model = UNet.create({ ...arch, inChannels: 1, outChannels: 1, norm: 'none' }, 3);
    const head = denoisingHead(model, 3);
    const images = nuclei(2, 32, 8).map((s) => prepareImage(s.image).pixels);
    const batch = blindSpotBatch(images, 32, 1, new Rng(4));
    const { logits, denoisingLoss } = segmentAndDenoise(model, head, batch);
    const forward = model.forward(batch.inputs, true);
    expect(Array.from(logits.dataSync())).toEqual(Array.from(forward.dataSync()));
    // Scored at the blind spots only, against the batch standardised to zero mean and unit variance.
    const reconstruction = headOnFeatures(model.decode(model.encode(batch.inputs, true), true), head, 'pretext.denoising.head').dataSync();
    const targets = Array.from(batch.targets.dataSync());
    const blind = batch.weights!.dataSync();
    const mean = targets.reduce((a, v) => a + v, 0) / targets.length;
    const sd = Math.sqrt(targets.reduce((a, v) => a + (v - mean) ** 2, 0) / targets.length);
    let sum = 0;
    let count = 0;
    for (let i = 0; i < targets.length; i++) {
      if (!blind[i]) continue;
      sum += (reconstruction[i] - (targets[i] - mean) / sd) ** 2;
      count++;
    }
    expect(count).toBeGreaterThan(0);
    expect(denoisingLoss.dataSync()[0]).toBeCloseTo(sum / count, 4);
    tf.dispose([logits, denoisingLoss, forward, batch.inputs, batch.targets, batch.weights!, ...head.values()]);
    model.dispose();
  });

  test('a pretrained denoising head carries over; a head of another shape is left fresh', () => {
    const model = UNet.create({ ...arch, inChannels: 1, outChannels: 1 }, 3);
    const fresh = denoisingHead(model, 3);
    const pretrained = new Map([...fresh].map(([name, v]) => [name, tf.fill(v.shape, 0.25)]));
    const carried = denoisingHead(model, 4, pretrained);
    for (const v of carried.values()) expect(v.dataSync().every((x) => x === 0.25)).toBe(true);
    const wrong = new Map([...fresh].map(([name, v]) => [name, tf.fill([...v.shape, 2], 0.25)]));
    const kept = denoisingHead(model, 4, wrong);
    for (const v of kept.values()) expect(v.dataSync().some((x) => x !== 0.25)).toBe(true);
    tf.dispose([...fresh.values(), ...pretrained.values(), ...carried.values(), ...wrong.values(), ...kept.values()]);
    model.dispose();
  });

  test('with one labeled image and unlabeled ones, the model segments held-out images; it keeps no denoising weights and leaks no tensors', async () => {
    const train = labeledNuclei(nuclei(1, 96, 401));
    const unlabeled = nuclei(4, 96, 402).map((s) => prepareImage(s.image));
    const before = tf.memory().numTensors;
    const { model, meta } = await finetune({
      images: train, unlabeled, jointDenoising: DEFAULT_JOINT_DENOISING, target, config: { ...arch, norm: 'batch' },
      steps: 60, batchSize: 8, patchSize: 64, learningRate: 3e-3,
    });
    expect(meta.jointDenoising).toEqual(DEFAULT_JOINT_DENOISING);
    expect([...model.weights().keys()].filter((name) => name.startsWith('pretext.'))).toEqual([]);
    const test = nuclei(3, 96, 403);
    const scores = await Promise.all(test.map(async (s) => dice(classMap(await predictImage(model, prepareImage(s.image), { tile: 64, overlap: 16 })), s.foreground)));
    expect(mean(scores)).toBeGreaterThan(0.7);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('an interrupted run continues with the denoising head it had, as if never stopped', async () => {
    const options = {
      images: labeledNuclei(nuclei(1, 64, 501)), unlabeled: nuclei(2, 64, 502).map((s) => prepareImage(s.image)),
      jointDenoising: DEFAULT_JOINT_DENOISING, target, config: { ...arch, norm: 'none' as const }, steps: 8, batchSize: 4, patchSize: 32, seed: 6,
    };
    const whole = await finetune(options);
    const checkpointFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-denoise-')), 'run.mlckpt');
    const stop = new AbortController();
    const cut = await finetune({ ...options, checkpointFile, checkpointEvery: 2, signal: stop.signal, onProgress: (p) => { if (p.step === 4) stop.abort(); } });
    expect(cut.status).toBe('cancelled');
    cut.model.dispose();
    const resumed = await finetune({ ...options, checkpointFile, resume: true });
    expect(resumed.losses.length).toBeLessThan(whole.losses.length);
    expect(resumed.meta.losses.map((l) => l.toFixed(5))).toEqual(whole.losses.map((l) => l.toFixed(5)));
    whole.model.dispose();
    resumed.model.dispose();
  });
});
