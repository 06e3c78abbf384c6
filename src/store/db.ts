import Database from 'better-sqlite3';
import { fromSqliteError, StoreError } from './errors';

export type Db = Database.Database;
export type Statement = Database.Statement;

/**
 * How long a writer waits for another process's write transaction before giving up. Writers keep
 * their transactions short (milliseconds), so a long wait means something is stuck; 15 s keeps a
 * training run's checkpoint bookkeeping from failing while the app writes a large label.
 */
export const BUSY_TIMEOUT_MS = 15_000;

/** A connection with its pragmas set; fails with StoreError('db') when the file cannot be opened. */
export function connect(file: string, options: { mustExist: boolean; busyTimeoutMs?: number }): Db {
  const timeout = options.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
  let db: Db | undefined;
  try {
    db = new Database(file, { fileMustExist: options.mustExist, timeout });
    // WAL lets readers and one writer work at once across processes; a reader never blocks the
    // app's label saves. synchronous=FULL because a label is human time: losing the last commit on
    // a power cut is worse than an fsync per save.
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (String(mode).toLowerCase() !== 'wal') {
      throw new StoreError('db', `cannot switch ${file} to WAL mode (journal_mode is ${String(mode)}); is it on a network file system?`);
    }
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${Math.round(timeout)}`);
    // Schema objects come from our migrations only; a tampered file must not run SQL functions
    // hidden in views or triggers.
    db.pragma('trusted_schema = OFF');
    return db;
  } catch (error) {
    db?.close();
    throw fromSqliteError(error, `opening ${file}`);
  }
}

/**
 * A connection plus prepared-statement cache and the one way to write: a BEGIN IMMEDIATE
 * transaction. IMMEDIATE takes the write lock up front, so two processes queue on busy_timeout
 * instead of one failing with SQLITE_BUSY when it upgrades a read transaction to a write.
 */
export class Ctx {
  readonly db: Db;
  readonly dir: string;
  private readonly statements = new Map<string, Statement>();

  constructor(db: Db, dir: string) {
    this.db = db;
    this.dir = dir;
  }

  stmt(sql: string): Statement {
    let s = this.statements.get(sql);
    if (!s) {
      try {
        s = this.db.prepare(sql);
      } catch (error) {
        throw fromSqliteError(error, 'preparing a query');
      }
      this.statements.set(sql, s);
    }
    return s;
  }

  write<T>(context: string, fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (error) {
      throw fromSqliteError(error, context);
    }
  }

  read<T>(context: string, fn: () => T): T {
    try {
      // A deferred transaction gives several SELECTs one consistent snapshot under WAL.
      return this.db.inTransaction ? fn() : this.db.transaction(fn).deferred();
    } catch (error) {
      throw fromSqliteError(error, context);
    }
  }
}

export function now(): number {
  return Date.now();
}
