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
const SIZE = 128;
/**
 * Each writer goes on until it has written this many times right after the other on the shared
 * image, or the other has finished: then the two wrote at the same time however slow the machine
 * is, which a fixed time window does not ensure (under load one process can get no turn in it).
 */
const TURNS = 10;
/** Only a broken lock takes this long; the test then fails on its turns, it does not hang. */
const GIVE_UP_MS = 120_000;

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/**
 * The body both processes run: label saves alternating between a shared image (both processes
 * compete for its version numbers) and the writer's own, with events and run progress in between,
 * until the writer has followed the other TURNS times on the shared image or the other is done.
 * Each mask is filled with its sequence number and tagged with the writer in pixel 0, so the
 * check can tell every write apart. `writeLabels` writes until `burstUntil` or the end and can be
 * called again with the same state. Kept as source text so the child runs exactly this.
 */
const WRITER = `
export function startWriting(p, writer) {
  return { writer, run: p.startRun({ kind: 'train', config: { writer } }).id, seq: 0, followed: 0, written: [], done: false, giveUpAt: Date.now() + ${GIVE_UP_MS} };
}
export function writeLabels(p, state, ids, burstUntil = Infinity) {
  while (!state.done && Date.now() < burstUntil) {
    const seq = ++state.seq;
    const imageId = seq % 2 ? ids.shared : ids.own;
    if (imageId === ids.shared && !(p.latestLabel(ids.shared)?.author ?? state.writer).startsWith(state.writer)) state.followed++;
    const data = new Int32Array(${SIZE} * ${SIZE}).fill(seq);
    data[0] = state.writer === 'parent' ? -1 : -2;
    const v = p.addLabelVersion({
      imageId, mask: { width: ${SIZE}, height: ${SIZE}, data }, source: 'manual', author: state.writer + '-' + seq,
      event: { kind: 'annotate', timeSpentMs: seq, pixelsChanged: 1 },
    });
    state.written.push({ imageId, seq, version: v.version });
    if (seq % 10 === 0) p.updateRunProgress(state.run, { step: seq });
    const otherDone = p.listRuns({ status: 'completed' }).length > 0;
    if (state.followed >= ${TURNS} || otherDone || Date.now() > state.giveUpAt) {
      p.finishRun(state.run, { status: 'completed' });
      state.done = true;
    }
  }
  return state.written;
}`;

interface Written {
  imageId: number;
  seq: number;
  version: number;
}
interface WriterState {
  done: boolean;
  written: Written[];
}
interface Writer {
  startWriting: (p: Project, writer: string) => WriterState;
  writeLabels: (p: Project, state: WriterState, ids: { shared: number; own: number }, burstUntil?: number) => Written[];
}

async function parentWrites(p: Project, ids: { shared: number; own: number }, writer: Writer) {
  // Write in short bursts and yield, so this process also services the child's pipes meanwhile.
  const state = writer.startWriting(p, 'parent');
  while (!state.done) {
    writer.writeLabels(p, state, ids, Date.now() + 50);
    await yieldToLoop();
  }
  return state.written;
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
       import { startWriting, writeLabels } from ${JSON.stringify(pathToFileURL(writerFile).href)};
       const p = openProject(process.argv[2]);
       process.stdout.write('ready\\n');
       const start = await new Promise((resolve) => process.stdin.once('data', (d) => resolve(Number(String(d)))));
       process.stdin.destroy();
       while (Date.now() < start) {}
       const written = writeLabels(p, startWriting(p, 'child'), { shared: ${ids.shared}, own: ${ids.child} });
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

    const writer = (await import(pathToFileURL(writerFile).href)) as Writer;
    const start = Date.now() + 100;
    child.stdin.end(`${start}\n`);
    while (Date.now() < start) await yieldToLoop();
    const parentWritten = await parentWrites(project, { shared: ids.shared, own: ids.parent }, writer);
    expect(await exit, `child stderr: ${err}`).toBe(0);
    const childWritten = JSON.parse(out.slice(out.indexOf('ready\n') + 6)) as Written[];
    project.close();

    // Both really wrote (at the same time: the turns below).
    expect(parentWritten.length).toBeGreaterThanOrEqual(TURNS);
    expect(childWritten.length).toBeGreaterThanOrEqual(TURNS);

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
    // Interleaved, not one after the other: the first writer to stop followed the other TURNS
    // times, and the other followed it at least TURNS - 1 times in between.
    const turns = sharedHistory.filter((h, i) => i > 0 && h.author.split('-')[0] !== sharedHistory[i - 1].author.split('-')[0]).length;
    console.log(`parent ${parentWritten.length} labels, child ${childWritten.length}, ${turns} turns on the shared image`);
    expect(turns).toBeGreaterThanOrEqual(2 * TURNS - 1);
    expect(check.labelHistory(ids.parent)).toHaveLength(parentWritten.filter((w) => w.imageId === ids.parent).length);
    expect(check.labelHistory(ids.child)).toHaveLength(childWritten.filter((w) => w.imageId === ids.child).length);
    expect(check.annotationSummary().total.count).toBe(parentWritten.length + childWritten.length);
    expect(check.listRuns({ status: 'completed' }).length).toBeGreaterThanOrEqual(2);
    check.close();
  });
});
