/**
 * The one place that chooses the compute backend for the Node engine (CLI, utility process, tests).
 *
 * Preference order, fastest first: native TensorFlow with CUDA, a GPU through WebGPU (Dawn, the
 * `webgpu` package: Vulkan, Metal or D3D12, no CUDA needed), native TensorFlow on CPU, the
 * project's own AVX2/FMA addon on tfjs' cpu backend ('native'), XNNPACK wasm with the project's
 * gradient kernels ('wasm'), and finally tfjs' pure-JS 'cpu' (correct but ~0.1 GFLOP/s).
 * MASKLOOP_BACKEND overrides the order (one name, or a comma-separated preference list).
 */
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fixCpuKernels } from './cpuFixes';

export type BackendChoice = 'tensorflow-gpu' | 'webgpu' | 'tensorflow' | 'native' | 'wasm' | 'cpu';

export const BACKEND_PREFERENCE: readonly BackendChoice[] = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'native', 'wasm', 'cpu'];

export interface BackendAttempt {
  choice: BackendChoice;
  ok: boolean;
  detail: string;
}

export interface BackendInfo {
  /** What maskloop chose, in its own vocabulary. */
  choice: BackendChoice;
  /** The tfjs backend name actually active (tf.getBackend()). */
  tfBackend: string;
  /** Threads the backend computes with. */
  threads: number;
  /** Why each candidate before the chosen one was not used. */
  attempts: BackendAttempt[];
}

let current: BackendInfo | null = null;
let pending: Promise<BackendInfo> | null = null;

function isBackendChoice(s: string): s is BackendChoice {
  return (BACKEND_PREFERENCE as readonly string[]).includes(s);
}

/** Parses MASKLOOP_BACKEND; unknown names are an error rather than a silent fallback. */
export function preferenceFromEnv(value = process.env.MASKLOOP_BACKEND): BackendChoice[] {
  if (!value || !value.trim()) return [...BACKEND_PREFERENCE];
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!isBackendChoice(n)) {
      throw new Error(`MASKLOOP_BACKEND: unknown backend '${n}' (choose from ${BACKEND_PREFERENCE.join(', ')})`);
    }
  }
  return names as BackendChoice[];
}

function configuredThreads(): number {
  const env = Number(process.env.MASKLOOP_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/**
 * Whether the package's libtensorflow binding was installed. Its download happens at npm install
 * and fails offline; importing the package without it would still register all its kernels, so a
 * second TensorFlow package tried afterwards would clash with them.
 */
function tensorflowBindingInstalled(pkg: string): boolean {
  let root: string;
  try {
    root = path.dirname(path.dirname(createRequire(import.meta.url).resolve(pkg)));
  } catch {
    return false;
  }
  const lib = path.join(root, 'lib');
  return fs.existsSync(lib) && fs.readdirSync(lib).some((d) => fs.existsSync(path.join(lib, d, 'tfjs_binding.node')));
}

async function tryTensorflow(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<string> {
  // Both packages register a backend called 'tensorflow' as an import side effect; they are
  // optionalDependencies because their install downloads libtensorflow, which can fail.
  if (!tensorflowBindingInstalled(pkg)) throw new Error(`${pkg} is not installed with its libtensorflow binding`);
  await import(pkg);
  if (!tf.findBackend('tensorflow')) throw new Error(`${pkg} loaded but registered no backend`);
  if (!(await tf.setBackend('tensorflow'))) throw new Error('tensorflow backend failed to initialise');
  return `${pkg}`;
}

/** Where Dawn finds no Vulkan loader it says so on stderr; checking first keeps CPU machines quiet. */
function vulkanLoaderPresent(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':'), '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', '/lib/x86_64-linux-gnu', '/lib64'];
  return dirs.some((d) => d && fs.existsSync(path.join(d, 'libvulkan.so.1')));
}

/** Software rasterisers answer as adapters too; on them training is slower than on the CPU paths. */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|software/i;

async function tryWebgpu(): Promise<string> {
  if (!vulkanLoaderPresent()) throw new Error('no Vulkan loader (libvulkan.so.1) for WebGPU');
  let dawn: { create(flags: string[]): GPU; globals: object };
  try {
    dawn = await import('webgpu');
  } catch (err) {
    throw new Error(`the webgpu package is not installed (${firstLine(err)})`);
  }
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter: no GPU with a Vulkan, Metal or D3D12 driver');
  const { vendor, architecture, description } = adapter.info;
  const name = [vendor, architecture, description].filter(Boolean).join(' ') || 'unnamed adapter';
  if (adapter.info.isFallbackAdapter || SOFTWARE_ADAPTER.test(name)) throw new Error(`only a software adapter (${name})`);
  // tfjs' webgpu backend looks for the browser's globals: navigator.gpu and the GPU* constants.
  Object.assign(globalThis, dawn.globals);
  const nav = ((globalThis as { navigator?: object }).navigator ??= {}) as { gpu?: GPU };
  Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error(`webgpu backend failed to start on ${name}`);
  return `WebGPU on ${name}`;
}

async function tryNative(threads: number): Promise<string> {
  const { registerNativeBackend } = await import('./native/register');
  const { loadNativeAddon } = await import('./native/index');
  const loaded = loadNativeAddon();
  if (!loaded.addon) throw new Error(loaded.reason);
  if (!registerNativeBackend()) throw new Error('native addon loaded but backend registration failed');
  loaded.addon.setThreads(threads);
  if (!(await tf.setBackend('native'))) throw new Error('native backend failed to initialise');
  return `${loaded.addon.isa.toUpperCase().replaceAll('+', '/')} addon, ${loaded.addon.getThreads()} threads`;
}

async function tryWasm(threads: number): Promise<string> {
  const { initWasmBackend, wasmThreads } = await import('./wasm/init');
  if (!(await initWasmBackend({ threads }))) throw new Error('wasm backend failed to initialise');
  if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to start');
  wasmThreadCount = wasmThreads();
  return `XNNPACK SIMD, ${wasmThreadCount} thread${wasmThreadCount === 1 ? '' : 's'}`;
}

// The threaded wasm binary may fall back to one thread; the report must say what really runs.
let wasmThreadCount = 1;

async function activate(choice: BackendChoice, threads: number): Promise<string> {
  switch (choice) {
    case 'tensorflow-gpu':
      return tryTensorflow('@tensorflow/tfjs-node-gpu');
    case 'webgpu':
      return tryWebgpu();
    case 'tensorflow':
      return tryTensorflow('@tensorflow/tfjs-node');
    case 'native':
      return tryNative(threads);
    case 'wasm':
      return tryWasm(threads);
    case 'cpu':
      if (!(await tf.setBackend('cpu'))) throw new Error('cpu backend failed to start');
      return 'pure JavaScript reference kernels (slow)';
  }
}

function threadsOf(choice: BackendChoice, threads: number): number {
  if (choice === 'wasm') return wasmThreadCount;
  if (choice === 'cpu' || choice === 'webgpu') return 1;
  return threads;
}

/**
 * Chooses and activates the backend once per process and reports the choice as one log line.
 * Later calls return the same answer. `log: false` silences the line (for --json output).
 */
export function initEngine(options: { preference?: BackendChoice[]; log?: boolean } = {}): Promise<BackendInfo> {
  if (current) return Promise.resolve(current);
  if (pending) return pending;
  pending = (async () => {
    fixCpuKernels();
    const preference = options.preference ?? preferenceFromEnv();
    const threads = configuredThreads();
    const attempts: BackendAttempt[] = [];
    for (const choice of preference) {
      try {
        const detail = await activate(choice, threads);
        attempts.push({ choice, ok: true, detail });
        current = { choice, tfBackend: tf.getBackend(), threads: threadsOf(choice, threads), attempts };
        if (options.log !== false) console.error(describeBackend(current));
        return current;
      } catch (err) {
        attempts.push({ choice, ok: false, detail: firstLine(err) });
      }
    }
    pending = null;
    throw new Error(`no compute backend could start: ${attempts.map((a) => `${a.choice}: ${a.detail}`).join('; ')}`);
  })();
  return pending;
}

/**
 * Makes another backend the active one, for tools that compare backends in one process (the
 * GPU check). Tensors must not cross over: reading a WebGPU tensor from another backend would
 * need a synchronous read-back, which Node's WebGPU lacks.
 */
export async function switchBackend(choice: BackendChoice): Promise<BackendInfo> {
  await initEngine({ preference: [choice], log: false });
  if (current?.choice === choice) return current;
  const threads = configuredThreads();
  const detail = await activate(choice, threads);
  current = { choice, tfBackend: tf.getBackend(), threads: threadsOf(choice, threads), attempts: [{ choice, ok: true, detail }] };
  return current;
}

/** The active backend, or null before initEngine() resolved. */
export function backendInfo(): BackendInfo | null {
  return current;
}

export function describeBackend(info: BackendInfo): string {
  const chosen = info.attempts[info.attempts.length - 1];
  const skipped = info.attempts.filter((a) => !a.ok).map((a) => `${a.choice} unavailable (${a.detail})`);
  return `[maskloop] backend: ${info.choice} — ${chosen.detail}` + (skipped.length ? `; ${skipped.join('; ')}` : '');
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const line = msg.split('\n')[0].trim();
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}
