import Database from 'better-sqlite3';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Db } from '../../src/store/db';
import { createProject, MIGRATIONS, migrate, openProject, SCHEMA_VERSION, schemaVersion, StoreError, type Migration } from '../../src/store';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDb(): Db {
  const dir = mkdtempSync(path.join(tmpdir(), 'maskloop-migrate-'));
  dirs.push(dir);
  return connect(path.join(dir, 'project.sqlite'), { mustExist: false });
}

function tableNames(db: Db): string[] {
  return (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map(
    (r) => r.name,
  );
}

function snapshot(db: Db): Record<string, unknown[]> {
  return Object.fromEntries(tableNames(db).map((t) => [t, db.prepare(`SELECT * FROM "${t}" ORDER BY 1`).all()]));
}

/** Schema and contents are sound: integrity, foreign keys, and every table STRICT. */
function expectHealthy(db: Db): void {
  expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  expect(db.pragma('foreign_key_check')).toEqual([]);
  const tables = db.pragma('table_list') as { name: string; schema: string; strict: number }[];
  for (const t of tables.filter((x) => x.schema === 'main' && !x.name.startsWith('sqlite_'))) {
    expect(t.strict, `table ${t.name} is STRICT`).toBe(1);
  }
}

const HASH = 'a'.repeat(64);
const BLOB = Buffer.from([120, 156, 99, 0, 0, 0, 1, 0, 1]);

/** Rows that the tables of each version accept, so the next migration has data to preserve. */
const seed: Record<number, (db: Db) => void> = {
  1: (db) => {
    db.prepare("INSERT INTO project VALUES (1, 'uuid-1', 'Résumé project', 1)").run();
    db.prepare(
      `INSERT INTO images (id, path, content_hash, byte_size, mtime_ms, width, height, channels, bit_depth, pages, format, added_at)
       VALUES (1, 'images/ñ 1.tif', ?, 10, 1.5, 4, 3, 1, 16, 1, 'tiff', 2)`,
    ).run(HASH);
    db.prepare(
      `INSERT INTO label_versions (image_id, version, source, author, created_at, dtype, width, height, encoding, mask)
       VALUES (1, 1, 'manual', 'ann', 3, 'uint16', 4, 3, 'zlib', ?)`,
    ).run(BLOB);
    db.prepare("INSERT INTO settings VALUES ('autoRetrainAfterLabels', '5', 4)").run();
  },
  2: (db) => {
    db.prepare(`INSERT INTO models (id, kind, checkpoint_path, config, created_at, promoted) VALUES (1, 'segmentation', 'checkpoints/m1.ckpt', '{}', 5, 1)`).run();
    db.prepare("INSERT INTO model_promotions (model_id, promoted_at, reason) VALUES (1, 6, 'first')").run();
    db.prepare(
      `INSERT INTO predictions (image_id, model_id, dtype, width, height, encoding, mask, uncertainty_score, created_at)
       VALUES (1, 1, 'uint8', 4, 3, 'zlib', ?, 0.5, 7)`,
    ).run(BLOB);
  },
  3: (db) => {
    db.prepare(`INSERT INTO runs (id, kind, config, pid, host, started_at, updated_at) VALUES (1, 'train', '{"epochs":2}', 1, 'h', 8, 8)`).run();
    db.prepare("INSERT INTO run_log (run_id, at, text) VALUES (1, 9, 'step 1')").run();
    db.prepare("INSERT INTO annotation_events (image_id, label_version, kind, time_spent_ms, pixels_changed, created_at) VALUES (1, 1, 'annotate', 1000, 12, 10)").run();
  },
  4: (db) => {
    db.prepare("INSERT INTO annotation_events (image_id, label_version, kind, time_spent_ms, pixels_changed, created_at) VALUES (1, NULL, 'reject', 800, 0, 11)").run();
  },
};

/** The tables each migration adds. */
const added: Record<number, string[]> = {
  1: ['images', 'label_versions', 'project', 'settings'],
  2: ['model_promotions', 'models', 'predictions'],
  3: ['annotation_events', 'run_log', 'runs'],
  4: [],
};

describe('migration list', () => {
  it('matches the NNNN-name.ts files, numbered 1..n', () => {
    const dir = path.join(import.meta.dirname, '../../src/store/migrations');
    const files = readdirSync(dir).filter((f) => /^\d{4}-.+\.ts$/.test(f)).sort();
    expect(files.map((f) => f.replace(/\.ts$/, ''))).toEqual(MIGRATIONS.map((m) => `${String(m.version).padStart(4, '0')}-${m.name}`));
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
    expect(Object.keys(seed).map(Number)).toEqual(MIGRATIONS.map((m) => m.version));
  });
});

for (const m of MIGRATIONS) {
  const label = `${String(m.version).padStart(4, '0')}-${m.name}`;
  describe(`migration ${label}`, () => {
    it('applies to an empty database', () => {
      const db = tempDb();
      migrate(db, { target: m.version });
      expect(schemaVersion(db)).toBe(m.version);
      const expected = MIGRATIONS.filter((x) => x.version <= m.version).flatMap((x) => added[x.version]).sort();
      expect(tableNames(db)).toEqual(expected);
      for (let v = 1; v <= m.version; v++) seed[v](db);
      expectHealthy(db);
      db.close();
    });

    it('applies to a database at the previous version, keeping its data', () => {
      const db = tempDb();
      migrate(db, { target: m.version - 1 });
      for (let v = 1; v < m.version; v++) seed[v](db);
      const before = snapshot(db);
      const result = migrate(db, { target: m.version });
      expect(result).toEqual({ from: m.version - 1, to: m.version });
      const after = snapshot(db);
      for (const [table, rows] of Object.entries(before)) expect(after[table], `rows of ${table}`).toEqual(rows);
      for (const t of added[m.version]) expect(tableNames(db)).toContain(t);
      seed[m.version](db);
      expectHealthy(db);
      db.close();
    });
  });
}

describe('migration runner', () => {
  it('is a no-op on an up-to-date database', () => {
    const db = tempDb();
    migrate(db);
    seed[1](db);
    const before = snapshot(db);
    expect(migrate(db)).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION });
    expect(snapshot(db)).toEqual(before);
    db.close();
  });

  it('rolls a failing migration back entirely and keeps the previous version', () => {
    const db = tempDb();
    const failing: Migration = {
      version: MIGRATIONS.length + 1,
      name: 'broken',
      up(d) {
        d.exec('CREATE TABLE half_done (x INTEGER) STRICT');
        throw new Error('boom');
      },
    };
    migrate(db);
    let error: unknown;
    try {
      migrate(db, { migrations: [...MIGRATIONS, failing] });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('db');
    expect((error as StoreError).message).toMatch(/broken failed: boom/);
    expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
    expect(tableNames(db)).not.toContain('half_done');
    db.close();
  });

  it('refuses a database newer than the code, with a clear message, and changes nothing', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'maskloop-newer-'));
    dirs.push(dir);
    createProject(dir, { name: 'p' }).close();
    const raw = new Database(path.join(dir, 'project.sqlite'));
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    let error: unknown;
    try {
      openProject(dir);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('db');
    expect((error as StoreError).message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    expect((error as StoreError).message).toMatch(/newer maskloop/);
    const check = new Database(path.join(dir, 'project.sqlite'));
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 1);
    check.close();
  });

  it('upgrades an old project when it is opened', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'maskloop-old-'));
    dirs.push(dir);
    const db = connect(path.join(dir, 'project.sqlite'), { mustExist: false });
    migrate(db, { target: 1 });
    seed[1](db);
    db.close();
    const project = openProject(dir);
    expect(project.schemaVersion).toBe(SCHEMA_VERSION);
    expect(project.info.name).toBe('Résumé project');
    expect(project.labelHistory(1)).toHaveLength(1);
    project.close();
  });

  it('rejects a target version it does not know', () => {
    const db = tempDb();
    expect(() => migrate(db, { target: SCHEMA_VERSION + 1 })).toThrow(StoreError);
    db.close();
  });
});
