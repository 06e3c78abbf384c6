/**
 * The evaluations train with the steps the product's budgets buy on this machine: measured once
 * per output folder, kept in plan.json, reused by a continued evaluation and measured again for
 * other settings.
 */
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engine } from '../helpers/engine';
import { evalBudgets } from '../../src/eval/budgets';
import { prepareDataset, type EvalTraining } from '../../src/eval/setup';
import { DEFAULT_ARCH } from '../../src/engine/model/unet';
import { MIN_PLANNED_STEPS } from '../../src/engine/train/budget';
import type { Dataset } from '../../src/imaging/datasets';
import { syntheticNuclei } from '../../src/imaging/synthetic';
import { TRAINING } from '../../src/shared/training';

const dir = fs.mkdtempSync(path.join(tmpdir(), 'maskloop-evalplan-'));
beforeAll(engine);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function dataset(): Dataset {
  const sample = (seed: number) => {
    const s = syntheticNuclei({ width: 64, height: 64, bitDepth: 8, seed });
    return { name: `n${seed}`, image: s.image, foreground: s.foreground };
  };
  return { name: 'synthetic', root: dir, polarity: 'bright', splits: { train: [sample(1), sample(2)], val: [sample(3)], test: [sample(4)] }, unlabeled: [{ name: 'u5', image: sample(5).image }] } as unknown as Dataset;
}

const training: EvalTraining = { arch: DEFAULT_ARCH, batchSize: 2, patchSize: 32, learningRate: TRAINING.learningRate, schedule: 'cosine', pretrainLearningRate: TRAINING.pretrainLearningRate };

describe('evalBudgets', () => {
  it('measures what each budget buys, keeps it, and measures again for other settings', async () => {
    const ds = prepareDataset(dataset(), 'semantic');
    const plan = await evalBudgets(dir, ds, training, 2, ds.val, false);
    expect(plan.firstModel).toMatchObject({ budgetSeconds: TRAINING.firstModelSeconds, candidates: 2 });
    expect(plan.retrain).toMatchObject({ budgetSeconds: TRAINING.retrainSeconds, candidates: 1 });
    expect(plan.firstModel.steps).toBeGreaterThanOrEqual(MIN_PLANNED_STEPS);
    // No method trains with consistency: its steps are not measured.
    expect(plan.firstModel.consistency).toBeUndefined();
    expect(plan.pretrain.steps).toBe(Math.max(1, Math.floor(TRAINING.pretrainSeconds / plan.pretrain.secondsPerStep)));
    // The stored plan is what a continued evaluation trains with, whatever this machine measures now.
    const file = path.join(dir, 'plan.json');
    const stored = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...stored, retrain: { ...stored.retrain, steps: 12345 } }));
    expect((await evalBudgets(dir, ds, training, 2, ds.val, false)).retrain.steps).toBe(12345);
    // Another number of candidates is another plan.
    const other = await evalBudgets(dir, ds, training, 3, ds.val, false);
    expect(other.firstModel.candidates).toBe(3);
    expect(other.retrain.steps).not.toBe(12345);
    // So is one that compares consistency training, whose steps it plans on the unlabeled images.
    const semi = await evalBudgets(dir, ds, training, 3, ds.val, true);
    expect(semi.key).not.toBe(other.key);
    expect(semi.firstModel.consistency?.steps).toBeGreaterThanOrEqual(1);
    expect(semi.retrain.consistency?.steps).toBeGreaterThanOrEqual(1);
  });
});
