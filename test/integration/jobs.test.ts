/**
 * Jobs in the real job process, driven through the real server: the retrain policy starting a
 * training after N labels, promotion only when better on val with the comparison exposed,
 * rollback, proposals from the new model, cancel, and a pretraining killed for real (server and
 * job process, SIGKILL) that resumes from its checkpoint after a restart.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMask } from '../../src/imaging/decode';
import type { AppEvent, ImageSummary, JobInfo } from '../../src/shared';
import { DATA, fakeRenderer, startServerProcess, tempDir, type ServerProcess } from '../helpers/server';

const isbi = path.join(DATA, 'isbi2012-em');
const haveData = fs.existsSync(path.join(isbi, 'images'));
if (!haveData) console.warn(`jobs tests skipped: ${isbi} is missing (set MASKLOOP_DATA)`);

// Few steps: the tests check the workflow, not the accuracy (training here runs at 3-20 img/s).
const STEPS = 8;
const SLOW = 300_000;

describe.skipIf(!haveData)('jobs in the job process', () => {
  let server: ServerProcess;
  let projectDir: string;
  const state = tempDir('maskloop-state-');
  const renderer = fakeRenderer();
  const env = { MASKLOOP_AUTO_TRAIN_STEPS: String(STEPS) };
  let images: ImageSummary[] = [];

  beforeAll(async () => {
    // Eight slices are plenty for the workflow; a temp folder keeps the import and prelabel short.
    const folder = tempDir('maskloop-em-');
    for (let i = 0; i < 8; i++) fs.copyFileSync(path.join(isbi, 'images', `slice0${i}.png`), path.join(folder, `slice0${i}.png`));
    projectDir = path.join(tempDir('maskloop-jobs-'), 'project');
    server = await startServerProcess({ state, renderer, env });
    await server.call('project:create', { dir: projectDir });
    const job = await server.call('jobs:start', { kind: 'import', folder });
    expect(await server.waitForJob(job.jobId, undefined, SLOW)).toMatchObject({ state: 'completed' });
    images = (await server.call('images:list', { sort: 'path' })).items;
    expect(images).toHaveLength(8);
  }, SLOW);
  afterAll(async () => {
    await server?.stop();
  });

  /** ISBI masks: 0 = membrane, the foreground class. */
  async function membraneLabel(image: ImageSummary): Promise<Uint8Array> {
    const mask = await decodeMask(path.join(isbi, 'masks', path.basename(image.path)));
    return Uint8Array.from(mask.data, (v) => (v === 0 ? 1 : 0));
  }

  const jobEvents = (kind: JobInfo['kind']) => server.events.flatMap((e: AppEvent) => (e.type === 'job' && e.job.kind === kind ? [e.job] : []));

  it('retrains by itself after N new labels, promotes the first model, then refreshes proposals', async () => {
    await server.call('project:setSettings', { autoRetrainAfterLabels: 3 });
    for (const image of images.slice(0, 3)) {
      expect(jobEvents('train')).toHaveLength(0);
      await server.call('labels:save', { imageId: image.id, mask: { width: 512, height: 512, data: await membraneLabel(image) }, source: 'manual', timeSpentMs: 60_000, pixelsChanged: 1000 });
    }
    const started = (await server.waitForEvent((e) => e.type === 'job' && e.job.kind === 'train', 10_000)) as Extract<AppEvent, { type: 'job' }>;
    expect(started.job.request).toMatchObject({ kind: 'train', steps: STEPS, when: 'ifDue' });
    const trained = await server.waitForJob(started.job.jobId, undefined, SLOW);
    expect(trained).toMatchObject({ state: 'completed', trainOutcome: { promoted: true, incumbentDice: null } });
    // Labels only by default, though five images have none.
    const candidates = trained.trainOutcome!.candidates.map((c) => c.name);
    expect(candidates).toEqual(['scratch']);
    // A few steps only: the number is real but not yet good.
    expect(trained.trainOutcome!.valDice).toBeGreaterThanOrEqual(0);
    const progress = jobEvents('train').filter((j) => j.progress);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)!.progress).toMatchObject({ phase: expect.stringMatching(/^finetune/), total: STEPS * candidates.length, etaSeconds: expect.any(Number), rate: expect.any(Number) });
    expect(progress.at(-1)!.backend).toMatch(/native|wasm|cpu|tensorflow/);

    const prelabel = (await server.waitForEvent((e) => e.type === 'job' && e.job.kind === 'prelabel', 10_000)) as Extract<AppEvent, { type: 'job' }>;
    expect(await server.waitForJob(prelabel.job.jobId, undefined, SLOW)).toMatchObject({ state: 'completed', message: expect.stringMatching(/^8 proposal/) });
    const summary = await server.call('project:summary', {});
    expect(summary.retrain).toMatchObject({ newLabels: 0, needed: 3, due: false });
    expect(summary.promotedModel).toMatchObject({ id: trained.trainOutcome!.modelId, valDice: trained.trainOutcome!.valDice, trainImages: 2, valImages: 1 });
    const next = await server.call('images:list', { sort: 'labelNext' });
    const open = next.items.filter((im) => im.status === 'proposed');
    expect(open).toHaveLength(5);
    expect(next.items.slice(0, 5).map((im) => im.status)).toEqual(Array(5).fill('proposed'));
    const scores = open.map((im) => im.uncertaintyScore!);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
  }, SLOW);

  it('records accepted and rejected proposals', async () => {
    const [first, second] = (await server.call('images:list', { sort: 'labelNext' })).items;
    const accepted = await server.call('proposals:decide', { imageId: first.id, decision: 'accept', timeSpentMs: 5000 });
    expect(accepted).toMatchObject({ version: 1, source: 'accepted_proposal' });
    expect(await server.call('proposals:decide', { imageId: second.id, decision: 'reject', timeSpentMs: 2000 })).toBeNull();
    const stats = await server.call('stats:progress', {});
    expect(stats.annotation.byKind.accept).toMatchObject({ count: 1, timeMs: 5000 });
    expect(stats.annotation.byKind.reject).toMatchObject({ count: 1, timeMs: 2000 });
    expect(stats.annotation.byKind.skip.count).toBe(0);
    // Three images from scratch at 60 s each, one accepted in 5 s.
    expect(stats.annotation.estimatedTimeSavedMs).toBe(55_000);
    expect(stats.curve).toHaveLength(1);
  });

  it('retrains on demand, shows the comparison with the promoted model, and rolls back', async () => {
    await server.call('project:setSettings', { autoRetrainAfterLabels: 0 });
    const job = await server.call('jobs:start', { kind: 'train', steps: STEPS });
    const done = await server.waitForJob(job.jobId, undefined, SLOW);
    expect(done.state).toBe('completed');
    const outcome = done.trainOutcome!;
    // Progress covers the whole run, every candidate after the other, each under its own phase.
    const progress = jobEvents('train').filter((j) => j.jobId === job.jobId && j.progress).map((j) => j.progress!);
    expect(new Set(progress.map((p) => p.total))).toEqual(new Set([STEPS * outcome.candidates.length]));
    expect(new Set(progress.map((p) => p.phase))).toEqual(new Set(outcome.candidates.map((c) => `finetune:${c.name}`)));
    expect(progress.at(-1)!.step).toBe(STEPS * outcome.candidates.length);
    const models = await server.call('models:list', {});
    const [newest, first] = models;
    expect(newest).toMatchObject({ id: outcome.modelId, incumbentId: first.id, incumbentDice: outcome.incumbentDice, valDice: outcome.valDice, promoted: outcome.promoted });
    // One more labeled image than the first model had: promoted unless val says it is clearly worse.
    expect(newest.decision).toBe(outcome.decision);
    expect(outcome.decision).toMatch(outcome.promoted ? /^promoted: / : /^kept model #\d+: .* more than 0\.02 below/);
    expect(outcome.promoted).toBe(outcome.valDice >= outcome.incumbentDice! - 0.02);
    if (!outcome.promoted) await server.call('models:promote', { modelId: newest.id });
    expect((await server.call('project:summary', {})).rollbackTo).toBe(first.id);
    const rolled = await server.call('models:rollback', {});
    expect(rolled).toMatchObject({ id: first.id, promoted: true });
    const summary = await server.call('project:summary', {});
    expect(summary.promotedModel!.id).toBe(first.id);
    // Back at the first promoted model: nothing earlier to roll back to, and the app says so.
    expect(summary.rollbackTo).toBeNull();
    expect((await server.call('stats:progress', {})).curve.map((p) => p.trainImages)).toEqual([2, 3]);
    const bad = await server.api.invoke('models:promote', { modelId: 9999 });
    expect(bad).toMatchObject({ ok: false, error: { kind: 'argument' } });
  }, SLOW);

  let cancelledPretrain = 0;

  it('cancels a running job at the next step', async () => {
    const job = await server.call('jobs:start', { kind: 'pretrain', steps: 5000 });
    await server.waitForJob(job.jobId, (j) => j.progress !== null && j.runId !== null, SLOW);
    await server.call('jobs:cancel', { jobId: job.jobId });
    const done = await server.waitForJob(job.jobId, undefined, SLOW);
    expect(done).toMatchObject({ state: 'cancelled', errorKind: 'cancelled' });
    const [run] = await server.call('runs:list', { kind: 'pretrain', limit: 1 });
    expect(run).toMatchObject({ id: done.runId, status: 'cancelled' });
    cancelledPretrain = run.id;
  }, SLOW);

  it('resumes a pretraining after the app and its job process were killed', async () => {
    // No probe fine-tune after it (train-budget.test.ts has one): this test is about resuming.
    const job = await server.call('jobs:start', { kind: 'pretrain', steps: 16, checkpointEvery: 4, probeSeconds: 0 });
    // Step 10 reported means the checkpoint of step 8 is on disk: kill then.
    const running = await server.waitForJob(job.jobId, (j) => (j.progress?.step ?? 0) >= 10, SLOW);
    const runId = running.runId!;
    server.killHard();
    await new Promise((resolve) => server.child.once('exit', resolve));

    server = await startServerProcess({ state, renderer, env, project: projectDir });
    const summary = await server.call('project:summary', {});
    const interrupted = summary.resumableRuns.find((r) => r.id === runId);
    expect(interrupted).toMatchObject({ kind: 'pretrain', status: 'interrupted' });
    expect(interrupted!.step).toBeGreaterThanOrEqual(10);
    const resumed = await server.call('jobs:resume', { runId });
    expect(resumed).toMatchObject({ kind: 'pretrain', resumesRunId: runId });
    const done = await server.waitForJob(resumed.jobId, undefined, SLOW);
    expect(done).toMatchObject({ state: 'completed' });
    const steps = jobEvents('pretrain').filter((j) => j.jobId === resumed.jobId && j.progress).map((j) => j.progress!.step);
    // It went on from the checkpoint of step 8 (or later), not from the start.
    expect(Math.min(...steps)).toBeGreaterThan(8);
    expect(Math.max(...steps)).toBe(16);
    const [run] = await server.call('runs:list', { kind: 'pretrain', limit: 1 });
    expect(run).toMatchObject({ id: done.runId, status: 'completed', config: { resumes: runId } });
    const after = await server.call('project:summary', {});
    expect(after.resumableRuns.some((r) => r.id === runId)).toBe(false);
    // The pretraining cancelled earlier is moot now that a newer one finished.
    expect(after.resumableRuns.some((r) => r.id === cancelledPretrain)).toBe(false);
    expect((await server.call('models:list', {})).some((m) => m.kind === 'pretext')).toBe(true);
  }, SLOW);
});
