/**
 * Errors of the application service, classed by cause so they cross to the renderer as
 * `{ok: false, error: {kind, message}}` (DESIGN.md convention 4).
 */
import { ImageDecodeError } from '../imaging/decode';
import { failure, type ErrorKind, type Result } from '../shared/result';
import { StoreError } from '../store';

export class AppError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const argumentError = (message: string) => new AppError('argument', message);

export function errorKind(error: unknown): ErrorKind {
  if (error instanceof AppError) return error.kind;
  if (error instanceof StoreError) return error.code;
  if (error instanceof ImageDecodeError) return 'data';
  const code = (error as NodeJS.ErrnoException | null)?.code;
  // A file that vanished or cannot be read is the data's problem, not the program's.
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return 'data';
  return 'engine';
}

export function toFailure<T>(error: unknown): Result<T> {
  return failure(errorKind(error), error instanceof Error ? error.message : String(error));
}
