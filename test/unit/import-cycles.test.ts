/**
 * No module of the product imports itself through others, type imports included: a cycle makes
 * load order matter and hides which of two modules is the lower one. Reads the import statements
 * of every TypeScript file under src/, electron/ and tools/ and searches the graph for a cycle.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';

const root = path.resolve(new URL('../..', import.meta.url).pathname);
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+['"](\.{1,2}\/[^'"]+)['"]/g;

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'build' ? [] : sources(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

function resolve(from: string, spec: string): string | null {
  const base = path.join(path.dirname(from), spec);
  for (const candidate of [base, `${base}.ts`, path.join(base, 'index.ts')]) {
    if (candidate.endsWith('.ts') && fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
  }
  return null;
}

function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): string[] | null => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') return [...stack.slice(stack.indexOf(next)), next];
      if (!state.has(next)) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(file, 'done');
    return null;
  };
  for (const file of graph.keys()) {
    if (!state.has(file)) {
      const found = visit(file);
      if (found) return found;
    }
  }
  return null;
}

test('the cycle search finds a cycle and passes a tree', () => {
  expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
  expect(findCycle(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]]))).toBeNull();
});

test('src/, electron/ and tools/ hold no import cycle', () => {
  const files = ['src', 'electron', 'tools'].flatMap((dir) => sources(path.join(root, dir)));
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    graph.set(file, [...text.matchAll(IMPORT)].map((m) => resolve(file, m[1])).filter((f): f is string => f !== null));
  }
  expect(graph.size).toBeGreaterThan(100);
  // The graph is real: the service reaches the store through its domain modules.
  expect(graph.get(path.join(root, 'src/app/service.ts'))).toContain(path.join(root, 'src/app/labels.ts'));
  const cycle = findCycle(graph);
  expect(cycle?.map((f) => path.relative(root, f)).join(' -> ') ?? null).toBeNull();
});
