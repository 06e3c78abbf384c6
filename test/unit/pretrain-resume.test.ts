import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { prepareImage } from '../../src/engine/input';
import { finetune } from '../../src/engine/train/finetune';
import { loadPretextWeights, pretrain } from '../../src/engine/train/pretrain';
import type { TrainingProgress } from '../../src/engine/train/loop';
import { engine, labeledNuclei, nuclei } from '../helpers/engine';

beforeAll(async () => {
  await engine();
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-resume-'));
const images = nuclei(3, 64, 31).map((s) => prepareImage(s.image));
const base = { tasks: ['inpainting'], images, config: { depth: 3, baseFilters: 4 }, steps: 10, batchSize: 2, patchSize: 32, seed: 4 };

test('progress reports step, loss, images/s and ETA', async () => {
  const seen: TrainingProgress[] = [];
  const r = await pretrain({ ...base, steps: 4, onProgress: (p) => seen.push(p) });
  expect(seen.map((p) => p.step)).toEqual([1, 2, 3, 4]);
  for (const p of seen) {
    expect(p.totalSteps).toBe(4);
    expect(p.loss).toBeGreaterThan(0);
    expect(p.imagesPerSecond).toBeGreaterThan(0);
    expect(p.etaSeconds).toBeGreaterThanOrEqual(0);
  }
  expect(seen[3].etaSeconds).toBe(0);
  r.model.dispose();
});

test('a cancelled run saves a checkpoint and resumes to exactly the weights of an uninterrupted run', async () => {
  const straight = await pretrain(base);
  const expected = new Map([...straight.model.weights()].map(([k, v]) => [k, v.dataSync().slice()]));
  straight.model.dispose();

  const file = path.join(tmp, 'pretext ü.mlckpt');
  const controller = new AbortController();
  const first = await pretrain({
    ...base, checkpointFile: file, checkpointEvery: 3,
    onProgress: (p) => { if (p.step === 6) controller.abort(); },
    signal: controller.signal,
  });
  expect(first.status).toBe('cancelled');
  expect(first.stepsDone).toBe(6);
  first.model.dispose();
  const saved = loadPretextWeights(file);
  expect(saved.meta.step).toBe(6);
  tf.dispose([...saved.weights.values()]);

  const resumed = await pretrain({ ...base, checkpointFile: file, resume: true });
  expect(resumed.status).toBe('completed');
  expect(resumed.stepsDone).toBe(10);
  expect(resumed.losses.length).toBe(4);
  for (const [name, v] of resumed.model.weights()) {
    const got = v.dataSync();
    const want = expected.get(name) as Float32Array;
    let maxDiff = 0;
    for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
    expect(maxDiff, name).toBeLessThan(1e-5);
  }
  resumed.model.dispose();
});

test('resuming with a different task is refused', async () => {
  const file = path.join(tmp, 'other.mlckpt');
  (await pretrain({ ...base, steps: 1, checkpointFile: file })).model.dispose();
  await expect(pretrain({ ...base, tasks: ['rotation'], checkpointFile: file, resume: true })).rejects.toThrow(/is for 'inpainting'/);
});

test('a run is resumed in the network it was started in, whatever the caller now asks for', async () => {
  // A pretraining stopped before maskloop's default network gained normalisation, resumed after.
  const file = path.join(tmp, 'plain.mlckpt');
  const controller = new AbortController();
  const stopped = await pretrain({ ...base, checkpointFile: file, checkpointEvery: 3, onProgress: (p) => { if (p.step === 3) controller.abort(); }, signal: controller.signal });
  expect(stopped.stepsDone).toBe(3);
  stopped.model.dispose();
  const resumed = await pretrain({ ...base, config: { ...base.config, norm: 'batch' }, checkpointFile: file, resume: true });
  expect(resumed.stepsDone).toBe(10);
  expect(resumed.model.config.norm).toBe('none');
  expect(resumed.losses).toHaveLength(7);
  resumed.model.dispose();

  // The same for a fine-tuning (a training candidate's checkpoint).
  const labeledFile = path.join(tmp, 'plain-finetune.mlckpt');
  const tuning = { images: labeledNuclei(nuclei(2, 64, 32)), target: { kind: 'semantic', classes: 1 } as const, steps: 6, batchSize: 2, patchSize: 32, checkpointFile: labeledFile, checkpointEvery: 3 };
  const stop = new AbortController();
  const cut = await finetune({ ...tuning, config: base.config, onProgress: (p) => { if (p.step === 3) stop.abort(); }, signal: stop.signal });
  cut.model.dispose();
  const continued = await finetune({ ...tuning, config: { ...base.config, norm: 'batch' }, resume: true });
  expect(continued.meta.step).toBe(6);
  expect(continued.meta.config.norm).toBe('none');
  continued.model.dispose();
});
