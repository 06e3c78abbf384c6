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
