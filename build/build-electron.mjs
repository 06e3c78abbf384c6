// Bundles the Electron preload into one CommonJS file (a sandboxed preload may require only
// 'electron', not other files). The main process and the job process run the TypeScript sources
// through tsx and need no bundling. esbuild is the one that vite and tsx already bring.
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

await build({
  entryPoints: [path.join(root, 'electron', 'preload.ts')],
  outfile: path.join(root, 'dist', 'electron', 'preload.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'chrome130',
  external: ['electron'],
  minify: true,
  sourcemap: false,
  logLevel: 'warning',
});
console.log('dist/electron/preload.cjs');
