/**
 * Copies evaluation outputs (report, plots, CSVs) from `eval curve` / `eval loop` folders into
 * docs/results/<folder>/ and rewrites the generated part of docs/RESULTS.md (between the
 * generated markers) from their reports, in the order given. The hand-written analysis around
 * it stays as it is.
 *
 *   npx tsx src/cli/tools/collect-results.ts <eval folder>...
 */
import fs from 'node:fs';
import path from 'node:path';

const KEEP = ['report.md', 'curve.png', 'curve.svg', 'loop.png', 'loop.svg', 'runs.csv', 'summary.csv', 'rounds.csv'];
const START = '<!-- generated:start -->';
const END = '<!-- generated:end -->';

const repo = path.resolve(new URL('../../..', import.meta.url).pathname);
const docs = path.join(repo, 'docs');
const folders = process.argv.slice(2);
if (folders.length === 0) {
  console.error('usage: collect-results.ts <eval folder>...');
  process.exit(2);
}
const sections: string[] = [];
for (const folder of folders) {
  const name = path.basename(path.resolve(folder));
  const target = path.join(docs, 'results', name);
  fs.mkdirSync(target, { recursive: true });
  for (const file of KEEP) {
    const from = path.join(folder, file);
    if (fs.existsSync(from)) fs.copyFileSync(from, path.join(target, file));
  }
  const report = fs.readFileSync(path.join(folder, 'report.md'), 'utf8');
  // Image links in a report are relative to its folder; RESULTS.md sits two levels up.
  sections.push(report.replace(/\]\((curve|loop)\.png\)/g, `](results/${name}/$1.png)`) + `\nAll runs: [CSV](results/${name}/${fs.existsSync(path.join(folder, 'runs.csv')) ? 'runs' : 'rounds'}.csv).\n`);
}
const file = path.join(docs, 'RESULTS.md');
const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : `# Results\n\n${START}\n${END}\n`;
const [before, rest] = current.split(START);
const after = rest?.split(END)[1] ?? '\n';
fs.writeFileSync(file, `${before}${START}\n\n${sections.join('\n')}\n${END}${after}`);
console.log(`updated ${path.relative(repo, file)} from ${folders.length} report(s)`);
