// Sets up tfjs' wasm backend in Node as the portable engine (used where the native addon did not
// build). Node-only: it finds the .wasm binaries on disk through the package resolver; the
// Electron renderer instead calls setWasmPaths with URLs and registerWasmKernels() from ./kernels.
//
// One thread by default: the SIMD binary. The threaded SIMD binary does not start in Node as
// shipped: it creates its pthread workers from blob: URLs, which Node's Worker refuses
// (ERR_WORKER_PATH), and it sizes its pool to half the logical cores (1 on the 2-core machines
// this runs on). `threads > 1` starts it anyway through startThreaded() below; if that fails the
// backend falls back to one thread.
import * as tf from '@tensorflow/tfjs-core';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerWasmKernels } from './kernels';

const require = createRequire(import.meta.url);

export interface WasmInitOptions {
  /**
   * XNNPACK threads (default 1). More than one starts the threaded binary with Node worker
   * threads; worth it only when that many cores are otherwise idle.
   */
  threads?: number;
}

let ready: Promise<boolean> | null = null;

/**
 * Prepares the 'wasm' backend and registers maskloop's training kernels on it. Resolves to
 * whether the backend initialised. Leaves tf's current backend as it was: the caller decides
 * with tf.setBackend('wasm'). Idempotent: the first call's options hold for the process.
 *
 * As with any registered wasm backend, code must pick a backend explicitly (await
 * tf.setBackend): left to choose, tfjs would pick wasm by priority and throw until it is ready.
 */
export function initWasmBackend(options: WasmInitOptions = {}): Promise<boolean> {
  ready ??= start(Math.max(1, Math.floor(options.threads ?? 1))).catch((err: unknown) => {
    ready = null;
    throw err;
  });
  return ready;
}

/** Threads the running wasm backend computes with (1 until it has started). */
export function wasmThreads(): number {
  return tf.engine().registry['wasm'] != null ? Math.max(1, getThreadsCount()) : 1;
}

async function start(threads: number): Promise<boolean> {
  const binary = (name: string) => require.resolve(`@tensorflow/tfjs-backend-wasm/dist/${name}`);
  // No platform fetch: Node's fetch cannot read file paths, the emscripten loader reads them
  // with fs. setWasmPaths insists on an entry for every binary.
  setWasmPaths({
    'tfjs-backend-wasm.wasm': binary('tfjs-backend-wasm.wasm'),
    'tfjs-backend-wasm-simd.wasm': binary('tfjs-backend-wasm-simd.wasm'),
    'tfjs-backend-wasm-threaded-simd.wasm': binary('tfjs-backend-wasm-threaded-simd.wasm'),
  });
  registerWasmKernels();
  if (tf.engine().registry['wasm'] != null) return true;

  if (threads > 1) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    setThreadsCount(threads);
    if (await startThreaded(threads)) return true;
    setThreadsCount(1);
  }
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  return initialise();
}

async function initialise(): Promise<boolean> {
  const engine = tf.engine();
  // findBackend starts the asynchronous initialisation without making wasm the current
  // backend; tf.ready() then waits for that pending initialisation.
  if (engine.findBackend('wasm') == null) await tf.ready();
  return engine.registry['wasm'] != null;
}

/**
 * Starts the threaded binary in Node. tfjs hands emscripten its worker script and its main
 * script as Blobs (blob: URLs in the browser); Node's Worker and the worker's importScripts
 * only read files. For the length of the start-up this swaps in, and then restores:
 *  - Blob, recording the text it is built from, and URL.createObjectURL, which writes the worker
 *    script's text to a file and returns its path;
 *  - worker_threads.Worker, with a subclass that replaces the main-script Blob in the 'load'
 *    message by a file (prefixed with the bundle-level requires its source refers to), starts
 *    workers without the parent's execArgv, and never holds the process open: the pool's
 *    threads only ever run inside a call made from the main thread, so an idle pool must not
 *    keep a finished CLI alive;
 *  - os.cpus, because the binary sizes its thread pool to half the logical cores.
 * The Worker subclass stays in use for workers the pool spawns later.
 */
async function startThreaded(threads: number): Promise<boolean> {
  const os = require('node:os') as { cpus: () => unknown[] };
  const workerThreads = require('node:worker_threads') as { Worker: typeof import('node:worker_threads').Worker };
  const dir = mkdtempSync(join(tmpdir(), 'maskloop-wasm-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

  const texts = new WeakMap<object, string>();
  const files = new Map<string, string>();
  const toFile = (name: string, text: string) => {
    let path = files.get(text);
    if (!path) {
      path = join(dir, name);
      writeFileSync(path, text);
      files.set(text, path);
    }
    return path;
  };
  const bundle = readFileSync(require.resolve('@tensorflow/tfjs-backend-wasm'), 'utf8');
  const prelude =
    [...bundle.matchAll(/^var (require\$\$\d+) = require\('([^']+)'\);$/gm)]
      .map((m) => `var ${m[1]} = require(${JSON.stringify(m[2])});`)
      .join('\n') + '\nvar commonjsGlobal = globalThis;\n';

  const OriginalBlob = globalThis.Blob;
  const originalCreateObjectURL = URL.createObjectURL;
  const OriginalWorker = workerThreads.Worker;
  const originalCpus = os.cpus;

  class RecordingBlob extends OriginalBlob {
    constructor(parts?: BlobPart[], options?: BlobPropertyBag) {
      super(parts, options);
      if (parts?.every((p) => typeof p === 'string')) texts.set(this, parts.join(''));
    }
  }
  // A worker that fails to load throws from emscripten's error handler, which would take the
  // whole process down; during start-up it fails the threaded start instead.
  let started = false;
  let fail: () => void = () => {};
  const failed = new Promise<boolean>((resolve) => (fail = () => resolve(false)));
  type NodeWorker = InstanceType<typeof OriginalWorker>;
  const workers: NodeWorker[] = [];
  class FileWorker extends OriginalWorker {
    constructor(filename: string | URL, options?: ConstructorParameters<typeof OriginalWorker>[1]) {
      // The pool's scripts are self-contained CommonJS: the parent's flags (a TypeScript loader,
      // --input-type) are of no use to them and some make the worker fail to start.
      super(filename, { ...options, execArgv: [] });
      super.unref();
      const self = this as unknown as NodeWorker;
      workers.push(self);
      const on = self.on.bind(self);
      (self as unknown as { on: unknown }).on = (event: string | symbol, listener: (...a: unknown[]) => void) =>
        on(event, event === 'error' ? (...a: unknown[]) => (started ? listener(...a) : fail()) : listener);
    }
    override ref(): void {}
    override postMessage(message: unknown, transfer?: Parameters<NodeWorker['postMessage']>[1]): void {
      const m = message as { cmd?: string; urlOrBlob?: unknown } | null;
      const text = m?.cmd === 'load' && typeof m.urlOrBlob === 'object' && m.urlOrBlob ? texts.get(m.urlOrBlob) : undefined;
      if (text !== undefined) message = { ...m, urlOrBlob: toFile('main.js', prelude + text) };
      super.postMessage(message, transfer);
    }
  }

  globalThis.Blob = RecordingBlob;
  URL.createObjectURL = (obj: Blob | MediaSource) => {
    const text = texts.get(obj);
    return text !== undefined && text.includes('worker_threads') ? toFile('worker.cjs', text) : originalCreateObjectURL(obj);
  };
  workerThreads.Worker = FileWorker as unknown as typeof OriginalWorker;
  const cpus = originalCpus();
  os.cpus = () => Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length]);
  const timeout = setTimeout(fail, 60_000);
  try {
    started = await Promise.race([initialise(), failed]);
  } catch {
    started = false;
  } finally {
    clearTimeout(timeout);
    globalThis.Blob = OriginalBlob;
    URL.createObjectURL = originalCreateObjectURL;
    workerThreads.Worker = OriginalWorker;
    os.cpus = originalCpus;
  }
  if (!started) for (const w of workers) void w.terminate();
  return started;
}
