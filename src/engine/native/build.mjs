// Builds maskloop's native AVX2/FMA kernels (src/engine/native/build/Release/maskloop_native.node)
// with node-gyp. Run by `npm install` / `npm ci`, and by hand: `node src/engine/native/build.mjs`.
//
// It never fails the install: the addon is an accelerator, and without it the engine falls back to
// the wasm backend. Any problem prints one warning line (plus the compiler's last lines when they
// help) and exits 0. MASKLOOP_SKIP_NATIVE=1 skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const addonPath = path.join(here, 'build', 'Release', 'maskloop_native.node');
const tag = '[maskloop native]';

function warn(reason, detail) {
  if (detail) console.warn(detail.trimEnd().split('\n').slice(-25).join('\n'));
  console.warn(`${tag} WARNING: native kernels not built (${reason}); the engine will use the wasm backend.`);
  process.exit(0);
}

function nodeGypCommand() {
  // Prefer the project's own node-gyp (a devDependency), run with this very node binary.
  try {
    return [process.execPath, [require.resolve('node-gyp/bin/node-gyp.js')]];
  } catch {
    /* fall through */
  }
  // npm puts its bundled node-gyp on PATH while running scripts.
  const probe = spawnSync('node-gyp', ['--version'], { encoding: 'utf8' });
  if (probe.status === 0) return ['node-gyp', []];
  return null;
}

// Headers matching the running node, so node-gyp need not download them (the download host may be
// unreachable). An explicit npm_config_nodedir wins.
function localNodeDir() {
  if (process.env.npm_config_nodedir) return null;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const versionHeader = path.join(prefix, 'include', 'node', 'node_version.h');
  if (!existsSync(versionHeader)) return null;
  const text = readFileSync(versionHeader, 'utf8');
  const part = (name) => text.match(new RegExp(`#define NODE_${name}_VERSION (\\d+)`))?.[1];
  const version = `${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
  return version === process.versions.node ? prefix : null;
}

function main() {
  if (process.env.MASKLOOP_SKIP_NATIVE === '1') {
    console.log(`${tag} skipped (MASKLOOP_SKIP_NATIVE=1); the engine will use the wasm backend.`);
    return;
  }
  if (process.arch !== 'x64') warn(`the kernels are x86-64 AVX2/FMA code and this is ${process.arch}`);
  const gyp = nodeGypCommand();
  if (!gyp) warn('node-gyp not found');
  const [cmd, pre] = gyp;
  const args = [...pre, 'rebuild', '--release', `--directory=${here}`, '--jobs=max'];
  const nodedir = localNodeDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const started = Date.now();
  const res = spawnSync(cmd, args, { encoding: 'utf8', cwd: here, maxBuffer: 64 << 20 });
  const output = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  if (res.error) warn(`could not run node-gyp: ${res.error.message}`);
  if (res.status !== 0) warn(`node-gyp exited with ${res.status ?? res.signal}`, output);
  if (!existsSync(addonPath)) warn('node-gyp succeeded but produced no addon', output);

  // Load it in a child process: a broken binary must not take this script down, and the load is
  // what tells whether this CPU can run it.
  const check = spawnSync(
    process.execPath,
    ['-e', `const a = require(${JSON.stringify(addonPath)}); console.log(a.unsupported ? 'unsupported: ' + a.unsupported : a.isa + ', ' + a.defaultThreads() + ' threads')`],
    { encoding: 'utf8' },
  );
  if (check.status !== 0) warn('the built addon does not load', `${check.stdout}${check.stderr}`);
  const what = check.stdout.trim();
  if (what.startsWith('unsupported')) {
    console.warn(`${tag} WARNING: built, but ${what.slice('unsupported: '.length)}; the engine will use the wasm backend.`);
    return;
  }
  console.log(`${tag} built in ${((Date.now() - started) / 1000).toFixed(1)} s (${what})`);
}

try {
  main();
} catch (err) {
  warn(`unexpected error: ${err instanceof Error ? err.message : String(err)}`);
}
