/**
 * Longer reliability run than the tests: kills maskloop with SIGKILL at random moments of import,
 * training and prelabeling, many times over, and after every kill checks that the project is
 * intact (PRAGMA integrity_check), that no label was lost, and that a re-run finishes the work.
 *
 *   npx tsx tools/crash-loop.ts <project> <image-folder> [rounds=20]
 * The project must exist and hold labels (maskloop init / import / labels import).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openProject } from '../src/store';

const [projectDir, folder, roundsArg] = process.argv.slice(2);
if (!projectDir || !folder) throw new Error('usage: crash-loop.ts <project> <image-folder> [rounds]');
const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'bin.mjs');
const rounds = Number(roundsArg ?? 20);
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-crash-'));

const snapshot = () => {
  const p = openProject(projectDir);
  try {
    const integrity = p.integrityCheck();
    if (integrity.join() !== 'ok') throw new Error(`integrity_check: ${integrity.join('; ')}`);
    return p.labeledImages().map(({ image, version }) => `${image.id}@${version}`).sort();
  } finally {
    p.close();
  }
};

const jobs: string[][] = [
  ['import', folder, '--project', projectDir],
  ['train', '--steps', '200', '--project', projectDir],
  ['prelabel', folder, '--out', out, '--project', projectDir],
];

let labels = snapshot();
for (let round = 1; round <= rounds; round++) {
  const job = jobs[round % jobs.length];
  const delayMs = 1500 + Math.random() * 8000;
  const child = spawn(process.execPath, [bin, ...job], { stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
  const code = await exited;
  clearTimeout(timer);
  const after = snapshot();
  const lost = labels.filter((l) => !after.includes(l));
  if (lost.length) throw new Error(`round ${round}: labels lost after killing ${job[0]}: ${lost.join(', ')}`);
  labels = after;
  console.log(`round ${round}: ${job[0]} ${code === null ? `killed after ${(delayMs / 1000).toFixed(1)} s` : `finished (exit ${code})`}; integrity ok, ${labels.length} labels intact`);
}
// Every interrupted job must still complete when re-run.
for (const job of [jobs[0], jobs[2]]) {
  const r = spawnSync(process.execPath, [bin, ...job], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`re-run of ${job[0]} failed (exit ${r.status})`);
}
console.log(`${rounds} kills survived; re-runs of import and prelabel completed`);
