/**
 * What the browser end-to-end tests share: the real server in a child process on a temporary
 * state folder, Debian's Chromium driven by playwright-core, the renderer build, screenshots, and
 * a Node-side API client (bearer token) for checking what the app stored.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { createHttpApi, decodeMaskBlock, type MaskloopApi } from '../../src/shared';
import { CHROMIUM } from './chromium';

export { CHROMIUM };

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const DATA = path.resolve(REPO, '..', 'shared', 'data');
export const ARTIFACTS = path.join(REPO, 'test', 'e2e', 'artifacts');
const RENDERER_SRC = path.join(REPO, 'renderer');
const RENDERER_OUT = path.join(REPO, 'dist', 'renderer');

/** Why the e2e tier cannot run here, or null when it can. */
export function missingPrerequisite(): string | null {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is not installed (apt-get install chromium)`;
  if (!existsSync(path.join(REPO, 'src', 'server', 'bin.mjs'))) return 'src/server/bin.mjs is missing';
  return null;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

function run(command: string, args: string[], options: { cwd: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited ${code}:\n${output}`))));
  });
}

/** Builds the renderer when dist/renderer is missing or older than renderer/ (asynchronously: the test worker must not block). */
export async function ensureRendererBuilt(): Promise<void> {
  const index = path.join(RENDERER_OUT, 'index.html');
  const sources = Math.max(newestMtime(RENDERER_SRC), statSync(path.join(REPO, 'vite.config.ts')).mtimeMs);
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return;
  await run('nice', ['-n', '19', process.execPath, path.join(REPO, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], { cwd: REPO });
}

export interface RunningServer {
  /** Opening this URL logs the page in (cookie) and redirects to the app. */
  url: string;
  origin: string;
  token: string;
  stateDir: string;
  process: ChildProcess;
  /** Node-side client with the bearer token, to check what the app stored. */
  api: MaskloopApi;
  output(): string;
  stop(): Promise<void>;
}

export async function startServer(options: { env?: Record<string, string> } = {}): Promise<RunningServer> {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'maskloop-e2e-state-'));
  const child = spawn(process.execPath, ['src/server/bin.mjs', '--port', '0', '--json', '--state', stateDir], {
    cwd: REPO,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  const lines = createInterface({ input: child.stdout! });
  const listening = await new Promise<{ url: string; origin: string; token: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within 480 s:\n${log}`)), 480_000);
    child.on('exit', (code) => reject(new Error(`server exited ${code} before listening:\n${log}`)));
    lines.on('line', (line) => {
      log += `${line}\n`;
      try {
        const message = JSON.parse(line) as { event?: string; url: string; origin: string; token: string };
        if (message.event === 'listening') {
          clearTimeout(timer);
          resolve(message);
        }
      } catch {
        // Not JSON: ordinary log output.
      }
    });
  });
  return {
    ...listening,
    stateDir,
    process: child,
    api: createHttpApi({ baseUrl: listening.origin, token: listening.token }),
    output: () => log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Full-page PNG under test/e2e/artifacts (gitignored), for people to look at. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** Errors the page logged, collected so a test can assert there were none. */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  return errors;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** A label or proposal of the project the server has open; null when there is none. */
export async function getBinary(server: RunningServer, url: string) {
  const response = await fetch(`${server.origin}${url}`, { headers: { authorization: `Bearer ${server.token}` } });
  if (response.status === 404) return null;
  expect(response.status).toBe(200);
  return decodeMaskBlock(response.headers, await response.arrayBuffer());
}

/** Screen position (relative to the page) of an image pixel in the annotator. */
export async function imageToPage(page: Page, x: number, y: number): Promise<{ x: number; y: number }> {
  const host = page.getByTestId('canvas-host');
  const box = (await host.boundingBox())!;
  const scale = Number(await host.getAttribute('data-scale'));
  const ox = Number(await host.getAttribute('data-offset-x'));
  const oy = Number(await host.getAttribute('data-offset-y'));
  return { x: box.x + ox + (x + 0.5) * scale, y: box.y + oy + (y + 0.5) * scale };
}

/** A drag through image pixels (their centres), straight segments of `steps` moves between the points. */
export async function strokeThrough(page: Page, points: [number, number][], steps = 8): Promise<void> {
  const first = await imageToPage(page, ...points[0]);
  await page.mouse.move(first.x, first.y);
  await page.mouse.down();
  for (const p of points.slice(1)) {
    const s = await imageToPage(page, ...p);
    await page.mouse.move(s.x, s.y, { steps });
  }
  await page.mouse.up();
}

/** Until every edit is stored and at least `count` saves of the open image have landed. */
export async function waitSaved(page: Page, count: number): Promise<void> {
  await page.waitForFunction(
    (n) => {
      const el = document.querySelector('[data-testid="save-state"]');
      return el?.getAttribute('data-state') === 'saved' && Number(el.getAttribute('data-saved-count')) >= n;
    },
    count,
    { timeout: 60_000 },
  );
}
