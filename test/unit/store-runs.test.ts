import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProject, openProject, type Project } from '../../src/store';
import { expectStoreError } from '../helpers/store';

const REPO = path.resolve(import.meta.dirname, '../..');
const STORE_URL = pathToFileURL(path.join(REPO, 'src/store/index.ts')).href;

let dir: string;
let projectDir: string;
let project: Project;


beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'maskloop-runs-'));
  projectDir = path.join(dir, 'proj ä');
  project = createProject(projectDir, { name: 'runs' });
});

afterEach(() => {
  if (project.isOpen) project.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('runs', () => {
  it('start, progress, log, finish', () => {
    const run = project.startRun({ kind: 'train', config: { epochs: 3, lr: 1e-3 }, total: 30 });
    expect(run).toMatchObject({ kind: 'train', status: 'running', step: 0, total: 30, pid: process.pid, finishedAt: null, config: { epochs: 3, lr: 1e-3 } });
    expect(project.updateRunProgress(run.id, { step: 10 })).toMatchObject({ step: 10, total: 30 });
    expect(project.updateRunProgress(run.id, { step: 12, total: 40 })).toMatchObject({ step: 12, total: 40 });
    project.appendRunLog(run.id, 'epoch 1 loss 0.4');
    project.appendRunLog(run.id, 'epoch 2 loss 0.2');
    expect(project.runLog(run.id)).toBe('epoch 1 loss 0.4\nepoch 2 loss 0.2');

    const ckpt = project.cachePath('checkpoints', 'm.ckpt');
    writeFileSync(ckpt, 'x');
    const m = project.addModel({ kind: 'segmentation', checkpointPath: ckpt, config: {} });
    const done = project.finishRun(run.id, { status: 'completed', message: 'val dice 0.8', modelId: m.id });
    expect(done).toMatchObject({ status: 'completed', message: 'val dice 0.8', modelId: m.id });
    expect(done.finishedAt).toBeGreaterThanOrEqual(done.startedAt);

    // History is not rewritten; a note may still be logged.
    expectStoreError(() => project.finishRun(run.id, { status: 'failed' }), 'argument', /is completed, not running/);
    expectStoreError(() => project.updateRunProgress(run.id, { step: 13 }), 'argument', /not running/);
    project.appendRunLog(run.id, 'post-mortem');
    expectStoreError(() => project.updateRunProgress(404, { step: 1 }), 'argument', /no run with id 404/);
    expectStoreError(() => project.appendRunLog(404, 'x'), 'argument', /no run with id 404/);
    expectStoreError(() => project.startRun({ kind: 'dance' as 'train', config: {} }), 'argument', /kind/);
    expectStoreError(() => project.updateRunProgress(run.id, { step: -1 }), 'argument', /step/);
  });

  it('lists runs newest first, filtered by kind and status', () => {
    const a = project.startRun({ kind: 'import', config: {} });
    const b = project.startRun({ kind: 'pretrain', config: {} });
    const c = project.startRun({ kind: 'prelabel', config: { shard: '1/4' } });
    project.finishRun(a.id, { status: 'failed', message: 'disk full' });
    project.finishRun(b.id, { status: 'cancelled' });
    expect(project.listRuns().map((r) => r.id)).toEqual([c.id, b.id, a.id]);
    expect(project.listRuns({ kind: 'import' }).map((r) => r.id)).toEqual([a.id]);
    expect(project.listRuns({ status: 'running' }).map((r) => r.id)).toEqual([c.id]);
    expect(project.listRuns({ limit: 1 }).map((r) => r.id)).toEqual([c.id]);
  });

  it("marks a run left 'running' by a killed process as 'interrupted' on the next open", async () => {
    const child = path.join(dir, 'start-run.mts');
    writeFileSync(
      child,
      `import { openProject } from ${JSON.stringify(STORE_URL)};
       const p = openProject(process.argv[2]);
       const run = p.startRun({ kind: 'train', config: { epochs: 3 }, total: 100 });
       p.updateRunProgress(run.id, { step: 5 });
       p.appendRunLog(run.id, 'epoch 1');
       process.stdout.write(JSON.stringify({ runId: run.id, pid: process.pid }) + '\\n');
       setInterval(() => {}, 1000);`,
    );
    const proc = spawn(process.execPath, ['--import', 'tsx', child, projectDir], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.on('exit', (_code, signal) => resolve(signal)));
    const started = await new Promise<{ runId: number; pid: number }>((resolve, reject) => {
      let out = '';
      proc.stdout.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(JSON.parse(out));
      });
      proc.on('exit', () => reject(new Error(`child exited before starting a run: ${stderr}`)));
    });
    expect(started.pid).toBe(proc.pid);

    // While the child lives, reopening leaves its run alone.
    const whileAlive = openProject(projectDir);
    expect(whileAlive.interruptedRuns).toEqual([]);
    expect(whileAlive.getRun(started.runId)!.status).toBe('running');
    whileAlive.close();

    proc.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    // A run of this (live) process and one from another machine must not be touched.
    const mine = project.startRun({ kind: 'eval', config: {} });
    project.database
      .prepare("INSERT INTO runs (kind, config, pid, host, started_at, updated_at) VALUES ('pretrain', '{}', ?, 'gpu-node-07', 1, 1)")
      .run(started.pid);
    project.close();

    project = openProject(projectDir);
    expect(project.interruptedRuns.map((r) => r.id)).toEqual([started.runId]);
    const run = project.getRun(started.runId)!;
    expect(run).toMatchObject({ status: 'interrupted', step: 5, total: 100, pid: started.pid });
    expect(run.message).toContain(`process ${started.pid} ended`);
    expect(run.finishedAt).not.toBeNull();
    expect(project.runLog(started.runId)).toMatch(/^epoch 1\ninterrupted: /);
    expect(project.getRun(mine.id)!.status).toBe('running');
    expect(project.listRuns({ status: 'running' }).map((r) => r.kind).sort()).toEqual(['eval', 'pretrain']);
    expectStoreError(() => project.finishRun(started.runId, { status: 'completed' }), 'argument', /is interrupted/);
  });
});

describe('annotation events', () => {
  it('summarises time spent per kind and estimates time saved by proposals, per image', async () => {
    const images = [];
    for (const name of ['a.png', 'b.png']) {
      const file = path.join(dir, name);
      writeFileSync(file, name);
      images.push((await project.addImage({ path: file, width: 2, height: 2, channels: 1, bitDepth: 8, format: 'png' })).image);
    }
    const [image, assisted] = images;
    const empty = project.annotationSummary();
    expect(empty.total).toEqual({ count: 0, images: 0, timeMs: 0, pixelsChanged: 0 });
    expect(empty.estimatedTimeSavedMs).toBeNull();

    // Image a drawn from scratch in two strokes (30 s); image b's proposal corrected, then accepted (6 s).
    const v = project.addLabelVersion({ imageId: image.id, mask: { width: 2, height: 2, data: new Uint8Array(4) }, source: 'manual' });
    project.addAnnotationEvent({ imageId: image.id, labelVersion: v.version, kind: 'annotate', timeSpentMs: 10_000, pixelsChanged: 4 });
    project.addAnnotationEvent({ imageId: image.id, kind: 'annotate', timeSpentMs: 20_000, pixelsChanged: 3 });
    project.addAnnotationEvent({ imageId: assisted.id, kind: 'correct', timeSpentMs: 5_000, pixelsChanged: 1 });
    project.addAnnotationEvent({ imageId: assisted.id, kind: 'accept', timeSpentMs: 1_000 });
    project.addAnnotationEvent({ imageId: image.id, kind: 'review', timeSpentMs: 2_000 });

    const s = project.annotationSummary();
    expect(s.total).toEqual({ count: 5, images: 2, timeMs: 38_000, pixelsChanged: 8 });
    // Two strokes, one image.
    expect(s.byKind.annotate).toEqual({ count: 2, images: 1, timeMs: 30_000, pixelsChanged: 7 });
    expect(s.byKind.skip).toEqual({ count: 0, images: 0, timeMs: 0, pixelsChanged: 0 });
    // One assisted image at 30 s from scratch, 6 s actually spent on it.
    expect(s.estimatedTimeSavedMs).toBe(24_000);
    expect(project.annotationSummary({ sinceMs: Date.now() + 60_000 }).total.count).toBe(0);
    expect(project.annotationEvents(image.id)).toHaveLength(3);

    expectStoreError(() => project.addAnnotationEvent({ imageId: image.id, labelVersion: 9, kind: 'annotate', timeSpentMs: 1 }), 'argument', /does not exist/);
    expectStoreError(() => project.addAnnotationEvent({ imageId: 999, kind: 'annotate', timeSpentMs: 1 }), 'argument', /does not exist/);
    expectStoreError(() => project.addAnnotationEvent({ imageId: image.id, kind: 'doodle' as 'annotate', timeSpentMs: 1 }), 'argument', /kind/);
  });
});

describe('settings', () => {
  it('has defaults, validates values, and keeps them across opens', () => {
    expect(project.getSettings()).toEqual({ autoRetrainAfterLabels: 0, defaultAuthor: '', classNames: ['foreground'] });
    project.setSetting('autoRetrainAfterLabels', 25);
    project.setSetting('defaultAuthor', 'Ada Lovelace');
    project.setSetting('autoRetrainAfterLabels', 20);
    expectStoreError(() => project.setSetting('autoRetrainAfterLabels', -3), 'argument', /autoRetrainAfterLabels/);
    expectStoreError(() => project.setSetting('classNames', []), 'argument', /classNames/);
    expectStoreError(() => project.setSetting('colour' as 'defaultAuthor', 'red'), 'argument', /unknown setting 'colour'/);
    project.close();
    project = openProject(projectDir);
    expect(project.getSetting('autoRetrainAfterLabels')).toBe(20);
    expect(project.getSetting('defaultAuthor')).toBe('Ada Lovelace');
    project.database.prepare("UPDATE settings SET value = '\"many\"' WHERE key = 'autoRetrainAfterLabels'").run();
    expectStoreError(() => project.getSetting('autoRetrainAfterLabels'), 'data', /not valid/);
  });
});
