import type { Db } from './db';
import { fromSqliteError, StoreError } from './errors';
import { MIGRATIONS, type Migration } from './migrations';

export interface MigrationResult {
  from: number;
  to: number;
}

export function schemaVersion(db: Db): number {
  return Number(db.pragma('user_version', { simple: true }));
}

/**
 * Brings the database up to `target` (default: the newest migration). Each migration runs in its
 * own IMMEDIATE transaction together with the user_version bump, so a crash leaves the database
 * at a whole version, and two processes opening an old project at once apply each step once.
 * A database newer than this code is refused before anything is written.
 */
export function migrate(db: Db, options: { migrations?: readonly Migration[]; target?: number } = {}): MigrationResult {
  const migrations = options.migrations ?? MIGRATIONS;
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new StoreError('db', `migration list is out of order: entry ${i} is version ${m.version}`);
  });
  const latest = migrations.length;
  const target = options.target ?? latest;
  if (!Number.isInteger(target) || target < 0 || target > latest) {
    throw new StoreError('argument', `no schema version ${target}: migrations go from 0 to ${latest}`);
  }
  let from: number;
  try {
    from = schemaVersion(db);
  } catch (error) {
    throw fromSqliteError(error, 'reading the schema version');
  }
  if (from > latest) {
    throw new StoreError(
      'db',
      `project.sqlite is at schema version ${from} but this maskloop knows versions up to ${latest}: ` +
        'it was written by a newer maskloop. Update maskloop to open this project (nothing was changed).',
    );
  }
  for (const m of migrations) {
    if (m.version > target) break;
    if (m.version <= from) continue;
    try {
      db.transaction(() => {
        // Re-read under the write lock: another process may have migrated since we looked.
        const current = schemaVersion(db);
        if (current >= m.version) return;
        if (current !== m.version - 1) {
          throw new StoreError('db', `schema is at version ${current}, cannot apply migration ${m.version}`);
        }
        m.up(db);
        const broken = db.pragma('foreign_key_check') as unknown[];
        if (broken.length > 0) {
          throw new StoreError('db', `migration ${m.version}-${m.name} left ${broken.length} broken foreign key reference(s)`);
        }
        db.pragma(`user_version = ${m.version}`);
      }).immediate();
    } catch (error) {
      if (error instanceof StoreError) throw error;
      // Whatever the SQLite code, a failing migration is the database's problem, not the caller's.
      const detail = error instanceof Error ? error.message : String(error);
      throw new StoreError('db', `migration ${String(m.version).padStart(4, '0')}-${m.name} failed: ${detail}`, { cause: error });
    }
  }
  return { from, to: Math.max(from, target) };
}
