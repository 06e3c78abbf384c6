/**
 * `npm start`: the desktop app where Electron's binary runs, else the same renderer in the
 * browser against the local server (the "browser fallback"), whose URL it prints. Builds what is
 * missing first: the renderer (vite) when dist/renderer is absent or older than renderer/, and
 * the preload bundle for Electron.
 *
 *   npm start [-- --browser] [--port n] [--project <dir>]
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name: string) => path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? `${name}.cmd` : name);

const { values } = parseArgs({
  options: {
    browser: { type: 'boolean', default: false },
    port: { type: 'string', default: process.env.MASKLOOP_PORT ?? '0' },
    project: { type: 'string' },
  },
  strict: true,
});

/** The newest modification time under a folder (files only). */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, fs.statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return latest;
}

function run(command: string, args: string[], what: string): void {
  console.error(`[maskloop] ${what}…`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (result.status !== 0) {
    console.error(`[maskloop] ${what} failed (${command} ${args.join(' ')})`);
    process.exit(result.status ?? 1);
  }
}

function ensureRenderer(): void {
  const index = path.join(root, 'dist', 'renderer', 'index.html');
  const sources = [path.join(root, 'renderer'), path.join(root, 'src', 'shared')].filter((d) => fs.existsSync(d));
  const stale = !fs.existsSync(index) || sources.some((d) => newest(d) > fs.statSync(index).mtimeMs);
  if (stale) run(bin('vite'), ['build'], 'building the renderer (vite build)');
}

/** Electron's binary when its package is installed and the binary actually starts here. */
function usableElectron(): string | null {
  if (values.browser || process.env.MASKLOOP_NO_ELECTRON) return null;
  let binary: unknown;
  try {
    // In Node, the electron package exports the path of its binary (and throws when the download failed).
    binary = createRequire(import.meta.url)('electron');
  } catch {
    return null;
  }
  if (typeof binary !== 'string' || !fs.existsSync(binary)) return null;
  const probe = spawnSync(binary, ['--version'], { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, timeout: 20_000 });
  return probe.status === 0 ? binary : null;
}

const electron = usableElectron();
ensureRenderer();

if (electron) {
  run(process.execPath, [path.join(root, 'build', 'build-electron.mjs')], 'bundling the preload');
  // better-sqlite3 is compiled against one ABI: Node's for the CLI, Electron's for the app.
  const sqlite = spawnSync(electron, ['-e', "require('better-sqlite3')"], { cwd: root, env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
  if (sqlite.status !== 0) {
    run(bin('electron-builder'), ['install-app-deps'], 'rebuilding native modules for Electron (npm rebuild better-sqlite3 switches them back for the CLI)');
  }
  const child = spawn(electron, [root], { cwd: root, stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 0));
} else {
  console.error('[maskloop] Electron is not available here: starting the browser version');
  const { startServer } = await import('../src/server/server');
  const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const server = await startServer({
    port: Number(values.port), rendererDir: path.join(root, 'dist', 'renderer'), version,
    projectDir: values.project ? path.resolve(values.project) : undefined,
  });
  console.log(`\nmaskloop is running. Open this address in Chrome, Chromium, Edge or Firefox:\n\n  ${server.url}\n\nOnly this machine can reach it; the address holds this session's key. Ctrl-C stops it.`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
