import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { StoreError } from './errors';
import type { FileFingerprint } from './types';

/**
 * The stored form of an image path: relative to the project folder when one exists (so a project
 * moved together with its images, or synced to another machine, still finds them), else absolute
 * (another drive on Windows). '/'-separated either way, so the database reads the same on every OS.
 */
export function toStoredPath(projectDir: string, file: string): string {
  const absolute = path.resolve(projectDir, file);
  const relative = path.relative(projectDir, absolute);
  const stored = relative === '' || path.isAbsolute(relative) ? absolute : relative;
  return path.sep === '\\' ? stored.split('\\').join('/') : stored;
}

export function fromStoredPath(projectDir: string, stored: string): string {
  return path.resolve(projectDir, stored);
}

function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Stat that answers null for a file that is not there, instead of throwing. */
export async function statOrNull(file: string): Promise<Stats | null> {
  try {
    return await stat(file);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new StoreError('data', `cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * sha256 of a file's bytes, streamed. The file is stat'ed before and after: one written to while
 * being hashed would get a hash of no version of it, so that is reported instead of stored.
 */
export async function fingerprintFile(file: string): Promise<FileFingerprint> {
  const before = await statOrNull(file);
  if (!before) throw new StoreError('argument', `image file not found: ${file}`);
  if (!before.isFile()) throw new StoreError('argument', `not a regular file: ${file}`);
  const hash = createHash('sha256');
  try {
    await pipeline(createReadStream(file), hash);
  } catch (error) {
    throw new StoreError('data', `cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  const after = await statOrNull(file);
  if (!after || after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
    throw new StoreError('data', `${file} changed while it was being hashed; try again once it is written`);
  }
  return { contentHash: hash.digest('hex'), byteSize: before.size, mtimeMs: before.mtimeMs };
}

/**
 * Regular files under a folder, recursively. Symbolic links are not followed (a link loop would
 * never end, and a linked file is found at its real place when that is searched). Folders whose
 * name starts with '.' are skipped, as is `skip` (the project's own cache).
 */
export async function* walkFiles(dir: string, skip?: string, top = true): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    const code = errnoCode(error);
    if (top && (code === 'ENOENT' || code === 'ENOTDIR')) throw new StoreError('argument', `search folder not found: ${dir}`);
    // A subfolder that vanished or that we may not read holds nothing we can use.
    if (!top) return;
    throw new StoreError('data', `cannot list ${dir}: ${(error as Error).message}`, { cause: error });
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name.startsWith('.') || (skip && path.resolve(full) === path.resolve(skip))) continue;
      yield* walkFiles(full, skip, false);
    } else if (entry.isFile()) {
      yield full;
    }
  }
}

/** Runs fn over items with at most `limit` in flight, keeping results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
