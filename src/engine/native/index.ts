/**
 * Loads maskloop's N-API addon of AVX2/FMA kernels (built by build.mjs at install time).
 * Node-only: the renderer keeps the wasm backend.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTilePlans } from './tilePlans';

/** Activation codes understood by conv2d / matmul (kernels.h). */
export const Activation = { linear: 0, relu: 1, relu6: 2, leakyrelu: 3, sigmoid: 4 } as const;

/** Elementwise op codes (kernels.h). */
export const UnaryOp = {
  Relu: 0, Relu6: 1, LeakyRelu: 2, Sigmoid: 3, Step: 4, Neg: 5, Exp: 6, Square: 7, Abs: 8, Sqrt: 9, Rsqrt: 10,
  Reciprocal: 11,
} as const;
export const BinaryOp = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, Maximum: 4, Minimum: 5, SquaredDifference: 6 } as const;
/** A binary operand's cover of the rows x inner output: all of it, one row shared by every row, or one value per row. */
export const OperandLayout = { Full: 0, Row: 1, Column: 2 } as const;

/**
 * The benches' names for the Winograd settings of 3x3 stride-1 convolutions (NativeAddon.setWinograd):
 * timed per kind of convolution (the default), F(4x4) where it applies, F(2x2) only, none.
 */
export const WINOGRAD_TILE = { auto: -1, f4: 4, f2: 2, direct: 0 } as const;
export type ConvAlgorithm = keyof typeof WINOGRAD_TILE;

/** The benches' name for a Winograd setting. */
export function convAlgorithm(tiles: number): ConvAlgorithm {
  return tiles < 0 ? 'auto' : tiles >= 4 ? 'f4' : tiles >= 2 ? 'f2' : 'direct';
}

/**
 * The addon's functions. All tensors are float32 row-major (images NHWC, filters
 * [kh, kw, cin, cout]); outputs are written completely, so they may be uninitialised.
 * Geometry arrays: conv [n, ih, iw, ic, kh, kw, oc, sh, sw, dh, dw, padTop, padLeft, oh, ow];
 * pool [n, h, w, c, kh, kw, sh, sw, padTop, padLeft, oh, ow].
 */
export interface NativeAddon {
  readonly isa: string;
  /** Sets the worker pool size (the calling thread included); <= 0 restores the default. Returns the new size. */
  setThreads(n: number): number;
  getThreads(): number;
  /** MASKLOOP_THREADS, else the CPUs this process may run on. */
  defaultThreads(): number;
  /**
   * The Winograd tiles of 3x3 stride-1 convolutions: -1, the default (for each kind of
   * convolution, channels and size, whichever of F(4x4) and F(2x2) ran faster when this machine
   * first met it: which one wins depends on the core and on the work per call), 4 (F(4x4) where
   * the output is at least 8 pixels a side, else F(2x2)), 2 (F(2x2) only) or 0 (the direct
   * kernels). For benchmarks and tests.
   */
  setWinograd(tiles: -1 | 0 | 2 | 4): void;
  getWinograd(): -1 | 0 | 2 | 4;
  /** The tiles timed so far: {channels in, channels out, log2 of the output's pixels, tile} per kind of convolution. */
  winogradPlans(): Int32Array;
  winogradPlanCount(): number;
  /** Uses `tile` for that kind instead of timing it; false where the kind has one already (see tilePlans.ts). */
  addWinogradPlan(ic: number, oc: number, sizeLog2: number, tile: number): boolean;
  /**
   * Whether the GEMM microkernel uses AVX-512 (on by default where the CPU has AVX-512F; `isa`
   * then names it). Returns whether it is in use. For benchmarks and tests that compare the two.
   */
  setAvx512(on: boolean): boolean;
  /**
   * Training batch normalisation of rows x channels features by the batch's statistics, scale,
   * shift, and a ReLU when `relu`; writes y and per channel the mean, 1/sqrt(var + eps) and the
   * biased variance.
   */
  batchNorm(
    x: Float32Array, gamma: Float32Array, beta: Float32Array, y: Float32Array, mean: Float32Array, invStd: Float32Array,
    variance: Float32Array, rows: number, channels: number, eps: number, relu: boolean,
  ): void;
  /** Its gradient, from dy and the forward pass's x, y, mean and invStd. */
  batchNormGrad(
    dy: Float32Array, x: Float32Array, y: Float32Array, mean: Float32Array, invStd: Float32Array, gamma: Float32Array,
    dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array, rows: number, channels: number, relu: boolean,
  ): void;
  /**
   * One Adam step of a weight tensor: new weights and moments into xOut, mOut, vOut. settings:
   * learning rate, beta1, beta2, 1 - beta1, 1 - beta2, 1 - beta1^t, 1 - beta2^t, epsilon.
   */
  adam(x: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, xOut: Float32Array, mOut: Float32Array, vOut: Float32Array, settings: Float32Array): void;
  conv2d(x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array, geometry: Int32Array, activation: number, alpha: number): void;
  conv2dBackpropInput(dy: Float32Array, w: Float32Array, dx: Float32Array, geometry: Int32Array): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, geometry: Int32Array): void;
  matmul(
    a: Float32Array, b: Float32Array, c: Float32Array, bias: Float32Array | null, batchA: number, batchB: number,
    m: number, n: number, k: number, transposeA: boolean, transposeB: boolean, activation: number, alpha: number,
  ): void;
  maxPool(x: Float32Array, y: Float32Array, geometry: Int32Array): void;
  maxPoolGrad(dy: Float32Array, x: Float32Array, dx: Float32Array, geometry: Int32Array): void;
  resizeNearest(x: Float32Array, y: Float32Array, n: number, h: number, w: number, c: number, oh: number, ow: number, srcRow: Int32Array, srcCol: Int32Array): void;
  resizeNearestGrad(dy: Float32Array, dx: Float32Array, n: number, h: number, w: number, c: number, oh: number, ow: number, srcRow: Int32Array, srcCol: Int32Array): void;
  unary(op: number, x: Float32Array, y: Float32Array, alpha: number): void;
  /** out = a op b over rows x inner elements; each operand laid out as an OperandLayout, at most one of them not Full. */
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array, rows: number, inner: number, aLayout: number, bLayout: number): void;
  /** Softmax over the last axis of x seen as [x.length / classes, classes]; y may be x. */
  softmax(x: Float32Array, y: Float32Array, classes: number): void;
  /** x as [outer, mid, inner] summed over mid into y [outer, inner] (accumulated in double). */
  sum(x: Float32Array, y: Float32Array, outer: number, mid: number, inner: number): void;
  copyRows(src: Float32Array, srcOffset: number, srcStride: number, dst: Float32Array, dstOffset: number, dstStride: number, rows: number, len: number): void;
}

export interface NativeLoad {
  addon: NativeAddon | null;
  /** Why addon is null, or what was loaded. */
  reason: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where build.mjs puts the addon; MASKLOOP_NATIVE_ADDON overrides (packaged apps). */
export function nativeAddonPath(): string {
  return process.env.MASKLOOP_NATIVE_ADDON || path.join(here, 'build', 'Release', 'maskloop_native.node');
}

let cached: NativeLoad | null = null;

export function loadNativeAddon(): NativeLoad {
  if (cached) return cached;
  cached = load();
  return cached;
}

function load(): NativeLoad {
  if (process.env.MASKLOOP_SKIP_NATIVE === '1') {
    return { addon: null, reason: 'native kernels disabled (MASKLOOP_SKIP_NATIVE=1)' };
  }
  if (process.arch !== 'x64') return { addon: null, reason: `native kernels are x86-64 only (this is ${process.arch})` };
  const file = nativeAddonPath();
  if (!existsSync(file)) {
    return { addon: null, reason: `native addon not built (${file} missing; run \`node src/engine/native/build.mjs\`)` };
  }
  let mod: Partial<NativeAddon> & { unsupported?: string };
  try {
    mod = createRequire(import.meta.url)(file) as typeof mod;
  } catch (err) {
    return { addon: null, reason: `native addon failed to load: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (mod.unsupported) return { addon: null, reason: mod.unsupported };
  if (typeof mod.conv2d !== 'function' || typeof mod.setThreads !== 'function' || typeof mod.softmax !== 'function' || typeof mod.addWinogradPlan !== 'function' || typeof mod.adam !== 'function') {
    return { addon: null, reason: `native addon at ${file} is incomplete (stale build? rebuild it)` };
  }
  const addon = mod as NativeAddon;
  loadTilePlans(addon);
  return { addon, reason: `${addon.isa}, ${addon.getThreads()} threads` };
}
