/**
 * Store errors carry their cause as a code so they can cross a process boundary as
 * `{ok: false, error: {code, message}}` (DESIGN.md convention 4) and be handled by kind:
 * - 'argument': the caller asked for something invalid (bad value, unknown id, wrong state);
 * - 'data': what is on disk is not what it should be (image file changed, stored JSON invalid);
 * - 'db': the database itself failed (busy past the timeout, corrupt, newer than this code).
 */
export type StoreErrorCode = 'argument' | 'data' | 'db';

export class StoreError extends Error {
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }

  toJSON(): { name: string; code: StoreErrorCode; message: string } {
    return { name: this.name, code: this.code, message: this.message };
  }
}

interface SqliteLikeError {
  code?: unknown;
  message?: unknown;
}

/**
 * better-sqlite3 throws SqliteError with codes like SQLITE_CONSTRAINT_FOREIGNKEY. Constraint
 * failures are almost always the caller's fault (an id that does not exist, a value out of
 * range), so they become 'argument'; everything else is the database's.
 */
export function fromSqliteError(error: unknown, context: string): StoreError {
  if (error instanceof StoreError) return error;
  const e = (error ?? {}) as SqliteLikeError;
  const code = typeof e.code === 'string' ? e.code : '';
  const detail = typeof e.message === 'string' ? e.message : String(error);
  if (code.startsWith('SQLITE_CONSTRAINT')) {
    const what =
      code === 'SQLITE_CONSTRAINT_FOREIGNKEY' ? 'refers to a row that does not exist'
      : code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ? 'would duplicate an existing row'
      : 'violates a constraint';
    return new StoreError('argument', `${context}: ${what} (${detail})`, { cause: error });
  }
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED') {
    return new StoreError('db', `${context}: the project database stayed locked by another process past the busy timeout (${detail})`, { cause: error });
  }
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return new StoreError('db', `${context}: project.sqlite is damaged or not a SQLite database (${detail})`, { cause: error });
  }
  if (code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY_') || code === 'SQLITE_CANTOPEN' || code.startsWith('SQLITE_IOERR') || code === 'SQLITE_FULL') {
    return new StoreError('db', `${context}: cannot write the project database (${detail})`, { cause: error });
  }
  return new StoreError('db', `${context}: ${detail}`, { cause: error });
}
