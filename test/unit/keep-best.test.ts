/**
 * Fine-tuning keeps the weights that scored best on the val images, not the last ones: a run
 * that gets worse on held-out images returns the earlier, better weights, and an interrupted run
 * remembers them through its checkpoint.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { UNKNOWN } from '../../src/engine/data';
import { heldOutDice } from '../../src/engine/train/calibrate';
import { BEST_CHECK_EVERY, finetune, WARM_START_RATE, type FinetuneOptions, type Initialisation } from '../../src/engine/train/finetune';
import { engine, labeledNuclei, nuclei } from '../helpers/engine';

beforeAll(async () => {
  await engine();
});

const arch = { depth: 3, baseFilters: 8 };
const binary = { kind: 'semantic', classes: 1 } as const;
const images = labeledNuclei(nuclei(4, 64, 71));
const val = images.slice(2);
const steps = 3 * BEST_CHECK_EVERY;

describe('keeping the best weights on val', () => {
  let start: Initialisation;
  // A model that segments well, then trained on inverted labels: on val it can only get worse.
  // It continues a segmentation model, so finetune takes WARM_START_RATE of the rate given.
  const spoiling = (): FinetuneOptions => ({
    images: images.slice(0, 2).map((im) => ({ ...im, labels: im.labels.map((v) => (v === UNKNOWN ? v : 1 - v)) })),
    target: binary, config: arch, init: start, steps, batchSize: 2, patchSize: 64, learningRate: 3e-5 / WARM_START_RATE, schedule: 'constant', valImages: val, calibrate: false,
  });

  beforeAll(async () => {
    const good = await finetune({ images: images.slice(0, 2), target: binary, config: arch, steps: 60, batchSize: 4, patchSize: 64, learningRate: 3e-3 });
    start = { name: 'good', weights: good.model.snapshot(), trained: 'segmentation' };
    good.model.dispose();
  });

  test('a run that gets worse on val returns its best checked weights, and they score what the check measured', async () => {
    const last = await finetune({ ...spoiling(), keepBest: false });
    const best = await finetune(spoiling());
    const lastDice = await heldOutDice(last.model, binary, val, false);
    const bestDice = await heldOutDice(best.model, binary, val, false);
    expect(last.meta.best).toBeUndefined();
    expect(best.meta.step).toBe(steps);
    expect(best.meta.best?.step).toBeLessThan(steps);
    expect(best.meta.best!.step % BEST_CHECK_EVERY).toBe(0);
    expect(bestDice).toBeCloseTo(best.meta.best!.valDice, 6);
    expect(bestDice).toBeGreaterThan(lastDice + 0.05);
    last.model.dispose();
    best.model.dispose();
  });

  test('an interrupted run keeps the best weights from before the interruption', async () => {
    const whole = await finetune(spoiling());
    const checkpointFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-best-')), 'run.mlckpt');
    const stop = new AbortController();
    const interruptAt = BEST_CHECK_EVERY + 25;
    const cut = await finetune({ ...spoiling(), checkpointFile, checkpointEvery: 25, signal: stop.signal, onProgress: (p) => { if (p.step === interruptAt) stop.abort(); } });
    expect(cut.status).toBe('cancelled');
    cut.model.dispose();
    const resumed = await finetune({ ...spoiling(), checkpointFile, resume: true });
    expect(resumed.meta.best?.step).toBe(whole.meta.best?.step);
    expect(resumed.meta.best?.valDice).toBeCloseTo(whole.meta.best!.valDice, 4);
    expect(await heldOutDice(resumed.model, binary, val, false)).toBeCloseTo(whole.meta.best!.valDice, 4);
    whole.model.dispose();
    resumed.model.dispose();
  });
});
