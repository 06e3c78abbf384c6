import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createProject, openProject, type Project } from '../../src/store';

const REPO = path.resolve(import.meta.dirname, '../..');
const STORE_URL = pathToFileURL(path.join(REPO, 'src/store/index.ts')).href;
const DURATION_MS = 3000;
const SIZE = 128;

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/**
 * The body both processes run: label saves alternating between a shared image (both processes
 * compete for its version numbers) and the writer's own, with events and run progress in between.
 * Each mask is filled with its sequence number and tagged with the writer in pixel 0, so the
 * check can tell every write apart. Kept as source text so the child runs exactly this.
 */
const WRITER = `
export function writeLabels(p, writer, ids, until, firstSeq = 1) {
  const run = p.startRun({ kind: 'train', config: { writer } });
  const written = [];
  let seq = firstSeq - 1;
  while (Date.now() < until) {
    seq++;
    const imageId = seq % 2 ? ids.shared : ids.own;
    const data = new Int32Array(${SIZE} * ${SIZE}).fill(seq);
    data[0] = writer === 'parent' ? -1 : -2;
    const v = p.addLabelVersion({
      imageId, mask: { width: ${SIZE}, height: ${SIZE}, data }, source: 'manual', author: writer + '-' + seq,
      event: { kind: 'annotate', timeSpentMs: seq, pixelsChanged: 1 },
    });
    written.push({ imageId, seq, version: v.version });
    if (seq % 10 === 0) p.updateRunProgress(run.id, { step: seq });
    if (seq % 25 === 0) p.latestLabel(ids.shared);
  }
  p.finishRun(run.id, { status: 'completed' });
  return written;
}`;

interface Written {
  imageId: number;
  seq: number;
  version: number;
}
type WriteLabels = (p: Project, writer: string, ids: { shared: number; own: number }, until: number, firstSeq?: number) => Written[];

async function parentWrites(p: Project, ids: { shared: number; own: number }, until: number, writeLabels: WriteLabels) {
  // Write in short bursts and yield, so this process also services the child's pipes meanwhile.
  const written: Written[] = [];
  while (Date.now() < until) {
    const burst = writeLabels(p, 'parent', ids, Math.min(until, Date.now() + 50), written.length + 1);
    written.push(...burst);
    await yieldToLoop();
  }
  return written;
}

describe('two processes writing one project', () => {
  it('neither corrupts the database nor loses a label', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'maskloop concurrency é '));
    const projectDir = path.join(dir, 'proj');
    const project = createProject(projectDir, { name: 'concurrency' });
    const ids: Record<string, number> = {};
    for (const name of ['shared', 'parent', 'child']) {
      const file = path.join(dir, `${name}.png`);
      writeFileSync(file, name);
      ids[name] = (await project.addImage({ path: file, width: SIZE, height: SIZE, channels: 1, bitDepth: 8, format: 'png' })).image.id;
    }

    const writerFile = path.join(dir, 'writer.mjs');
    writeFileSync(writerFile, WRITER);
    const childFile = path.join(dir, 'child.mts');
    writeFileSync(
      childFile,
      `import { openProject } from ${JSON.stringify(STORE_URL)};
       import { writeLabels } from ${JSON.stringify(pathToFileURL(writerFile).href)};
       const p = openProject(process.argv[2]);
       process.stdout.write('ready\\n');
       const start = await new Promise((resolve) => process.stdin.once('data', (d) => resolve(Number(String(d)))));
       process.stdin.destroy();
       const written = writeLabels(p, 'child', { shared: ${ids.shared}, own: ${ids.child} }, start + ${DURATION_MS});
       p.close();
       process.stdout.write(JSON.stringify(written) + '\\n');`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', childFile, projectDir], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    while (!out.includes('ready\n')) {
      if (child.exitCode !== null) throw new Error(`child failed to start: ${err}`);
      await new Promise((r) => setTimeout(r, 20));
    }

    const { writeLabels } = (await import(pathToFileURL(writerFile).href)) as { writeLabels: WriteLabels };
    const start = Date.now() + 100;
    child.stdin.end(`${start}\n`);
    while (Date.now() < start) await yieldToLoop();
    const parentWritten = await parentWrites(project, { shared: ids.shared, own: ids.parent }, start + DURATION_MS, writeLabels);
    expect(await exit, `child stderr: ${err}`).toBe(0);
    const childWritten = JSON.parse(out.slice(out.indexOf('ready\n') + 6)) as Written[];
    project.close();

    // Both really wrote, and at the same time.
    expect(parentWritten.length).toBeGreaterThan(20);
    expect(childWritten.length).toBeGreaterThan(20);

    const check = openProject(projectDir);
    expect(check.integrityCheck()).toEqual(['ok']);
    expect(check.database.pragma('foreign_key_check')).toEqual([]);

    // Every label either process wrote is there, at the version it was told, with its pixels.
    for (const [writer, written, tag] of [['parent', parentWritten, -1], ['child', childWritten, -2]] as const) {
      for (const w of written) {
        const label = check.getLabelVersion(w.imageId, w.version);
        expect(label, `${writer} label ${w.seq}`).not.toBeNull();
        expect(label!.author).toBe(`${writer}-${w.seq}`);
        expect(label!.mask.data[0]).toBe(tag);
        expect(label!.mask.data[1]).toBe(w.seq);
        expect(label!.mask.data[SIZE * SIZE - 1]).toBe(w.seq);
      }
    }
    const sharedHistory = check.labelHistory(ids.shared);
    const sharedWrites = [...parentWritten, ...childWritten].filter((w) => w.imageId === ids.shared).length;
    expect(sharedHistory.map((h) => h.version)).toEqual(Array.from({ length: sharedWrites }, (_, i) => i + 1));
    // Interleaved, not one after the other. SQLite's busy handler is not fair (a writer in a tight
    // loop can hold the lock for many turns while the other backs off), so only a few turns are
    // guaranteed under load; 10-100 is typical.
    const turns = sharedHistory.filter((h, i) => i > 0 && h.author.split('-')[0] !== sharedHistory[i - 1].author.split('-')[0]).length;
    console.log(`parent ${parentWritten.length} labels, child ${childWritten.length}, ${turns} turns on the shared image`);
    expect(turns).toBeGreaterThanOrEqual(4);
    expect(check.labelHistory(ids.parent)).toHaveLength(parentWritten.filter((w) => w.imageId === ids.parent).length);
    expect(check.labelHistory(ids.child)).toHaveLength(childWritten.filter((w) => w.imageId === ids.child).length);
    expect(check.annotationSummary().total.count).toBe(parentWritten.length + childWritten.length);
    expect(check.listRuns({ status: 'completed' }).length).toBeGreaterThanOrEqual(2);
    check.close();
  });
});
