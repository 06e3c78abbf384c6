import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProject, fingerprintFile, openProject, StoreError, type ImageRecord, type NewImage, type Project } from '../../src/store';

let root: string;
let projectDir: string;
let images: string;
let project: Project;

async function expectStoreError(fn: () => unknown, code: StoreError['code'], message?: RegExp): Promise<void> {
  let error: unknown;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  expect(error, 'throws').toBeInstanceOf(StoreError);
  expect((error as StoreError).code).toBe(code);
  if (message) expect((error as StoreError).message).toMatch(message);
}

function meta(file: string, extra: Partial<NewImage> = {}): NewImage {
  return { path: file, width: 64, height: 48, channels: 1, bitDepth: 16, format: 'tiff', ...extra };
}

function write(file: string, content: string): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  return file;
}

beforeEach(() => {
  // A unicode, spaced path all the way down: projects live in folders like these.
  root = mkdtempSync(path.join(tmpdir(), 'maskloop images Ünïcødé 顕微鏡 '));
  projectDir = path.join(root, 'my project é');
  images = path.join(root, 'raw data µm');
  project = createProject(projectDir, { name: 'Zellkern – Versuch 1' });
});

afterEach(() => {
  if (project.isOpen) project.close();
  rmSync(root, { recursive: true, force: true });
});

describe('project folder', () => {
  it('creates project.sqlite, the cache folders, and refuses to create twice', async () => {
    expect(project.info.name).toBe('Zellkern – Versuch 1');
    expect(project.info.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(project.cachePath('checkpoints')).toBe(path.join(projectDir, 'cache', 'checkpoints'));
    expect((project.database.pragma('journal_mode', { simple: true }) as string).toLowerCase()).toBe('wal');
    expect(project.database.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(Number(project.database.pragma('busy_timeout', { simple: true }))).toBeGreaterThanOrEqual(5000);
    project.close();
    await expectStoreError(() => createProject(projectDir, { name: 'again' }), 'argument', /already holds a maskloop project/);
    await expectStoreError(() => openProject(path.join(root, 'nothing here')), 'argument', /not a maskloop project/);
    await expectStoreError(() => createProject(path.join(root, 'x'), { name: '  ' }), 'argument', /name/);
    const created = openProject(path.join(root, 'auto'), { create: true });
    expect(created.info.name).toBe('auto');
    created.close();
    project = openProject(projectDir);
    expect(project.info.name).toBe('Zellkern – Versuch 1');
  });

  it('creates atomically: no temporary files left, and two processes creating at once give one project', async () => {
    expect(readdirSync(projectDir).sort()).toEqual(['cache', 'project.sqlite', 'project.sqlite-shm', 'project.sqlite-wal']);
    const raced = path.join(root, 'raced');
    const results = await Promise.allSettled(
      [0, 1, 2].map(
        (i) =>
          new Promise<string>((resolve, reject) => {
            const child = spawn(
              process.execPath,
              ['--import', 'tsx', '--input-type=module', '-e', `
                const { createProject } = await import(${JSON.stringify(pathToFileURL(path.resolve(import.meta.dirname, '../../src/store/index.ts')).href)});
                try { createProject(process.argv[1], { name: 'p${i}' }).close(); console.log('created'); }
                catch (e) { console.log(e.code + ': ' + e.message); }`, raced],
              { cwd: path.resolve(import.meta.dirname, '../..') },
            );
            let out = '';
            child.stdout.on('data', (d) => (out += d));
            child.stderr.on('data', (d) => (out += d));
            child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(out))));
          }),
      ),
    );
    const outcomes = results.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason)));
    expect(outcomes.filter((o) => o === 'created'), outcomes.join('\n')).toHaveLength(1);
    expect(outcomes.filter((o) => /^argument: .*already holds a maskloop project/.test(o))).toHaveLength(2);
    expect(readdirSync(raced).filter((f) => f.includes('creating'))).toEqual([]);
    const p = openProject(raced);
    expect(p.info.name).toMatch(/^p[012]$/);
    p.close();
  });

  it('reports a file that is not a database as a db error', async () => {
    const bad = path.join(root, 'bad');
    write(path.join(bad, 'project.sqlite'), 'this is not sqlite, just text long enough to fill a header'.repeat(20));
    await expectStoreError(() => openProject(bad), 'db', /damaged or not a SQLite database/);
  });

  it('a write blocked past the busy timeout fails as a db error naming the lock, and writes nothing', async () => {
    const file = write(path.join(images, 'a.tif'), 'a');
    const { image } = await project.addImage(meta(file));
    project.database.exec('BEGIN IMMEDIATE');
    // Opening an up-to-date project with nothing to mark needs no write lock.
    const other = openProject(projectDir, { busyTimeoutMs: 150 });
    try {
      const t0 = Date.now();
      await expectStoreError(
        () => other.addLabelVersion({ imageId: image.id, mask: { width: 64, height: 48, data: new Uint8Array(64 * 48) }, source: 'manual' }),
        'db',
        /locked by another process past the busy timeout/,
      );
      expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
      // Reads go on under WAL while another connection writes.
      expect(other.getImage(image.id)!.id).toBe(image.id);
    } finally {
      project.database.exec('ROLLBACK');
    }
    expect(other.labelHistory(image.id)).toEqual([]);
    other.close();
  });

  it("refuses another program's SQLite database and leaves it untouched", async () => {
    const foreign = path.join(root, 'foreign');
    mkdirSync(foreign);
    const db = new Database(path.join(foreign, 'project.sqlite'));
    db.exec('CREATE TABLE notes (t TEXT)');
    db.close();
    await expectStoreError(() => openProject(foreign), 'data', /not a maskloop project/);
    const check = new Database(path.join(foreign, 'project.sqlite'));
    expect(check.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").all()).toEqual([{ name: 'notes' }]);
    check.close();
  });

  it('answers argument errors after close', async () => {
    project.close();
    await expectStoreError(() => project.listImages(), 'argument', /closed/);
  });
});

describe('images', () => {
  it('adds by reference with hash, size and metadata; paths relative to the project folder', async () => {
    const inside = write(path.join(projectDir, 'images', 'ß 1.tif'), 'inside');
    const outside = write(path.join(images, 'sub dir', 'Zelle 1.tif'), 'outside');
    const a = await project.addImage(meta(inside, { pages: 3, split: 'train' }));
    const b = await project.addImage(meta(outside, { channels: 3, bitDepth: 8, format: 'png' }));
    expect(a.added).toBe(true);
    expect(a.image).toMatchObject({
      path: 'images/ß 1.tif',
      absolutePath: inside,
      contentHash: createHash('sha256').update('inside').digest('hex'),
      byteSize: 6,
      width: 64,
      height: 48,
      channels: 1,
      bitDepth: 16,
      pages: 3,
      format: 'tiff',
      split: 'train',
      status: 'unlabeled',
    });
    expect(b.image.path).toBe('../raw data µm/sub dir/Zelle 1.tif');
    expect(b.image.absolutePath).toBe(outside);
    // Relative paths given to the store are relative to the project folder.
    expect(project.findImageByPath('images/ß 1.tif')!.id).toBe(a.image.id);
    expect(project.findImageByPath(outside)!.id).toBe(b.image.id);
    expect(project.findImagesByHash(b.image.contentHash).map((i) => i.id)).toEqual([b.image.id]);
  });

  it('is idempotent for the same file and refuses a known path with new content', async () => {
    const file = write(path.join(images, 'a.tif'), 'one');
    const first = await project.addImage(meta(file));
    const again = await project.addImage(meta(file));
    expect(again).toEqual({ image: first.image, added: false });
    writeFileSync(file, 'two');
    await expectStoreError(() => project.addImage(meta(file)), 'data', /different content/);
    expect(project.countImages().total).toBe(1);
  });

  it('refuses bad input', async () => {
    const file = write(path.join(images, 'a.tif'), 'one');
    await expectStoreError(() => project.addImage(meta(path.join(images, 'missing.tif'))), 'argument', /not found/);
    await expectStoreError(() => project.addImage(meta(images)), 'argument', /not a regular file/);
    await expectStoreError(() => project.addImage(meta(file, { width: 0 })), 'argument', /width/);
    await expectStoreError(() => project.addImage(meta(file, { bitDepth: 12 })), 'argument', /bitDepth/);
    await expectStoreError(() => project.addImage(meta(file, { split: 'holdout' as 'train' })), 'argument', /split/);
    await expectStoreError(() => project.addImage(meta(file, { fingerprint: { contentHash: 'xyz', byteSize: 1, mtimeMs: 0 } })), 'argument', /sha256/);
  });

  it('takes a fingerprint the caller already computed', async () => {
    const file = write(path.join(images, 'a.tif'), 'content');
    const fp = await fingerprintFile(file);
    const { image } = await project.addImage(meta(file, { fingerprint: fp }));
    expect(image).toMatchObject(fp);
  });

  it('lists, filters, counts, and assigns splits and statuses', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) ids.push((await project.addImage(meta(write(path.join(images, `img ${i}.tif`), `px ${i}`)))).image.id);
    expect(project.setImageSplit(ids.slice(0, 3), 'train')).toBe(3);
    expect(project.setImageSplit(ids[3], 'val')).toBe(1);
    project.setImageStatus(ids[0], 'labeled');
    project.setImageStatus(ids[1], 'reviewed');
    await expectStoreError(() => project.setImageSplit([ids[4], 999], 'test'), 'argument', /no image with id 999/);
    expect(project.getImage(ids[4])!.split).toBe('unassigned');
    await expectStoreError(() => project.setImageStatus(ids[0], 'done' as 'labeled'), 'argument', /status/);

    expect(project.listImages().map((i) => i.id)).toEqual(ids);
    expect(project.listImages({ split: 'train' }).map((i) => i.id)).toEqual(ids.slice(0, 3));
    expect(project.listImages({ split: 'train', status: ['labeled', 'reviewed'] }).map((i) => i.id)).toEqual(ids.slice(0, 2));
    expect(project.listImages({ limit: 2, offset: 3 }).map((i) => i.id)).toEqual(ids.slice(3, 5));
    expect(project.countImages()).toEqual({
      total: 6,
      byStatus: { unlabeled: 4, proposed: 0, labeled: 1, reviewed: 1 },
      bySplit: { train: 3, val: 1, test: 0, unassigned: 2 },
    });
    expect(project.getImage(12345)).toBeNull();
  });
});

describe('verifyImages', () => {
  it('reports missing, changed, moved and duplicate files', async () => {
    const keep = write(path.join(images, 'keep ö.tif'), 'keep');
    const change = write(path.join(images, 'change.tif'), 'before');
    const move = write(path.join(images, 'move me.tif'), 'moving content');
    const lose = write(path.join(images, 'lose.tif'), 'gone for good');
    const dupA = write(path.join(images, 'dup a.tif'), 'same bytes');
    const dupB = write(path.join(images, 'copies', 'dup b.tif'), 'same bytes');
    // One after another: the duplicates are reported in id order, and concurrent adds would number
    // the images in whatever order their hashing finished.
    const added: Record<string, ImageRecord> = {};
    for (const [k, f] of Object.entries({ keep, change, move, lose, dupA, dupB })) added[k] = (await project.addImage(meta(f))).image;

    writeFileSync(change, 'after!');
    const moved = path.join(root, 'elsewhere ü', 'deeper', 'moved ✓.tif');
    mkdirSync(path.dirname(moved), { recursive: true });
    renameSync(move, moved);
    rmSync(lose);
    // A file of the lost image's size but other bytes must not be taken for it.
    write(path.join(root, 'elsewhere ü', 'decoy.tif'), 'gone for goo!');

    const report = await project.verifyImages({ searchDir: root });
    expect(report.checked).toBe(6);
    expect(report.ok).toBe(3);
    expect(report.missing.map((m) => m.id)).toEqual([added.lose.id]);
    expect(report.changed).toEqual([
      { image: added.change, contentHash: createHash('sha256').update('after!').digest('hex'), byteSize: 6 },
    ]);
    expect(report.moved).toEqual([{ image: added.move, newPath: moved }]);
    expect(report.duplicates).toEqual([{ contentHash: added.dupA.contentHash, images: [added.dupA, added.dupB] }]);

    // Without a folder to search, a moved file is only missing.
    const plain = await project.verifyImages();
    expect(plain.missing.map((m) => m.id).sort()).toEqual([added.move.id, added.lose.id].sort());
    expect(plain.moved).toEqual([]);

    // Accepting the move: the record follows the file, and the next check is clean for it.
    const relocated = await project.relocateImage(added.move.id, moved);
    expect(relocated.path).toBe('../elsewhere ü/deeper/moved ✓.tif');
    await expectStoreError(() => project.relocateImage(added.keep.id, moved), 'data', /does not hold image/);
    const after = await project.verifyImages();
    expect(after.missing.map((m) => m.id)).toEqual([added.lose.id]);
    expect(after.ok).toBe(4);
  });

  it('trusts unchanged size and mtime unless asked to rehash, and records a touch without a change', async () => {
    const file = write(path.join(images, 'a.tif'), 'AAAA');
    const fixed = new Date('2024-01-02T03:04:05Z');
    utimesSync(file, fixed, fixed);
    const { image } = await project.addImage(meta(file));

    // Same size, same mtime, other bytes: only a rehash can see it.
    writeFileSync(file, 'BBBB');
    utimesSync(file, fixed, fixed);
    expect((await project.verifyImages()).changed).toEqual([]);
    expect((await project.verifyImages({ rehash: true })).changed.map((c) => c.image.id)).toEqual([image.id]);

    // Touched but identical: ok, and its new mtime is stored so it is not hashed again.
    writeFileSync(file, 'AAAA');
    const later = new Date('2025-01-01T00:00:00Z');
    utimesSync(file, later, later);
    const report = await project.verifyImages();
    expect(report.ok).toBe(1);
    expect(project.getImage(image.id)!.mtimeMs).toBe(later.getTime());
  });

  it('refuses a search folder that does not exist', async () => {
    const file = write(path.join(images, 'a.tif'), 'A');
    await project.addImage(meta(file));
    rmSync(file);
    await expectStoreError(() => project.verifyImages({ searchDir: path.join(root, 'nope') }), 'argument', /search folder not found/);
  });
});
