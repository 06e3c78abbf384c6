/**
 * The 'native' tfjs backend: a MathBackendCPU instance (tensors are plain typed arrays) carrying
 * every kernel of tfjs' 'cpu' backend, with the hot ones replaced by the AVX2/FMA addon.
 *
 * Each replacement handles the float32 NHWC cases the addon implements and hands anything else to
 * the cpu kernel it replaces (counted, see nativeFallbacks()). Because tfjs' registered gradients
 * call kernels by name (Conv2D's gradient runs Conv2DBackpropInput / Conv2DBackpropFilter,
 * MaxPool's runs MaxPoolGrad, ...), replacing kernels is enough for training to use them.
 * The 'cpu' backend itself is never modified: it stays the reference the tests compare against.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, slice_util, util } from '@tensorflow/tfjs-core';
import type { BackendValues, DataId, DataType, KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { FusedBatchNormBackend } from '../model/unet';
import type { FusedAdamBackend } from '../train/optimizerState';
import { Activation, BinaryOp, loadNativeAddon, OperandLayout, UnaryOp, type NativeAddon } from './index';
import { saveTilePlans } from './tilePlans';

export const NATIVE_BACKEND = 'native';

/** Above tfjs' own backends (cpu 1, wasm/webgl 2): when registered, native is the best CPU choice. */
const DEFAULT_PRIORITY = 3;

interface KernelArgs {
  // Optional inputs (bias, preluActivationWeights) are read as possibly undefined where used.
  inputs: Record<string, TensorInfo>;
  backend: MathBackendCPU;
  attrs?: NamedAttrMap;
}
type Fast = (args: KernelArgs) => TensorInfo | TensorInfo[] | null;

const fallbackCounts = new Map<string, number>();

/** How often each replaced kernel handed a call to the cpu kernel (shapes/dtypes it does not handle). */
export function nativeFallbacks(): Record<string, number> {
  return Object.fromEntries(fallbackCounts);
}

export function resetNativeFallbacks(): void {
  fallbackCounts.clear();
}

let registered = false;

/**
 * Registers the 'native' backend and its kernels; false when the addon is unavailable (see
 * loadNativeAddon().reason). Idempotent.
 */
export function registerNativeBackend(options: { priority?: number } = {}): boolean {
  // A later tf.removeBackend('native') drops the factory but not the kernels: re-add just that.
  if (registered && tf.findBackendFactory(NATIVE_BACKEND)) return true;
  const { addon } = loadNativeAddon();
  if (!addon) return false;
  if (tf.getKernelsForBackend('cpu').length === 0) {
    throw new Error("tfjs 'cpu' kernels are not registered; import '@tensorflow/tfjs-backend-cpu' first");
  }
  if (!tf.findBackendFactory(NATIVE_BACKEND)) {
    tf.registerBackend(
      NATIVE_BACKEND,
      () => new NativeBackend(),
      options.priority ?? DEFAULT_PRIORITY,
    );
  }
  if (registered) return true;
  const overrides = nativeKernels(addon);
  for (const config of tf.getKernelsForBackend('cpu')) {
    if (overrides.has(config.kernelName) || tf.getKernel(config.kernelName, NATIVE_BACKEND)) continue;
    tf.registerKernel({ ...config, backendName: NATIVE_BACKEND });
  }
  for (const [kernelName, kernelFunc] of overrides) {
    if (tf.getKernel(kernelName, NATIVE_BACKEND)) tf.unregisterKernel(kernelName, NATIVE_BACKEND);
    tf.registerKernel({ kernelName, backendName: NATIVE_BACKEND, kernelFunc } as KernelConfig);
  }
  registered = true;
  return true;
}

/** Names of the kernels the addon implements (the rest of 'native' is tfjs' cpu code). */
export function nativeKernelNames(): string[] {
  const { addon } = loadNativeAddon();
  return addon ? [...nativeKernels(addon).keys()] : [];
}

// ---------------------------------------------------------------------------------------------

function values(backend: MathBackendCPU, t: TensorInfo): Float32Array | null {
  if (t.dtype !== 'float32') return null;
  const v = backend.data.get(t.dataId)?.values;
  if (v instanceof Float32Array) return v;
  // A bool or int32 tensor cast to float32 keeps its integer array (the cpu Cast is a relabel):
  // the kernels need floats, so convert a copy.
  if (v instanceof Uint8Array || v instanceof Int32Array) return Float32Array.from(v);
  return null;
}

/**
 * Recycles the output buffers of native kernels. In a VM every first touch of a fresh page is
 * expensive (measured: 16 ms to fault in a new 16 MB activation, against 1.5 ms to fill a reused
 * one), and tfjs allocates a new array for every op output, so reusing them roughly halves the
 * time of a training step.
 *
 * A buffer is recycled only when it is provably private: this pool allocated it, no tensor data
 * still refers to it (views of it, e.g. from the cpu Slice kernel, count as references), and it
 * was never handed out by readSync()/read() (which return the backing array itself, so user code
 * may hold it). Kernels overwrite every element of their outputs, so stale contents never show.
 */
class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private freeBytes = 0;
  private readonly owned = new WeakSet<ArrayBuffer>();
  private readonly escaped = new WeakSet<ArrayBuffer>();
  /** Live tensor data entries per owned buffer. */
  private readonly holders = new Map<ArrayBuffer, number>();

  constructor(private readonly capBytes: number) {}

  alloc(size: number): Float32Array {
    if (size < MIN_POOLED) return new Float32Array(size);
    const list = this.free.get(size);
    const reused = list?.pop();
    if (reused) {
      this.freeBytes -= size * 4;
      return reused;
    }
    // Never zero-filled: kernels overwrite every element. The ArrayBuffer is exactly the array's
    // size, as tfjs code that looks at `.buffer` expects.
    const buf = Buffer.allocUnsafeSlow(size * 4);
    const arr =
      buf.byteOffset === 0 && buf.buffer.byteLength === size * 4 ? new Float32Array(buf.buffer, 0, size) : new Float32Array(size);
    this.owned.add(arr.buffer as ArrayBuffer);
    return arr;
  }

  hold(values: unknown): void {
    const buf = bufferOf(values);
    if (buf && this.owned.has(buf)) this.holders.set(buf, (this.holders.get(buf) ?? 0) + 1);
  }

  /** The data entry that held `values` is gone: recycle the buffer if nothing else refers to it. */
  unhold(values: unknown): void {
    const buf = bufferOf(values);
    if (!buf || !this.owned.has(buf)) return;
    const left = (this.holders.get(buf) ?? 1) - 1;
    if (left > 0) {
      this.holders.set(buf, left);
      return;
    }
    this.holders.delete(buf);
    if (this.escaped.has(buf)) return;
    const size = buf.byteLength / 4;
    if (size < MIN_POOLED || this.freeBytes + buf.byteLength > this.capBytes) return;
    const list = this.free.get(size) ?? [];
    list.push(new Float32Array(buf, 0, size));
    this.free.set(size, list);
    this.freeBytes += buf.byteLength;
  }

  escape(values: unknown): void {
    const buf = bufferOf(values);
    if (buf && this.owned.has(buf)) this.escaped.add(buf);
  }

  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
  }

  get pooledBytes(): number {
    return this.freeBytes;
  }
}

/** Smaller outputs are cheap to allocate; pooling them would only add bookkeeping. */
const MIN_POOLED = 16384;

function bufferOf(values: unknown): ArrayBuffer | null {
  return ArrayBuffer.isView(values) && values.buffer instanceof ArrayBuffer ? values.buffer : null;
}

/** MASKLOOP_POOL_MB, else 1 GiB or an eighth of the machine's memory, whichever is less. */
function poolCapBytes(): number {
  const mb = Number(process.env.MASKLOOP_POOL_MB);
  if (process.env.MASKLOOP_POOL_MB && Number.isFinite(mb) && mb >= 0) return mb * 2 ** 20;
  return Math.min(2 ** 30, os.totalmem() / 8);
}

function requireAddon(): NativeAddon {
  const { addon, reason } = loadNativeAddon();
  if (!addon) throw new Error(reason);
  return addon;
}

/** MathBackendCPU whose native kernel outputs come from a BufferPool; runs training batch normalisation fused. */
export class NativeBackend extends MathBackendCPU implements FusedBatchNormBackend, FusedAdamBackend {
  readonly pool = new BufferPool(poolCapBytes());

  batchNormForward(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, eps: number, relu: boolean) {
    const channels = x.shape[3];
    const rows = x.size / channels;
    const y = this.pool.alloc(x.size);
    const [mean, invStd, variance] = [0, 1, 2].map(() => new Float32Array(channels));
    requireAddon().batchNorm(this.floats(x), this.floats(gamma), this.floats(beta), y, mean, invStd, variance, rows, channels, eps, relu);
    return { y: this.tensor(y, x.shape) as tf.Tensor4D, mean: this.tensor(mean, [channels]) as tf.Tensor1D, invStd: this.tensor(invStd, [channels]) as tf.Tensor1D, variance: this.tensor(variance, [channels]) as tf.Tensor1D };
  }

  batchNormBackward(dy: tf.Tensor4D, x: tf.Tensor4D, y: tf.Tensor4D, mean: tf.Tensor1D, invStd: tf.Tensor1D, gamma: tf.Tensor, relu: boolean) {
    const channels = x.shape[3];
    const dx = this.pool.alloc(x.size);
    const [dgamma, dbeta] = [new Float32Array(channels), new Float32Array(channels)];
    requireAddon().batchNormGrad(this.floats(dy), this.floats(x), this.floats(y), this.floats(mean), this.floats(invStd), this.floats(gamma), dx, dgamma, dbeta, x.size / channels, channels, relu);
    return { dx: this.tensor(dx, x.shape) as tf.Tensor4D, dgamma: this.tensor(dgamma, [channels]) as tf.Tensor1D, dbeta: this.tensor(dbeta, [channels]) as tf.Tensor1D };
  }

  adamStep(weights: tf.Tensor, gradient: tf.Tensor, m: tf.Tensor, v: tf.Tensor, settings: Float32Array) {
    const [x, mo, vo] = [0, 1, 2].map(() => this.pool.alloc(weights.size));
    requireAddon().adam(this.floats(weights), this.floats(gradient), this.floats(m), this.floats(v), x, mo, vo, settings);
    return { weights: this.tensor(x, weights.shape), m: this.tensor(mo, weights.shape), v: this.tensor(vo, weights.shape) };
  }

  /** A tensor's floats as stored, without letting them escape the pool as dataSync would. */
  private floats(t: tf.Tensor): Float32Array {
    const v = values(this, t);
    if (!v) throw new Error(`native kernel: expected float32, got ${t.dtype}`);
    return v;
  }

  private tensor(data: Float32Array, shape: number[]): tf.Tensor {
    return tf.engine().makeTensor(data, shape, 'float32', this);
  }

  constructor() {
    super();
    // Silences the cpu backend's "install tfjs-node" advice, which is wrong for this backend.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  override write(values: BackendValues, shape: number[], dtype: DataType): DataId {
    const id = super.write(values, shape, dtype);
    this.pool.hold(values);
    return id;
  }

  override move(dataId: DataId, values: BackendValues, shape: number[], dtype: DataType, refCount: number): void {
    super.move(dataId, values, shape, dtype, refCount);
    this.pool.hold(values);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const values = this.data.get(dataId)?.values;
    const done = super.disposeData(dataId, force);
    if (values && !this.data.has(dataId)) this.pool.unhold(values);
    return done;
  }

  override readSync(dataId: DataId): BackendValues {
    const values = super.readSync(dataId);
    this.pool.escape(values);
    return values;
  }

  override dispose(): void {
    this.pool.clear();
    super.dispose();
  }
}

function allocOutput(backend: MathBackendCPU, size: number): Float32Array {
  return backend instanceof NativeBackend ? backend.pool.alloc(size) : new Float32Array(size);
}

const sizeOf = (shape: number[]) => util.sizeFromShape(shape);

function output(backend: MathBackendCPU, shape: number[], data: Float32Array): TensorInfo {
  return backend.makeTensorInfo(shape, 'float32', data);
}

function activationCode(activation: unknown, alpha: unknown): { code: number; alpha: number } | null {
  switch (activation ?? 'linear') {
    case 'linear':
      return { code: Activation.linear, alpha: 0 };
    case 'relu':
      return { code: Activation.relu, alpha: 0 };
    case 'relu6':
      return { code: Activation.relu6, alpha: 0 };
    case 'sigmoid':
      return { code: Activation.sigmoid, alpha: 0 };
    case 'leakyrelu':
      return typeof alpha === 'number' ? { code: Activation.leakyrelu, alpha } : null;
    default:
      return null;
  }
}

function convGeometry(info: backend_util.Conv2DInfo): Int32Array {
  return Int32Array.of(
    info.batchSize, info.inHeight, info.inWidth, info.inChannels,
    info.filterHeight, info.filterWidth, info.outChannels,
    info.strideHeight, info.strideWidth, info.dilationHeight, info.dilationWidth,
    info.padInfo.top, info.padInfo.left, info.outHeight, info.outWidth,
  );
}

/** Bias usable by the fused epilogue: one value per output channel (a scalar is expanded). */
function channelBias(backend: MathBackendCPU, bias: TensorInfo | undefined, channels: number): Float32Array | null | 'unfusable' {
  if (!bias) return null;
  const v = values(backend, bias);
  if (!v) return 'unfusable';
  const size = sizeOf(bias.shape);
  if (size === 1) return new Float32Array(channels).fill(v[0]);
  if (size === channels && bias.shape[bias.shape.length - 1] === channels) return v;
  return 'unfusable';
}

/** Runs a 'native' kernel by name on intermediate results (the caller disposes them). */
function runNative(name: string, inputs: NamedTensorInfoMap, backend: MathBackendCPU, attrs: NamedAttrMap = {}): TensorInfo {
  const k = tf.getKernel(name, NATIVE_BACKEND);
  if (!k) throw new Error(`native backend has no kernel ${name}`);
  return k.kernelFunc({ inputs, backend, attrs }) as TensorInfo;
}

/**
 * The unfused remainder of a fused op whose bias or activation the epilogue cannot take:
 * bias add and activation through the backend's own kernels.
 */
function finishFused(
  backend: MathBackendCPU, y: TensorInfo, bias: TensorInfo | undefined, activation: string,
  prelu: TensorInfo | undefined, leakyreluAlpha: number | undefined,
): TensorInfo {
  let cur = y;
  const step = (next: TensorInfo) => {
    backend.disposeIntermediateTensorInfo(cur);
    cur = next;
  };
  if (bias) step(runNative('Add', { a: cur, b: bias }, backend));
  switch (activation) {
    case 'linear':
      break;
    case 'relu':
      step(runNative('Relu', { x: cur }, backend));
      break;
    case 'relu6':
      step(runNative('Relu6', { x: cur }, backend));
      break;
    case 'sigmoid':
      step(runNative('Sigmoid', { x: cur }, backend));
      break;
    case 'elu':
      step(runNative('Elu', { x: cur }, backend));
      break;
    case 'leakyrelu':
      step(runNative('LeakyRelu', { x: cur }, backend, { alpha: leakyreluAlpha as number }));
      break;
    case 'prelu':
      if (!prelu) throw new Error('prelu activation needs preluActivationWeights');
      step(runNative('Prelu', { x: cur, alpha: prelu }, backend));
      break;
    default:
      throw new Error(`Activation ${activation} has not been implemented for the native backend.`);
  }
  return cur;
}

// --- convolution -------------------------------------------------------------------------------

function convInfoOf(xShape: number[], filterShape: number[], attrs: NamedAttrMap, dilations: unknown): backend_util.Conv2DInfo | null {
  if (attrs.dataFormat === 'NCHW' || xShape.length !== 4 || filterShape.length !== 4) return null;
  return backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    attrs.strides as number | [number, number], (dilations ?? 1) as number | [number, number],
    attrs.pad as backend_util.ExplicitPadding | 'same' | 'valid' | number,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined, false, 'channelsLast',
  );
}

function conv2d(addon: NativeAddon, args: KernelArgs, fused: boolean): TensorInfo | null {
  const { inputs, backend } = args;
  const attrs = args.attrs ?? {};
  const { x, filter } = inputs;
  const xv = values(backend, x);
  const wv = values(backend, filter);
  if (!xv || !wv) return null;
  const info = convInfoOf(x.shape, filter.shape, attrs, attrs.dilations);
  if (!info) return null;
  const activation = fused ? ((attrs.activation as string | undefined) ?? 'linear') : 'linear';
  const bias = fused ? channelBias(backend, inputs.bias, info.outChannels) : null;
  const act = activationCode(activation, attrs.leakyreluAlpha);
  const epilogueTakesAll = bias !== 'unfusable' && act !== null;
  const y = allocOutput(backend, sizeOf(info.outShape));
  addon.conv2d(
    xv, wv, epilogueTakesAll ? (bias as Float32Array | null) : null, y, convGeometry(info),
    epilogueTakesAll ? act.code : Activation.linear, epilogueTakesAll ? act.alpha : 0,
  );
  // Keeps a tile this call timed for the next process (tilePlans.ts; nothing to do otherwise).
  saveTilePlans(addon);
  const out = output(backend, info.outShape, y);
  if (epilogueTakesAll) return out;
  return finishFused(backend, out, inputs.bias as TensorInfo | undefined, activation, inputs.preluActivationWeights as TensorInfo | undefined, attrs.leakyreluAlpha as number | undefined);
}

function conv2dBackpropInput(addon: NativeAddon, { inputs, backend, attrs = {} }: KernelArgs): TensorInfo | null {
  const { dy, filter } = inputs;
  const dyv = values(backend, dy);
  const wv = values(backend, filter);
  if (!dyv || !wv) return null;
  const info = convInfoOf(attrs.inputShape as number[], filter.shape, attrs, 1);
  if (!info || !util.arraysEqual(info.outShape, dy.shape)) return null;
  const dx = allocOutput(backend, sizeOf(info.inShape));
  addon.conv2dBackpropInput(dyv, wv, dx, convGeometry(info));
  saveTilePlans(addon);
  return output(backend, info.inShape, dx);
}

function conv2dBackpropFilter(addon: NativeAddon, { inputs, backend, attrs = {} }: KernelArgs): TensorInfo | null {
  const { x, dy } = inputs;
  const xv = values(backend, x);
  const dyv = values(backend, dy);
  if (!xv || !dyv) return null;
  const info = convInfoOf(x.shape, attrs.filterShape as number[], attrs, 1);
  if (!info || !util.arraysEqual(info.outShape, dy.shape)) return null;
  const dw = allocOutput(backend, sizeOf(info.filterShape));
  addon.conv2dBackpropFilter(xv, dyv, dw, convGeometry(info));
  return output(backend, info.filterShape, dw);
}

// --- matmul ------------------------------------------------------------------------------------

function matMul(addon: NativeAddon, args: KernelArgs, fused: boolean): TensorInfo | null {
  const { inputs, backend } = args;
  const attrs = args.attrs ?? {};
  const { a, b } = inputs;
  const av = values(backend, a);
  const bv = values(backend, b);
  if (!av || !bv || a.shape.length < 2 || b.shape.length < 2) return null;
  const transposeA = Boolean(attrs.transposeA);
  const transposeB = Boolean(attrs.transposeB);
  const ra = a.shape.length;
  const rb = b.shape.length;
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  if (k !== (transposeB ? b.shape[rb - 1] : b.shape[rb - 2])) return null;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  } catch {
    return null; // let the cpu kernel raise its own error
  }
  const batchA = sizeOf(a.shape.slice(0, -2));
  const batchB = sizeOf(b.shape.slice(0, -2));
  const batch = Math.max(batchA, batchB);
  if (batchA === 0 || batchB === 0 || batch % batchA !== 0 || batch % batchB !== 0) return null;
  const outShape = [...outer, m, n];
  const activation = fused ? ((attrs.activation as string | undefined) ?? 'linear') : 'linear';
  const bias = fused ? channelBias(backend, inputs.bias, n) : null;
  const act = activationCode(activation, attrs.leakyreluAlpha);
  const epilogueTakesAll = bias !== 'unfusable' && act !== null;
  const c = allocOutput(backend, batch * m * n);
  addon.matmul(
    av, bv, c, epilogueTakesAll ? (bias as Float32Array | null) : null, batchA, batchB, m, n, k, transposeA, transposeB,
    epilogueTakesAll ? act.code : Activation.linear, epilogueTakesAll ? act.alpha : 0,
  );
  const out = output(backend, outShape, c);
  if (epilogueTakesAll) return out;
  return finishFused(backend, out, inputs.bias as TensorInfo | undefined, activation, inputs.preluActivationWeights as TensorInfo | undefined, attrs.leakyreluAlpha as number | undefined);
}

// --- pooling and resizing ----------------------------------------------------------------------

function poolInfo(xShape: number[], attrs: NamedAttrMap): backend_util.Conv2DInfo | null {
  if (xShape.length !== 4) return null;
  return backend_util.computePool2DInfo(
    xShape as [number, number, number, number], attrs.filterSize as number | [number, number],
    attrs.strides as number | [number, number], 1,
    attrs.pad as backend_util.ExplicitPadding | 'same' | 'valid' | number,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
  );
}

function poolGeometry(info: backend_util.Conv2DInfo): Int32Array {
  return Int32Array.of(
    info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.effectiveFilterHeight, info.effectiveFilterWidth,
    info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left, info.outHeight, info.outWidth,
  );
}

function maxPool(addon: NativeAddon, { inputs, backend, attrs = {} }: KernelArgs): TensorInfo | null {
  const xv = values(backend, inputs.x);
  const info = xv && poolInfo(inputs.x.shape, attrs);
  if (!xv || !info) return null;
  const y = allocOutput(backend, sizeOf(info.outShape));
  addon.maxPool(xv, y, poolGeometry(info));
  return output(backend, info.outShape, y);
}

function maxPoolGrad(addon: NativeAddon, { inputs, backend, attrs = {} }: KernelArgs): TensorInfo | null {
  const { dy, input } = inputs;
  const dyv = values(backend, dy);
  const xv = values(backend, input);
  const info = xv && poolInfo(input.shape, attrs);
  if (!dyv || !xv || !info || !util.arraysEqual(info.outShape, dy.shape)) return null;
  const dx = allocOutput(backend, sizeOf(input.shape));
  addon.maxPoolGrad(dyv, xv, dx, poolGeometry(info));
  return output(backend, input.shape, dx);
}

/** Source row/col of every output row/col, with tfjs cpu's exact arithmetic. */
function nearestMap(inSize: number, outSize: number, alignCorners: boolean, halfPixelCenters: boolean): Int32Array {
  const effIn = alignCorners && outSize > 1 ? inSize - 1 : inSize;
  const effOut = alignCorners && outSize > 1 ? outSize - 1 : outSize;
  const ratio = effIn / effOut;
  const map = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const frac = halfPixelCenters ? ratio * (i + 0.5) : ratio * i;
    let src = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
    if (halfPixelCenters) src = Math.max(0, src);
    map[i] = src;
  }
  return map;
}

function resizeNearest(addon: NativeAddon, { inputs, backend, attrs = {} }: KernelArgs): TensorInfo | null {
  const { images } = inputs;
  const xv = values(backend, images);
  if (!xv || images.shape.length !== 4) return null;
  const [n, h, w, c] = images.shape;
  const [oh, ow] = attrs.size as [number, number];
  const align = Boolean(attrs.alignCorners);
  const half = Boolean(attrs.halfPixelCenters);
  const y = allocOutput(backend, n * oh * ow * c);
  addon.resizeNearest(xv, y, n, h, w, c, oh, ow, nearestMap(h, oh, align, half), nearestMap(w, ow, align, half));
  return output(backend, [n, oh, ow, c], y);
}

/**
 * The exact adjoint of resizeNearest. (tfjs' cpu kernel differs for batch > 1, where it reads dy
 * at image strides, and ignores halfPixelCenters; this one is the true gradient in all cases.)
 */
function resizeNearestGrad(addon: NativeAddon, { inputs, backend, attrs = {} }: KernelArgs): TensorInfo | null {
  const { images, dy } = inputs;
  const dyv = values(backend, dy);
  if (!dyv || images.shape.length !== 4 || dy.shape.length !== 4) return null;
  const [n, h, w, c] = images.shape;
  const [, oh, ow] = dy.shape;
  const align = Boolean(attrs.alignCorners);
  const half = Boolean(attrs.halfPixelCenters);
  const dx = allocOutput(backend, n * h * w * c);
  addon.resizeNearestGrad(dyv, dx, n, h, w, c, oh, ow, nearestMap(h, oh, align, half), nearestMap(w, ow, align, half));
  return output(backend, images.shape, dx);
}

// --- elementwise, reductions, copies -----------------------------------------------------------

function unary(addon: NativeAddon, op: number, alphaAttr?: string): Fast {
  return ({ inputs, backend, attrs = {} }) => {
    const x = inputs.x;
    const xv = values(backend, x);
    if (!xv) return null;
    let alpha = 0;
    if (alphaAttr) {
      const a = attrs[alphaAttr];
      if (typeof a !== 'number') return null;
      alpha = a;
    }
    const y = allocOutput(backend, xv.length);
    addon.unary(op, xv, y, alpha);
    return output(backend, x.shape, y);
  };
}

/** Shape s broadcast over the trailing dimensions of out (leading 1s ignored). */
function isTrailing(s: number[], out: number[]): boolean {
  let i = 0;
  while (i < s.length && s[i] === 1) i++;
  const rest = s.slice(i);
  if (rest.length > out.length) return false;
  return util.arraysEqual(rest, out.slice(out.length - rest.length));
}

/** Shape s is out with its trailing dimensions collapsed to 1 ([N,H,W,1] against [N,H,W,C]). */
function isLeading(s: number[], out: number[]): boolean {
  if (s.length !== out.length) return false;
  let k = s.length;
  while (k > 0 && s[k - 1] === 1) k--;
  return k < s.length && util.arraysEqual(s.slice(0, k), out.slice(0, k));
}

/**
 * Equal and NotEqual of a tensor against one value (the loss's masks of unknown and foreground
 * label pixels): a plain loop, where tfjs' generic broadcast indexes every element (8 ms of a
 * 240 ms training step of the default U-Net).
 */
function compareWithValue(equal: boolean): Fast {
  return ({ inputs, backend }) => {
    const { a, b } = inputs;
    if (a.dtype !== b.dtype || a.dtype === 'string' || a.dtype === 'complex64') return null;
    const [many, one] = sizeOf(b.shape) === 1 ? [a, b] : sizeOf(a.shape) === 1 ? [b, a] : [null, null];
    if (!many || !one) return null;
    const xs = backend.data.get(many.dataId)?.values as ArrayLike<number> | undefined;
    const v = (backend.data.get(one.dataId)?.values as ArrayLike<number> | undefined)?.[0];
    if (!xs || v === undefined) return null;
    const out = new Uint8Array(xs.length);
    if (equal) for (let i = 0; i < xs.length; i++) out[i] = xs[i] === v ? 1 : 0;
    else for (let i = 0; i < xs.length; i++) out[i] = xs[i] !== v ? 1 : 0;
    // The result has the larger operand's shape, with the single value's extra dimensions in front.
    const shape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    return backend.makeTensorInfo(shape, 'bool', out);
  };
}

function binary(addon: NativeAddon, op: number): Fast {
  return ({ inputs, backend }) => {
    const { a, b } = inputs;
    const av = values(backend, a);
    const bv = values(backend, b);
    if (!av || !bv) return null;
    let outShape: number[];
    try {
      outShape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    } catch {
      return null;
    }
    const size = sizeOf(outShape);
    const out = allocOutput(backend, size);
    const { Full, Row, Column } = OperandLayout;
    if (av.length === size && bv.length === size) {
      addon.binary(op, av, bv, out, 1, size, Full, Full);
    } else if (av.length === size && isTrailing(b.shape, outShape) && bv.length > 0) {
      addon.binary(op, av, bv, out, size / bv.length, bv.length, Full, Row);
    } else if (bv.length === size && isTrailing(a.shape, outShape) && av.length > 0) {
      addon.binary(op, av, bv, out, size / av.length, av.length, Row, Full);
    } else if (av.length === size && isLeading(b.shape, outShape) && bv.length > 0) {
      // Per-pixel against per-channel values (masks, softmax's row maxima): left to tfjs' generic
      // broadcast, these made the three-class loss 7x slower.
      addon.binary(op, av, bv, out, bv.length, size / bv.length, Full, Column);
    } else if (bv.length === size && isLeading(a.shape, outShape) && av.length > 0) {
      addon.binary(op, av, bv, out, av.length, size / av.length, Column, Full);
    } else {
      return null;
    }
    return output(backend, outShape, out);
  };
}

function sum(addon: NativeAddon, { inputs, backend, attrs = {} }: KernelArgs): TensorInfo | null {
  const { x } = inputs;
  const xv = values(backend, x);
  if (!xv) return null;
  const axes = util.parseAxisParam(attrs.axis as number | number[], x.shape).sort((p, q) => p - q);
  for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[i - 1] + 1) return null; // not contiguous
  const lo = axes.length ? axes[0] : x.shape.length;
  const hi = axes.length ? axes[axes.length - 1] : x.shape.length - 1;
  const outer = sizeOf(x.shape.slice(0, lo));
  const mid = sizeOf(x.shape.slice(lo, hi + 1));
  const inner = sizeOf(x.shape.slice(hi + 1));
  const reduced = x.shape.filter((_, i) => !axes.includes(i));
  const outShape = attrs.keepDims ? backend_util.expandShapeToKeepDim(reduced, axes) : reduced;
  const y = allocOutput(backend, outer * inner);
  addon.sum(xv, y, outer, mid, inner);
  return output(backend, outShape, y);
}

function concat(addon: NativeAddon, { inputs, backend, attrs = {} }: KernelArgs): TensorInfo | null {
  const list = Object.values(inputs) as TensorInfo[];
  if (list.length < 2) return null;
  const vals = list.map((t) => values(backend, t));
  if (vals.some((v) => !v)) return null;
  const axis = util.parseAxisParam(attrs.axis as number, list[0].shape)[0];
  const shapes = list.map((t) => t.shape);
  backend_util.assertParamsConsistent(shapes, axis);
  const outShape = backend_util.computeOutShape(shapes, axis);
  const rows = sizeOf(outShape.slice(0, axis));
  const outInner = sizeOf(outShape.slice(axis));
  const out = allocOutput(backend, sizeOf(outShape));
  let offset = 0;
  list.forEach((t, i) => {
    const inner = sizeOf(t.shape.slice(axis));
    if (inner > 0 && rows > 0) addon.copyRows(vals[i] as Float32Array, 0, inner, out, offset, outInner, rows, inner);
    offset += inner;
  });
  return output(backend, outShape, out);
}

/** Slices whose only partial axis is followed by full axes (the split of a concat is one). */
function slice2d(addon: NativeAddon, backend: MathBackendCPU, x: TensorInfo, begin: number[], size: number[]): TensorInfo | null {
  const xv = values(backend, x);
  if (!xv) return null;
  const shape = x.shape;
  if (sizeOf(size) === 0) return null;
  // Contiguous slices are a zero-copy view in the cpu kernel: cheaper than any copy.
  if (slice_util.isSliceContinous(shape, begin, size)) return null;
  let d = shape.length - 1;
  while (d >= 0 && begin[d] === 0 && size[d] === shape[d]) d--;
  for (let i = 0; i < d; i++) if (begin[i] !== 0 || size[i] !== shape[i]) return null;
  const inner = sizeOf(shape.slice(d + 1));
  const rows = sizeOf(shape.slice(0, d));
  const len = size[d] * inner;
  const out = allocOutput(backend, rows * len);
  addon.copyRows(xv, begin[d] * inner, shape[d] * inner, out, 0, len, rows, len);
  return output(backend, size, out);
}

function slice(addon: NativeAddon, { inputs, backend, attrs = {} }: KernelArgs): TensorInfo | null {
  const { x } = inputs;
  const [begin, size] = slice_util.parseSliceParams(x as unknown as tf.Tensor, attrs.begin as number[], attrs.size as number[]);
  slice_util.assertParamsValid(x as unknown as tf.Tensor, begin, size);
  return slice2d(addon, backend, x, begin, size);
}

function splitV(addon: NativeAddon, { inputs, backend, attrs = {} }: KernelArgs): TensorInfo[] | null {
  const { x } = inputs;
  if (!values(backend, x)) return null;
  const axis = util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const sizes = backend_util.prepareSplitSize(x as unknown as tf.Tensor, attrs.numOrSizeSplits as number | number[], axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  const outs: TensorInfo[] = [];
  const cpuSlice = tf.getKernel('Slice', 'cpu')!.kernelFunc;
  for (const s of sizes) {
    const size = [...x.shape];
    size[axis] = s;
    const piece = slice2d(addon, backend, x, begin, size) ??
      (cpuSlice({ inputs: { x }, backend, attrs: { begin: [...begin], size } }) as TensorInfo);
    outs.push(piece);
    begin[axis] += s;
  }
  return outs;
}

/**
 * Reverse along any axes, a block of the trailing unreversed axes at a time. tfjs' cpu kernel
 * computes coordinates per element (about 190 ms for a 512² image: test-time augmentation flips
 * every tile and every output).
 */
function reverse({ inputs, backend, attrs = {} }: KernelArgs): TensorInfo | null {
  const { x } = inputs;
  const xv = values(backend, x);
  if (!xv || xv.length === 0) return null;
  const shape = x.shape;
  const axes = new Set(util.parseAxisParam(attrs.dims as number | number[], shape));
  if (axes.size === 0) return null;
  const last = Math.max(...axes);
  const inner = sizeOf(shape.slice(last + 1));
  const strides = shape.map((_, d) => sizeOf(shape.slice(d + 1)));
  const out = allocOutput(backend, xv.length);
  const walk = (d: number, src: number, dst: number): void => {
    const n = shape[d];
    const stride = strides[d];
    const flipped = axes.has(d);
    for (let i = 0; i < n; i++) {
      const s = src + (flipped ? n - 1 - i : i) * stride;
      const t = dst + i * stride;
      if (d < last) walk(d + 1, s, t);
      else if (inner < 64) for (let k = 0; k < inner; k++) out[t + k] = xv[s + k];
      else out.set(xv.subarray(s, s + inner), t);
    }
  };
  walk(0, 0, 0);
  return output(backend, [...shape], out);
}

/**
 * Softmax over the last axis, a pixel at a time. tfjs' cpu kernel composes it of generic
 * reductions and broadcasts: 300 ms for the three classes of one 528x704 instance proposal,
 * twice the network's own time.
 */
function softmax(addon: NativeAddon, { inputs, backend, attrs = {} }: KernelArgs): TensorInfo | null {
  const { logits } = inputs;
  const v = values(backend, logits);
  const shape = logits.shape;
  const dim = attrs.dim as number;
  if (!v || v.length === 0 || (dim !== -1 && dim !== shape.length - 1)) return null;
  const out = allocOutput(backend, v.length);
  addon.softmax(v, out, shape[shape.length - 1]);
  return output(backend, [...shape], out);
}

// --- the table ---------------------------------------------------------------------------------

function nativeKernels(addon: NativeAddon): Map<string, KernelFunc> {
  const fast: Record<string, Fast> = {
    Conv2D: (a) => conv2d(addon, a, false),
    FusedConv2D: (a) => conv2d(addon, a, true),
    Conv2DBackpropInput: (a) => conv2dBackpropInput(addon, a),
    Conv2DBackpropFilter: (a) => conv2dBackpropFilter(addon, a),
    BatchMatMul: (a) => matMul(addon, a, false),
    _FusedMatMul: (a) => matMul(addon, a, true),
    MaxPool: (a) => maxPool(addon, a),
    MaxPoolGrad: (a) => maxPoolGrad(addon, a),
    ResizeNearestNeighbor: (a) => resizeNearest(addon, a),
    ResizeNearestNeighborGrad: (a) => resizeNearestGrad(addon, a),
    Relu: unary(addon, UnaryOp.Relu),
    Relu6: unary(addon, UnaryOp.Relu6),
    LeakyRelu: unary(addon, UnaryOp.LeakyRelu, 'alpha'),
    Sigmoid: unary(addon, UnaryOp.Sigmoid),
    Step: unary(addon, UnaryOp.Step, 'alpha'),
    Neg: unary(addon, UnaryOp.Neg),
    Exp: unary(addon, UnaryOp.Exp),
    Square: unary(addon, UnaryOp.Square),
    Abs: unary(addon, UnaryOp.Abs),
    Sqrt: unary(addon, UnaryOp.Sqrt),
    Rsqrt: unary(addon, UnaryOp.Rsqrt),
    Reciprocal: unary(addon, UnaryOp.Reciprocal),
    Add: binary(addon, BinaryOp.Add),
    Sub: binary(addon, BinaryOp.Sub),
    Multiply: binary(addon, BinaryOp.Multiply),
    RealDiv: binary(addon, BinaryOp.RealDiv),
    Maximum: binary(addon, BinaryOp.Maximum),
    Minimum: binary(addon, BinaryOp.Minimum),
    SquaredDifference: binary(addon, BinaryOp.SquaredDifference),
    Equal: compareWithValue(true),
    NotEqual: compareWithValue(false),
    Sum: (a) => sum(addon, a),
    Concat: (a) => concat(addon, a),
    Slice: (a) => slice(addon, a),
    SplitV: (a) => splitV(addon, a),
    Reverse: reverse,
    Softmax: (a) => softmax(addon, a),
  };
  const table = new Map<string, KernelFunc>();
  for (const [name, impl] of Object.entries(fast)) {
    const reference = tf.getKernel(name, 'cpu');
    if (!reference) continue; // a tfjs without this kernel: nothing to replace
    const slow = reference.kernelFunc;
    table.set(name, ((args: KernelArgs) => {
      const result = impl(args);
      if (result) return result;
      fallbackCounts.set(name, (fallbackCounts.get(name) ?? 0) + 1);
      return slow(args as unknown as Parameters<KernelFunc>[0]);
    }) as unknown as KernelFunc);
  }
  return table;
}
