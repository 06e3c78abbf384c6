/**
 * One folder for the run's per-user caches (the timed convolution tiles), removed at the end: tests
 * never write to the user's own cache, and each test file gets a folder of its own there
 * (cache-per-file.ts), so that files running side by side cannot change each other's tiles.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-test-cache-'));
  process.env.MASKLOOP_TEST_CACHE_ROOT = root;
  return () => fs.rmSync(root, { recursive: true, force: true });
}
