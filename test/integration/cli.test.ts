/**
 * The maskloop command line end to end, as a lab would run it: real processes, a real project
 * folder under a unicode path with spaces, real image files (synthetic, written here), and
 * SIGKILL in the middle of work.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, test } from 'vitest';
import { readCheckpointMeta } from '../../src/engine/checkpoint';
import type { SegmentationModelMeta } from '../../src/engine/train/finetune';
import { decodeMask } from '../../src/imaging/decode';
import { fileRanges } from '../../src/imaging/region';
import { syntheticDataset } from '../../src/imaging/synthetic';
import { openProject } from '../../src/store';

const root = new URL('../..', import.meta.url).pathname;
const bin = path.join(root, 'src/cli/bin.mjs');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop cli ü '));
const images = path.join(work, 'raw images');
const masks = path.join(work, 'masks');
const project = path.join(work, 'projekt ä');

/**
 * Runs the CLI in a child process without blocking this test worker's event loop (a blocked
 * worker cannot answer the test runner, which then reports a timeout).
 */
async function cli(...args: string[]) {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, MASKLOOP_THREADS: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const status = await new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const lastLine = stdout.trim().split('\n').pop() ?? '';
  let last = null;
  try {
    last = JSON.parse(lastLine);
  } catch {
    // Not JSON (help text, a human-readable line): callers then look at stdout.
  }
  return { status, stdout, stderr, last };
}

async function writeGrey16(file: string, width: number, height: number, data: Uint16Array) {
  await sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { raw: { width, height, channels: 1 } }).toColourspace('grey16').png().toFile(file);
}

// Kill when the child has provably started the work (a condition, not a guessed delay).
async function killWhen(args: string[], ready: (stderr: string) => boolean): Promise<void> {
  const child = spawn(process.execPath, [bin, ...args, '--json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((r) => child.once('exit', r));
  let stderr = '';
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      if (ready(stderr)) resolve();
    });
    void exited.then(() => resolve());
  });
  child.kill('SIGKILL');
  await exited;
}

beforeAll(async () => {
  fs.mkdirSync(images, { recursive: true });
  fs.mkdirSync(masks, { recursive: true });
  for (const [i, s] of syntheticDataset(10, { width: 160, height: 128, seed: 9 }).entries()) {
    await writeGrey16(path.join(images, `cell ${i}.png`), 160, 128, s.image.data as Uint16Array);
    if (i < 6) await writeGrey16(path.join(masks, `cell ${i}.png`), 160, 128, Uint16Array.from(s.instances));
  }
  fs.writeFileSync(path.join(images, 'broken.png'), fs.readFileSync(path.join(images, 'cell 0.png')).subarray(0, 200));
  fs.writeFileSync(path.join(images, 'notes.tif'), 'not an image');
});

describe('maskloop command line', () => {
  test('every command has --help; unknown commands and bad options exit 2', async () => {
    for (const c of ['init', 'import', 'labels', 'pretrain', 'train', 'prelabel', 'export', 'status', 'models', 'eval']) {
      const r = await cli(c, '--help');
      expect(r.status, c).toBe(0);
      expect(r.stdout).toContain(`usage: maskloop ${c}`);
    }
    expect((await cli('frobnicate')).status).toBe(2);
    expect((await cli('train', '--steps', 'many', '--project', work)).status).toBe(2);
  });

  test('init, import (bad files listed, rest imported), labels import, re-import is idempotent', async () => {
    expect((await cli('init', project)).status).toBe(0);
    const imported = (await cli('import', images, '--project', project, '--json'));
    expect(imported.status).toBe(0);
    expect(imported.last).toMatchObject({ event: 'imported', added: 10, rejected: 2 });
    expect(imported.stderr).toMatch(/broken\.png/);
    expect(imported.stderr).toMatch(/notes\.tif/);
    expect((await cli('import', images, '--project', project, '--json')).last).toMatchObject({ added: 0, skipped: 10 });
    expect((await cli('labels', 'import', masks, '--project', project, '--json')).last).toMatchObject({ imported: 6 });
  });

  test('pretrain, train with val-gated promotion, prelabel into the project', async () => {
    // No probe fine-tune here (train-budget.test.ts has one): this test is about the commands' flow.
    expect((await cli('pretrain', '--project', project, '--steps', '6', '--probe', '0', '--json')).last).toMatchObject({ event: 'pretrained' });
    const trained = (await cli('train', '--project', project, '--steps', '12', '--semi', '--json')).last;
    expect(trained).toMatchObject({ event: 'trained', promoted: true });
    // With --semi, the four images without labels make consistency training a candidate of the first model.
    expect(trained.candidates.map((c: { name: string }) => c.name)).toEqual(['scratch', 'scratch+semi', 'restoration']);
    expect(trained.semiSteps).toBe(12);
    const run = openProject(project);
    const semiModel = run.listRuns({ kind: 'train' })[0];
    expect(semiModel.config).toMatchObject({ steps: 12, semiSteps: 12 });
    run.close();
    expect((await cli('prelabel', '--project', project, '--json')).last).toMatchObject({ event: 'prelabeled', images: 10 });
    const p = openProject(project);
    expect(p.countImages().byStatus.labeled).toBe(6);
    expect(p.labelNext({ limit: 20 }).every((e) => e.uncertaintyScore !== null)).toBe(true);
    // The model keeps the window floor it was trained with, for prelabeling; none of these fields is empty, so it changes none of their windows.
    const { minSpans, foregroundThreshold } = readCheckpointMeta<SegmentationModelMeta>(p.promotedModel()!.absoluteCheckpointPath);
    // Its foreground threshold was calibrated on the val images (and folded into its head).
    expect(foregroundThreshold).toBeGreaterThanOrEqual(0.1);
    expect(foregroundThreshold).toBeLessThanOrEqual(0.9);
    const spans = await Promise.all(p.listImages().map(async (im) => (await fileRanges(im.absolutePath)).map((r) => r.high - r.low)[0]));
    expect(minSpans).toHaveLength(1);
    expect(minSpans![0]).toBeGreaterThan(0);
    expect(minSpans![0]).toBeLessThan(Math.min(...spans));
    p.close();
  });

  test('export round-trips imported labels exactly', async () => {
    const out = path.join(work, 'export');
    expect((await cli('export', '--project', project, '--out', out, '--json')).last).toMatchObject({ images: 6 });
    for (let i = 0; i < 6; i++) {
      const original = await decodeMask(path.join(masks, `cell ${i}.png`));
      const exported = await decodeMask(path.join(out, `cell ${i}.png`));
      expect(Array.from(exported.data)).toEqual(Array.from(original.data));
    }
    expect((await cli('export', '--project', project, '--out', out, '--format', 'coco', '--json')).status).toBe(0);
    const coco = JSON.parse(fs.readFileSync(path.join(out, 'annotations.json'), 'utf8'));
    expect(coco.images).toHaveLength(6);
    expect(coco.annotations.length).toBeGreaterThan(6);
  });

  test('prelabel of a folder is shardable and a re-run skips what is done', async () => {
    const out = path.join(work, 'masks out');
    const a = (await cli('prelabel', images, '--out', out, '--shard', '0/2', '--project', project, '--json')).last;
    const b = (await cli('prelabel', images, '--out', out, '--shard', '1/2', '--project', project, '--json')).last;
    expect(a.images + b.images).toBe(10);
    expect(a.images).toBeGreaterThan(0);
    expect(b.images).toBeGreaterThan(0);
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.png'))).toHaveLength(10);
    expect((await cli('prelabel', images, '--out', out, '--project', project, '--json')).last).toMatchObject({ images: 0, skipped: 10 });
  });

  test('prelabel finds what it cannot do before the work: broken files and other channel counts are reported, the rest is done', async () => {
    const mixed = path.join(work, 'mixed for prelabel');
    fs.mkdirSync(mixed);
    fs.copyFileSync(path.join(images, 'cell 1.png'), path.join(mixed, 'good.png'));
    fs.writeFileSync(path.join(mixed, 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\n not a png'));
    const colour = new Uint8Array(32 * 32 * 3).map((_, k) => (k % 3) * 90);
    await sharp(colour, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(path.join(mixed, 'colour.png'));
    const out = path.join(work, 'mixed masks');
    const r = await cli('prelabel', mixed, '--out', out, '--project', project, '--json');
    expect(r.status, r.stderr).toBe(0);
    expect(r.last, JSON.stringify(r.last)).toMatchObject({ event: 'prelabeled', images: 1 });
    expect(r.last.failed.map((f: { file: string }) => f.file).sort()).toEqual(['broken.png', 'colour.png']);
    expect(r.last.failed.find((f: { file: string }) => f.file === 'colour.png').reason).toMatch(/3 channel\(s\); the model was trained on 1/);
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.png'))).toEqual(['good.png']);
    // An output folder that cannot be written fails at once, before any image is computed.
    const blocked = path.join(work, 'a file, not a folder');
    fs.writeFileSync(blocked, '');
    const refused = await cli('prelabel', mixed, '--out', path.join(blocked, 'masks'), '--project', project, '--json');
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/cannot write masks into/);
  });

  test('SIGKILL during import: integrity ok, and a re-run imports the rest', async () => {
    const many = path.join(work, 'many images');
    fs.mkdirSync(many);
    for (const [i, s] of syntheticDataset(300, { width: 64, height: 64, seed: 70 }).entries()) {
      await writeGrey16(path.join(many, `m${String(i).padStart(3, '0')}.png`), 64, 64, s.image.data as Uint16Array);
    }
    const before = (await cli('status', '--project', project, '--json')).last.images.total;
    await killWhen(['import', many, '--project', project], (e) => (e.match(/"phase":"import"/g) ?? []).length >= 30);
    const p = openProject(project);
    expect(p.integrityCheck()).toEqual(['ok']);
    const partial = p.countImages().total - before;
    p.close();
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(300);
    const again = (await cli('import', many, '--project', project, '--json')).last;
    expect(again.added).toBe(300 - partial);
    expect(again.skipped).toBe(partial);
    expect((await cli('status', '--project', project, '--json')).last.images.total).toBe(before + 300);
  });

  test('SIGKILL during prelabel and training: integrity ok, no label lost, the work resumes', async () => {
    const big = path.join(work, 'big images');
    fs.mkdirSync(big);
    for (const [i, s] of syntheticDataset(12, { width: 512, height: 512, seed: 40 }).entries()) {
      await writeGrey16(path.join(big, `big ${i}.png`), 512, 512, s.image.data as Uint16Array);
    }
    const out = path.join(work, 'killed');
    await killWhen(['prelabel', big, '--out', out, '--project', project, '--tile', '128'], (e) => (e.match(/"phase":"prelabel"/g) ?? []).length >= 2);
    const partial = fs.readdirSync(out).filter((f) => f.endsWith('.png')).length;
    expect(partial).toBeGreaterThanOrEqual(2);
    expect(partial).toBeLessThan(12);
    // Past the first candidate checkpoint (every 25 steps) before the kill.
    const finetuneSteps = (text: string) => [...text.matchAll(/"phase":"finetune:[^"]*","step":(\d+)/g)].map((m) => Number(m[1]));
    await killWhen(['train', '--project', project, '--steps', '40'], (e) => finetuneSteps(e).some((step) => step >= 30));

    const p = openProject(project);
    expect(p.integrityCheck()).toEqual(['ok']);
    expect(p.labeledImages().length).toBe(6);
    // Whichever process opens the project next marks a dead process's run as interrupted.
    const interrupted = p.listRuns({ status: 'interrupted' }).map((r) => r.kind).sort();
    expect(interrupted).toEqual(['import', 'prelabel', 'train']); // import: the previous test's kill
    p.close();
    // No half-written mask survives: every mask present decodes, and no temporary file is left.
    for (const f of fs.readdirSync(out)) {
      expect(f).not.toMatch(/\.tmp-/);
      await expect(decodeMask(path.join(out, f))).resolves.toBeTruthy();
    }
    const resumed = (await cli('prelabel', big, '--out', out, '--project', project, '--json')).last;
    expect(resumed.skipped).toBe(partial);
    expect(resumed.images).toBe(12 - partial);
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.png'))).toHaveLength(12);

    // The training goes on from the first candidate's step-25 checkpoint, not from step 0.
    const before = openProject(project);
    const [killedRun] = before.listRuns({ kind: 'train', status: 'interrupted' });
    before.close();
    const trained = await cli('train', '--project', project, '--steps', '40', '--resume', '--json');
    // Labels only, as its predecessor (the default).
    expect(trained.last.candidates.some((c: { name: string }) => c.name.endsWith('+semi'))).toBe(false);
    expect(trained.last).toMatchObject({ event: 'trained' });
    const steps = finetuneSteps(trained.stderr);
    expect(steps[0]).toBeGreaterThan(25);
    expect(steps).toContain(40);
    const q = openProject(project);
    const [latest] = q.listRuns({ kind: 'train' });
    expect(latest).toMatchObject({ status: 'completed', config: { resumes: killedRun.id, semiSupervised: false } });
    // A finished training leaves no candidate checkpoints behind.
    expect(fs.readdirSync(q.cachePath('checkpoints')).filter((f) => f.startsWith('train-'))).toEqual([]);
    q.close();
  });

  test('models: list, and rollback walks back to the first promoted model, then refuses', async () => {
    type Listed = { id: number; kind: string; promoted: boolean };
    const listed = async () => (await cli('models', 'list', '--project', project, '--json')).last as Listed[];
    const before = await listed();
    expect(before.filter((m) => m.promoted)).toHaveLength(1);
    // The resumed training above is promoted only if it beat the first model on val, so there are
    // one or two promotions to walk back through before the refusal.
    const segmentation = before.filter((m) => m.kind === 'segmentation').map((m) => m.id);
    let rolledBack = 0;
    for (;;) {
      const r = await cli('models', 'rollback', '--project', project);
      if (r.status !== 0) {
        expect(r.status).toBe(1);
        expect(r.stderr).toContain('no earlier one to roll back to');
        break;
      }
      rolledBack++;
      expect(rolledBack).toBeLessThan(segmentation.length);
    }
    expect((await listed()).find((m) => m.promoted)?.id).toBe(Math.min(...segmentation));
  });

  test('a label that goes to the val split does not let a retraining on the same training images replace the promoted model', async () => {
    const dir = path.join(work, 'val grows');
    const [raw, first7, eighth] = ['raw', 'masks 1-7', 'mask 8'].map((d) => path.join(dir, d));
    for (const d of [raw, first7, eighth]) fs.mkdirSync(d, { recursive: true });
    for (const [i, s] of syntheticDataset(8, { width: 96, height: 96, seed: 21 }).entries()) {
      await writeGrey16(path.join(raw, `cell ${i}.png`), 96, 96, s.image.data as Uint16Array);
      await writeGrey16(path.join(i < 7 ? first7 : eighth, `cell ${i}.png`), 96, 96, Uint16Array.from(s.instances));
    }
    const valProject = path.join(dir, 'project');
    expect((await cli('init', valProject)).status).toBe(0);
    expect((await cli('import', raw, '--project', valProject, '--json')).last).toMatchObject({ added: 8 });
    const train = async () => (await cli('train', '--project', valProject, '--steps', '4', '--json')).last;
    // Seven labels: six to train on, one to judge by.
    expect((await cli('labels', 'import', first7, '--project', valProject, '--json')).last).toMatchObject({ imported: 7 });
    const first = await train();
    expect(first).toMatchObject({ event: 'trained', promoted: true, trainImages: 6, valImages: 1 });
    // The eighth label goes to the val split (a fifth of eight rounds to two): the retraining learns from the same six.
    expect((await cli('labels', 'import', eighth, '--project', valProject, '--json')).last).toMatchObject({ imported: 1 });
    const second = await train();
    expect(second).toMatchObject({ event: 'trained', promoted: false, trainImages: 6, valImages: 2, incumbentId: first.modelId });
    expect(second.decision).toMatch(new RegExp(`^kept model #${first.modelId}: learned from no more labeled images; val \\w+ [\\d.]+ vs [\\d.]+ of model #${first.modelId} was fitted to 1 val image\\(s\\) model #${first.modelId} never saw$`));
  });

  test('an instance project chooses and promotes models by the F1 of their objects, within the Dice margin', async () => {
    const nucleiProject = path.join(work, 'instance project');
    expect((await cli('init', nucleiProject)).status).toBe(0);
    expect((await cli('import', images, '--project', nucleiProject, '--json')).last).toMatchObject({ added: 10 });
    expect((await cli('labels', 'import', masks, '--project', nucleiProject, '--json')).last).toMatchObject({ imported: 6 });
    const train = async () => (await cli('train', '--target', 'instance', '--project', nucleiProject, '--steps', '12', '--fresh', '--json')).last;
    const first = await train();
    expect(first).toMatchObject({ event: 'trained', promoted: true, incumbentDice: null, incumbentF1: null });
    expect(first.valF1).toBeGreaterThanOrEqual(0);
    expect(first.valF1).toBeLessThanOrEqual(1);
    expect(first.candidates[0]).toMatchObject({ name: 'scratch', dice: first.valDice, f1: first.valF1 });
    // The same labels and seed train the same model again: its F1 ties the promoted one's, and a tie keeps the promoted model.
    const second = await train();
    expect(second).toMatchObject({ promoted: false, valF1: first.valF1, incumbentF1: first.valF1, incumbentDice: first.valDice });
    const p = openProject(nucleiProject);
    const newest = p.listModels({ kind: 'segmentation' }).at(-1)!;
    expect(newest.valMetrics).toMatchObject({ f1: first.valF1, incumbentF1: first.valF1 });
    expect(String(newest.valMetrics?.decision)).toMatch(/^kept model #\d+: learned from no more labeled images, and val F1 [\d.]+ vs [\d.]+ of model #\d+ does not beat it$/);
    p.close();
  });

  test('status --verify reports moved and duplicate image files', async () => {
    const moved = path.join(work, 'elsewhere', 'cell 9.png');
    fs.mkdirSync(path.dirname(moved));
    fs.renameSync(path.join(images, 'cell 9.png'), moved);
    fs.mkdirSync(path.join(work, 'dups'));
    fs.copyFileSync(path.join(images, 'cell 0.png'), path.join(work, 'dups', 'copy.png'));
    (await cli('import', path.join(work, 'dups'), '--project', project));
    const report = (await cli('status', '--verify', '--search', work, '--project', project, '--json')).last;
    expect(report.moved).toEqual([{ from: expect.stringContaining('cell 9.png'), to: moved }]);
    expect(report.duplicates.some((d: string[]) => d.some((p) => p.endsWith('copy.png')))).toBe(true);
    expect(report.missing).toEqual([]);
  });
});
