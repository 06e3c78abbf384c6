// Sets up tfjs' wasm backend in Node as the portable engine (used where the native addon did not
// build). Node-only: it finds the .wasm binaries on disk through the package resolver; the
// Electron renderer instead calls setWasmPaths with URLs and registerWasmKernels() from ./kernels.
//
// Binaries: the SIMD one (and the plain one for runtimes without wasm SIMD). Not the threaded
// one: as shipped it starts its pthread workers from a blob: URL, which Node's Worker refuses
// (ERR_WORKER_PATH), so backend initialisation would fail. tfjs already reports no thread support
// under Node; the flag is pinned to false so a caller setting it cannot break start-up. Using both
// cores from Node takes data-parallel worker_threads, not this binary.
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { registerWasmKernels } from './kernels';

let ready: Promise<boolean> | null = null;

/**
 * Prepares the 'wasm' backend and registers maskloop's training kernels on it. Resolves to
 * whether the backend initialised. Leaves tf's current backend as it was: the caller decides
 * with tf.setBackend('wasm'). Idempotent.
 *
 * As with any registered wasm backend, code must pick a backend explicitly (await
 * tf.setBackend): left to choose, tfjs would pick wasm by priority and throw until it is ready.
 */
export function initWasmBackend(): Promise<boolean> {
  ready ??= start().catch((err: unknown) => {
    ready = null;
    throw err;
  });
  return ready;
}

async function start(): Promise<boolean> {
  const require = createRequire(import.meta.url);
  const binary = (name: string) => require.resolve(`@tensorflow/tfjs-backend-wasm/dist/${name}`);
  // No platform fetch: Node's fetch cannot read file paths, the emscripten loader reads them
  // with fs. setWasmPaths insists on an entry for every binary; the threaded one is never chosen
  // with the flag below.
  setWasmPaths({
    'tfjs-backend-wasm.wasm': binary('tfjs-backend-wasm.wasm'),
    'tfjs-backend-wasm-simd.wasm': binary('tfjs-backend-wasm-simd.wasm'),
    'tfjs-backend-wasm-threaded-simd.wasm': binary('tfjs-backend-wasm-threaded-simd.wasm'),
  });
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  registerWasmKernels();

  const engine = tf.engine();
  if (engine.registry['wasm'] == null) {
    // findBackend starts the asynchronous initialisation without making wasm the current
    // backend; tf.ready() then waits for that pending initialisation.
    if (engine.findBackend('wasm') == null) await tf.ready();
  }
  return engine.registry['wasm'] != null;
}
