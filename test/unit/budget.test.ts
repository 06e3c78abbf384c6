/** Budgets: the steps a plan buys, and a loop given time instead of steps. */
import { beforeAll, describe, expect, it } from 'vitest';
import { MIN_PLANNED_STEPS, planSteps, stepsWithin } from '../../src/engine/train/budget';
import { DEFAULT_CONSISTENCY } from '../../src/engine/train/consistency';
import { prepareImage } from '../../src/engine/input';
import { engine, labeledNuclei, nuclei } from '../helpers/engine';
import { BEST_CHECK_EVERY } from '../../src/engine/train/finetune';
import { runLoop } from '../../src/engine/train/loop';
import { raceCost, RACE_SHARE } from '../../src/engine/train/select';

describe('stepsWithin', () => {
  it('splits the time over the candidates and leaves room for the val passes', () => {
    // Without val passes: 60 s at 0.5 s a step over two candidates that each train to the end.
    expect(stepsWithin(60, 2, 0.5, 0, true, false)).toBe(60);
    // Two that race: both train a quarter of the schedule, the leader the rest (1.25 runs in all).
    expect(stepsWithin(60, 2, 0.5, 0)).toBe(Math.floor(60 / raceCost(2) / 0.5));
    expect(raceCost(2)).toBe(1 + RACE_SHARE);
    // A val pass of 1 s: nine for the run (the promoted model, eight for test-time augmentation),
    // three per candidate, one every BEST_CHECK_EVERY steps.
    const steps = stepsWithin(120, 1, 0.5, 1);
    expect(steps).toBe(Math.floor((120 - 9 - 3) / (0.5 + 1 / BEST_CHECK_EVERY)));
    const spent = steps * 0.5 + (steps / BEST_CHECK_EVERY + 12) * 1;
    expect(spent).toBeLessThanOrEqual(120);
    expect(spent + 0.5 + 1 / BEST_CHECK_EVERY).toBeGreaterThan(120);
    // A retraining keeps its parent's test-time augmentation decision: eight passes fewer.
    expect(stepsWithin(120, 1, 0.5, 1, false)).toBe(Math.floor((120 - 1 - 3) / (0.5 + 1 / BEST_CHECK_EVERY)));
  });

  it('never plans fewer than the floor, and refuses a plan without candidates', () => {
    expect(stepsWithin(1, 3, 2, 5)).toBe(MIN_PLANNED_STEPS);
    expect(stepsWithin(-10, 1, 1, 1)).toBe(MIN_PLANNED_STEPS);
    expect(() => stepsWithin(60, 0, 1, 1)).toThrow(/at least one candidate/);
  });
});

describe('planSteps', () => {
  beforeAll(async () => {
    await engine();
  });

  it('prices a consistency step by itself: it costs more, and the same share of the budget buys fewer steps', async () => {
    const images = labeledNuclei(nuclei(2, 64, 5));
    const unlabeled = nuclei(2, 64, 6).map((s) => prepareImage(s.image));
    const plan = await planSteps({
      budgetSeconds: 3600, candidates: 2, images, valImages: images.slice(0, 1), target: { kind: 'semantic', classes: 1 },
      config: { depth: 2, baseFilters: 8 }, batchSize: 8, patchSize: 64, consistency: { options: DEFAULT_CONSISTENCY, unlabeled },
    });
    // Each kind of step is priced by its own measured time (which is dearer is the machine's to say,
    // so the test does not assert it): the slower one buys no more steps.
    expect(plan.consistency!.secondsPerStep).toBeGreaterThan(0);
    expect(plan.consistency!.steps).toBeGreaterThan(MIN_PLANNED_STEPS);
    if (plan.consistency!.secondsPerStep > plan.secondsPerStep) expect(plan.consistency!.steps).toBeLessThanOrEqual(plan.steps);
    else expect(plan.consistency!.steps).toBeGreaterThanOrEqual(plan.steps);
    // Without unlabeled images nothing is planned for it.
    const plain = await planSteps({ budgetSeconds: 60, candidates: 1, images, valImages: [], target: { kind: 'semantic', classes: 1 }, config: { depth: 2, baseFilters: 8 }, batchSize: 2, patchSize: 32 });
    expect(plain.consistency).toBeUndefined();
  });
});

describe('runLoop with a time budget', () => {
  it('ends completed at the first step after its time, reporting an estimated total', async () => {
    const totals: number[] = [];
    const result = await runLoop(
      async () => {
        await new Promise((r) => setTimeout(r, 5));
        return 1;
      },
      { phase: 'test', totalSteps: 1_000_000, seconds: 0.05, imagesPerStep: 1, onProgress: (p) => totals.push(p.totalSteps) },
    );
    expect(result.status).toBe('completed');
    expect(result.stepsDone).toBeGreaterThanOrEqual(1);
    // Each step sleeps at least 5 ms, so 0.05 s holds at most 11 of them (the last one crosses it).
    expect(result.stepsDone).toBeLessThanOrEqual(11);
    expect(totals.at(-1)).toBe(result.stepsDone);
    expect(Math.max(...totals)).toBeLessThan(1_000_000);
  });
});
