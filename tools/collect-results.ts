/**
 * Copies evaluation outputs (report, plots, CSVs, plan) from `eval curve` / `eval loop` folders
 * into docs/results/<folder>/, where docs/RESULTS.md links them.
 *
 *   npx tsx tools/collect-results.ts <eval folder>...
 */
import fs from 'node:fs';
import path from 'node:path';

const KEEP = ['report.md', 'curve.png', 'curve.svg', 'loop.png', 'loop.svg', 'runs.csv', 'summary.csv', 'rounds.csv', 'plan.json'];
const repo = path.resolve(new URL('..', import.meta.url).pathname);
const docs = path.join(repo, 'docs');
const folders = process.argv.slice(2);
if (folders.length === 0) {
  console.error('usage: collect-results.ts <eval folder>...');
  process.exit(2);
}
for (const folder of folders) {
  const target = path.join(docs, 'results', path.basename(path.resolve(folder)));
  fs.mkdirSync(target, { recursive: true });
  for (const file of KEEP) {
    const from = path.join(folder, file);
    if (fs.existsSync(from)) fs.copyFileSync(from, path.join(target, file));
  }
  console.log(`copied ${folder} to ${path.relative(repo, target)}`);
}
