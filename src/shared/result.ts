/**
 * How every call across a process boundary answers (DESIGN.md convention 4): `{ok, value}` or
 * `{ok: false, error}`, with the error classed by cause so the UI can react by kind:
 * - 'argument': the caller asked for something invalid (bad value, unknown id, path outside the project);
 * - 'data': what is on disk is not what it should be (unreadable image, label size mismatch);
 * - 'db': the project database failed (busy past the timeout, damaged, newer than this code);
 * - 'engine': training or inference failed;
 * - 'cancelled': the user stopped the work.
 */
export const ERROR_KINDS = ['argument', 'data', 'db', 'engine', 'cancelled'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

export interface ApiError {
  kind: ErrorKind;
  message: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: ApiError };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function failure<T = never>(kind: ErrorKind, message: string): Result<T> {
  return { ok: false, error: { kind, message } };
}

/** Thrown by `unwrap` so callers that prefer exceptions still see the kind. */
export class ApiCallError extends Error {
  readonly kind: ErrorKind;

  constructor(error: ApiError) {
    super(error.message);
    this.name = 'ApiCallError';
    this.kind = error.kind;
  }
}

export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw new ApiCallError(result.error);
}
