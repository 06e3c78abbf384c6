/**
 * Training by wall-clock budget on a real project: a budget is turned into steps by a measured
 * probe and recorded with the run; a first model chooses among initialisations, later trainings
 * continue the promoted model (or choose again when asked); an interrupted training resumes with
 * the steps and learning rate its run recorded, whatever the new request says.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIN_PLANNED_STEPS } from '../../src/engine/train/budget';
import { syntheticNuclei } from '../../src/imaging/synthetic';
import { importImages } from '../../src/jobs/workflows/importImages';
import { trainModel } from '../../src/jobs/workflows/trainModel';
import { pretrainEncoder } from '../../src/jobs/workflows/pretrainEncoder';
import { VAL_CHOSEN, type ProjectEvaluation } from '../../src/jobs/workflows/evaluateProject';
import { spawnSync } from 'node:child_process';
import { createProject, type Project } from '../../src/store';

const bin = new URL('../../src/cli/bin.mjs', import.meta.url).pathname;
const root = mkdtempSync(path.join(tmpdir(), 'maskloop-budget-'));
const SIZE = 96;
const target = { kind: 'semantic', classes: 1 } as const;
let project: Project;

beforeAll(async () => {
  const folder = path.join(root, 'images');
  mkdirSync(folder);
  const truths: Uint8Array[] = [];
  for (let i = 0; i < 4; i++) {
    const sample = syntheticNuclei({ width: SIZE, height: SIZE, bitDepth: 8, seed: 50 + i });
    await sharp(Uint8Array.from(sample.image.data as Uint8Array), { raw: { width: SIZE, height: SIZE, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(folder, `n${i}.png`));
    truths.push(sample.foreground);
  }
  project = createProject(path.join(root, 'project'), { name: 'budget' });
  await importImages(project, { folder, split: 'unassigned' });
  for (const image of project.listImages()) {
    const index = Number(path.basename(image.path).slice(1, 2));
    project.addLabelVersion({ imageId: image.id, mask: { width: SIZE, height: SIZE, data: truths[index] }, source: 'manual' });
  }
});
afterAll(() => {
  project?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('a project measured on its own labels', () => {
  it('maskloop eval --project cross-validates over the labeled images: each initialisation and the val-chosen one', async () => {
    const child = spawnSync(process.execPath, [bin, 'eval', '--project', project.dir, '--folds', '3', '--steps', '4', '--json'], { encoding: 'utf8' });
    expect(child.status, child.stderr).toBe(0);
    const result = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as ProjectEvaluation & { event: string };
    expect(result).toMatchObject({ event: 'evaluated', steps: 4, plan: null, cancelled: false });
    expect(result.folds).toHaveLength(3);
    for (const fold of result.folds) {
      expect(fold.trainImages + fold.valImages + fold.testImages).toBe(4);
      expect(fold.testImages).toBeGreaterThan(0);
      expect(fold.scores.scratch.dice).toBeGreaterThanOrEqual(0);
      expect(fold.scores.scratch.dice).toBeLessThanOrEqual(1);
      expect(fold.chosen).toBe('scratch');
    }
    // Every image is test exactly once.
    expect(result.folds.reduce((a, f) => a + f.testImages, 0)).toBe(4);
    expect(result.summary.map((l) => l.name)).toEqual(['scratch', VAL_CHOSEN]);
    expect(result.summary[1].dice.mean).toBeCloseTo(result.summary[0].dice.mean, 10);
    // Nothing is written to the project.
    expect(project.listRuns({ kind: 'train' })).toHaveLength(0);
  });
});

describe('training within a budget', () => {
  it('plans its steps from a probe and records the plan', async () => {
    const result = await trainModel(project, { budgetSeconds: 2, target, when: 'now' });
    if (result.status !== 'completed') throw new Error(`training ${result.status}`);
    // Two seconds buy less than the floor, so the plan runs the floor rather than noise.
    expect(result.plan).toMatchObject({ budgetSeconds: 2, candidates: 1, steps: MIN_PLANNED_STEPS });
    expect(result.plan!.secondsPerStep).toBeGreaterThan(0);
    expect(result.plan!.secondsPerValCheck).toBeGreaterThan(0);
    expect(result.candidates.map((c) => c.name)).toEqual(['scratch']);
    const run = project.getRun(result.runId)!;
    expect(run.config).toMatchObject({ steps: MIN_PLANNED_STEPS, budgetSeconds: 2, learningRate: 0.002, warmStartFrom: null });
    expect(run.total).toBe(MIN_PLANNED_STEPS);
    expect(result.promoted).toBe(true);
  });

  it('continues the promoted model, or chooses again when told to', async () => {
    const first = project.promotedModel()!;
    const warm = await trainModel(project, { steps: 6, target, when: 'now' });
    if (warm.status !== 'completed') throw new Error(`training ${warm.status}`);
    expect(warm.candidates.map((c) => c.name)).toEqual([`from #${first.id}`]);
    expect(project.getRun(warm.runId)!.config).toMatchObject({ steps: 6, budgetSeconds: null, warmStartFrom: first.id });
    const model = project.listModels({ kind: 'segmentation' }).find((m) => m.id === warm.modelId)!;
    expect(model.parentId).toBe(first.id);

    const fresh = await trainModel(project, { steps: 6, target, warmStart: false, when: 'now' });
    if (fresh.status !== 'completed') throw new Error(`training ${fresh.status}`);
    expect(fresh.candidates.map((c) => c.name)).toEqual(['scratch']);
    expect(project.getRun(fresh.runId)!.config.warmStartFrom).toBeNull();
  });

  it('resumes an interrupted training with the settings its run recorded', async () => {
    const abort = new AbortController();
    const stopped = await trainModel(project, { steps: 16, learningRate: 0.001, target, warmStart: false, when: 'now' }, {
      signal: abort.signal,
      onProgress: (p) => {
        if (p.step >= 5) abort.abort();
      },
    });
    if (stopped.status !== 'cancelled') throw new Error(`training ${stopped.status}`);
    const resumed = await trainModel(project, { steps: 7, learningRate: 0.5, target, when: 'now', resume: true });
    if (resumed.status !== 'completed') throw new Error(`training ${resumed.status}`);
    expect(resumed.steps).toBe(16);
    // The interrupted run chose again rather than continue, and so does its continuation.
    expect(resumed.candidates.map((c) => c.name)).toEqual(['scratch']);
    expect(project.getRun(resumed.runId)!.config).toMatchObject({ steps: 16, learningRate: 0.001, resumes: stopped.runId });
  });
});

describe('a project with unlabeled images', () => {
  it('tries consistency training as a first-model candidate, a warm start keeps what was chosen, and a pretraining says what it is worth', async () => {
    const folder = path.join(root, 'semi images');
    mkdirSync(folder);
    const truths = new Map<string, Uint8Array>();
    for (let i = 0; i < 6; i++) {
      const sample = syntheticNuclei({ width: SIZE, height: SIZE, bitDepth: 8, seed: 70 + i });
      await sharp(Uint8Array.from(sample.image.data as Uint8Array), { raw: { width: SIZE, height: SIZE, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(folder, `s${i}.png`));
      truths.set(`s${i}.png`, sample.foreground);
    }
    const semiProject = createProject(path.join(root, 'semi project'), { name: 'semi' });
    try {
      await importImages(semiProject, { folder, split: 'unassigned' });
      // Three labeled (two to train, one to judge), three without labels.
      for (const image of semiProject.listImages().filter((im) => ['s0.png', 's1.png', 's2.png'].includes(path.basename(im.path)))) {
        semiProject.addLabelVersion({ imageId: image.id, mask: { width: SIZE, height: SIZE, data: truths.get(path.basename(image.path))! }, source: 'manual' });
      }
      const progress: number[] = [];
      // Given steps serve every candidate (a budget is priced per candidate: budget.test.ts).
      const first = await trainModel(semiProject, { steps: 6, target, when: 'now', semiSupervised: true }, { onProgress: (p) => progress.push(p.totalSteps) });
      if (first.status !== 'completed') throw new Error(`training ${first.status}`);
      expect(first.candidates.map((c) => c.name)).toEqual(['scratch', 'scratch+semi']);
      expect([first.steps, first.semiSteps]).toEqual([6, 6]);
      // One run's progress covers the race: both candidates to step 2, the leader on to 6.
      expect(new Set(progress)).toEqual(new Set([2 + 2 + 4]));
      expect(first.candidates.map((c) => c.stoppedAt)).toEqual(first.candidates.map((c) => (c.name === first.init ? undefined : 2)));
      expect(semiProject.getRun(first.runId)!.config).toMatchObject({ steps: first.steps, semiSteps: first.semiSteps });
      const model = semiProject.listModels({ kind: 'segmentation' }).find((m) => m.id === first.modelId)!;
      expect(model.valMetrics?.semiSupervised).toBe(first.init === 'scratch+semi');
      expect(model.pretextInit).toBeNull();

      const warm = await trainModel(semiProject, { steps: 4, target, when: 'now', semiSupervised: true });
      if (warm.status !== 'completed') throw new Error(`training ${warm.status}`);
      expect(warm.candidates.map((c) => c.name)).toEqual([`from #${first.modelId}${first.init === 'scratch+semi' ? '+semi' : ''}`]);
      expect(warm.semiSteps).toBe(first.init === 'scratch+semi' ? 4 : null);
      // Without asking for it, a project learns from its labels only.
      const labelsOnly = await trainModel(semiProject, { steps: 2, target, when: 'now', warmStart: false });
      if (labelsOnly.status !== 'completed') throw new Error(`training ${labelsOnly.status}`);
      expect(labelsOnly.candidates.map((c) => c.name)).toEqual(['scratch']);
      expect(semiProject.getRun(labelsOnly.runId)!.config.semiSupervised).toBe(false);

      // A pretraining where labels exist says what it is worth: a quick fine-tune from scratch and from it, scored on val.
      const pretrained = await pretrainEncoder(semiProject, { tasks: ['masked'], steps: 4, probeSeconds: 1 });
      expect(pretrained.status).toBe('completed');
      expect(pretrained.probe!.scores.map((s) => s.name)).toEqual(['scratch', 'masked']);
      expect(pretrained.probe!.steps).toBe(MIN_PLANNED_STEPS);
      for (const s of pretrained.probe!.scores) expect(s.dice).toBeGreaterThanOrEqual(0);
      // A project this small is held whole: the pretraining learned from every image.
      const projectImages = semiProject.listImages().length;
      expect(pretrained.imagesSeen).toBe(projectImages);
      expect(semiProject.getRun(pretrained.runId)!.message).toContain(`, from ${projectImages} of the project's ${projectImages} images;`);
      expect(semiProject.getRun(pretrained.runId)!.message).toMatch(/^pretext checkpoint saved as model #\d+: final pretext loss \d\.\d{4}, from \d+ of the project's \d+ images; a 1 s fine-tune \(20 steps each\) from it: val Dice \d\.\d{4}, from scratch: val Dice \d\.\d{4}$/);
      const pretext = semiProject.listModels({ kind: 'pretext' }).find((m) => m.id === pretrained.modelId)!;
      expect(pretext.valMetrics).toMatchObject({ probeSteps: MIN_PLANNED_STEPS, candidates: [{ name: 'scratch' }, { name: 'masked' }] });
    } finally {
      semiProject.close();
    }
  });
});
