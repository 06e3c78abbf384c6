import { ESLint } from 'eslint';
import { expect, test } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const eslint = new ESLint({ cwd: root });

async function boundaryErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

test('src/ may not import electron', async () => {
  expect(await boundaryErrors('src/engine/x.ts', "import { app } from 'electron';\nexport const a = app;\n")).toHaveLength(1);
  expect(await boundaryErrors('src/engine/x.ts', "import fs from 'node:fs';\nexport const a = fs;\n")).toHaveLength(0);
});

test('renderer/ may import src/shared but nothing else of src/, nor Node', async () => {
  expect(await boundaryErrors('renderer/lib/x.ts', "import { a } from '../../src/shared/ipc';\nexport const b = a;\n")).toHaveLength(0);
  expect(await boundaryErrors('renderer/lib/x.ts', "import { a } from '../../src/engine/backend';\nexport const b = a;\n")).toHaveLength(1);
  expect(await boundaryErrors('renderer/lib/x.ts', "import fs from 'node:fs';\nexport const b = fs;\n")).toHaveLength(1);
});

test('Svelte components are linted and held to the renderer rule', async () => {
  const component = (from: string) => `<script lang="ts">\n  import { a } from '${from}';\n  const b: number = a;\n</script>\n<p>{b}</p>\n`;
  expect(await boundaryErrors('renderer/src/components/X.svelte', component('../../../src/shared/ipc'))).toHaveLength(0);
  expect(await boundaryErrors('renderer/src/components/X.svelte', component('../../../src/engine/backend'))).toHaveLength(1);
});

test('the layers inside src/ point one way', async () => {
  const importing = (from: string) => `import { a } from '${from}';\nexport const b = a;\n`;
  // Downward imports are fine.
  for (const [file, from] of [['src/engine/x.ts', '../imaging/decode'], ['src/jobs/x.ts', '../engine/backend'], ['src/app/x.ts', '../jobs/runner'], ['src/cli/x.ts', '../app/service'], ['src/cli/x.ts', '../eval/curve'], ['src/eval/x.ts', '../engine/metrics']]) {
    expect(await boundaryErrors(file, importing(from)), `${file} -> ${from}`).toHaveLength(0);
  }
  // Upward and sideways ones fail.
  for (const [file, from] of [
    ['src/imaging/x.ts', '../engine/rng'], ['src/store/x.ts', '../engine/backend'], ['src/shared/x.ts', '../store'],
    ['src/engine/x.ts', '../store'], ['src/engine/train/x.ts', '../../jobs/data'], ['src/jobs/x.ts', '../app/service'], ['src/app/x.ts', '../server/server'],
    ['src/engine/x.ts', '../eval/curve'], ['src/jobs/x.ts', '../eval/curve'], ['src/engine/x.ts', '../../tools/bench/cpu'],
  ]) {
    expect(await boundaryErrors(file, importing(from)), `${file} -> ${from}`).toHaveLength(1);
  }
});

test('electron/ is a shell over src/app', async () => {
  expect(await boundaryErrors('electron/x.ts', "import { a } from '../src/app/headers';\nexport const b = a;\n")).toHaveLength(0);
  expect(await boundaryErrors('electron/x.ts', "import { a } from '../src/server/security';\nexport const b = a;\n")).toHaveLength(1);
});
