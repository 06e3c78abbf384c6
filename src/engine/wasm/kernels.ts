// Training kernels for tfjs' wasm backend, built from the backend's own XNNPACK kernels.
//
// Out of the box the wasm backend cannot train a conv net: it has no Conv2DBackpropFilter (nor
// the depthwise gradients), its Conv2DBackpropInput is a scalar C++ loop (~1.7 GFLOP/s) and a
// matMul with a transposed operand leaves XNNPACK's fast path (~1.8 GFLOP/s). The kernels here
// rewrite each gradient as a convolution (or a plain matMul) that XNNPACK runs at full speed.
// See DESIGN.md, "Compute backends". Beyond those: a correct MaxPoolGrad (4.22's is wrong), the
// missing UnsortedSegmentSum (gather's gradient), and faster versions of the data-movement and
// reduction kernels a U-Net step spends its remaining time in.
//
// Each kernel works on TensorInfos inside one kernel call, so the engine never sees the
// intermediates: every one is released with backend.disposeData before returning.
//
// Browser-safe (no Node imports): the Electron renderer registers the same kernels after
// pointing setWasmPaths at its own URLs.
import {
  AvgPool,
  backend_util,
  BatchMatMul,
  Concat,
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  DepthwiseConv2dNative,
  DepthwiseConv2dNativeBackpropFilter,
  DepthwiseConv2dNativeBackpropInput,
  getKernel,
  Identity,
  MaxPoolGrad,
  registerKernel,
  Reshape,
  ResizeNearestNeighborGrad,
  Reverse,
  Slice,
  slice_util,
  SplitV,
  Sum,
  Transpose,
  UnsortedSegmentSum,
  unregisterKernel,
  util,
  _FusedMatMul,
} from '@tensorflow/tfjs-core';
import type {
  BatchMatMulAttrs,
  ConcatAttrs,
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInputAttrs,
  DepthwiseConv2dNativeBackpropFilterAttrs,
  DepthwiseConv2dNativeBackpropInputAttrs,
  KernelConfig,
  KernelFunc,
  MaxPoolGradAttrs,
  NamedAttrMap,
  NamedTensorInfoMap,
  ResizeNearestNeighborGradAttrs,
  SliceAttrs,
  SplitVAttrs,
  SumAttrs,
  TensorInfo,
  UnsortedSegmentSumAttrs,
  _FusedMatMulAttrs,
} from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
// The backend's own kernels must be registered before ours wrap them: registering a kernel
// twice overwrites, so a later import of the package would silently restore the stock ones.
import '@tensorflow/tfjs-backend-wasm';

const BACKEND = 'wasm';

type Pad = Conv2DBackpropFilterAttrs['pad'];
type Shape4 = [number, number, number, number];
type ExplicitPad = [[number, number], [number, number], [number, number], [number, number]];

/** The wasm backend's own kernels this module builds on, captured before any override. */
const base = new Map<string, KernelFunc>();

/** Marks our kernel functions, so a second registration never captures one of ours as 'base'. */
const OURS = Symbol.for('maskloop.wasm.kernel');

function baseKernel(name: string): KernelFunc {
  const k = base.get(name);
  if (k) return k;
  const cfg = getKernel(name, BACKEND);
  // Registered by another copy of this module: use the backend's kernel it wrapped.
  const original = cfg && OURS in cfg.kernelFunc ? (cfg.kernelFunc as Marked)[OURS] : cfg;
  if (!original) throw new Error(`wasm backend has no ${name} kernel (is @tensorflow/tfjs-backend-wasm loaded?)`);
  base.set(name, original.kernelFunc);
  return original.kernelFunc;
}

function call(
  backend: BackendWasm,
  name: string,
  inputs: NamedTensorInfoMap,
  attrs: NamedAttrMap = {},
): TensorInfo {
  return baseKernel(name)({ inputs, backend, attrs }) as TensorInfo;
}

function free(backend: BackendWasm, ...infos: (TensorInfo | undefined)[]): void {
  for (const t of infos) if (t) backend.disposeData(t.dataId);
}

function transpose(backend: BackendWasm, x: TensorInfo, perm: number[]): TensorInfo {
  return call(backend, Transpose, { x }, { perm });
}

function conv2d(
  backend: BackendWasm,
  x: TensorInfo,
  filter: TensorInfo,
  pad: ExplicitPad | 'valid',
  dilations: [number, number] = [1, 1],
): TensorInfo {
  return call(
    backend,
    Conv2D,
    { x, filter },
    { strides: [1, 1], pad, dataFormat: 'NHWC', dilations, dimRoundingMode: undefined } as unknown as NamedAttrMap,
  );
}

function explicit(top: number, bottom: number, left: number, right: number): ExplicitPad {
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}

function assertNHWC(kernel: string, dataFormat: string | undefined): void {
  if (dataFormat != null && dataFormat !== 'NHWC') {
    throw new Error(`${kernel} on wasm supports dataFormat NHWC only (got ${dataFormat}), as wasm Conv2D does`);
  }
}

function asFloat32(backend: BackendWasm, t: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(t) as Float32Array;
}

// ---------------------------------------------------------------------------------------------
// Conv2DBackpropFilter
//
// dW[kh,kw,ci,co] = sum_{b,oh,ow} xpad[b, oh*sh+kh, ow*sw+kw, ci] * dy[b,oh,ow,co]
// which is one 'valid' convolution of xpad seen as [ci, H, W, b] (batch and channels swapped)
// with dy seen as a filter [oh, ow, b, co], dilated by the forward stride. Its output is
// [ci, kh, kw, co]; one small transpose gives the filter layout.

function conv2DBackpropFilter(args: {
  inputs: NamedTensorInfoMap;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } =
    args.attrs as unknown as Conv2DBackpropFilterAttrs;
  assertNHWC(Conv2DBackpropFilter, dataFormat);
  const info = backend_util.computeConv2DInfo(
    x.shape as Shape4,
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  return filterGradient(backend, x, dy, info);
}

function filterGradient(
  backend: BackendWasm,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
  const { top, left } = info.padInfo;
  const [, h, w] = x.shape;
  // Rows past the last one the forward pass read must not enter the sum: pad only up to it and
  // crop the output when the input extends beyond (a 'valid' conv whose stride does not divide).
  const bottom = (oh - 1) * sh + kh - h - top;
  const right = (ow - 1) * sw + kw - w - left;
  const xT = transpose(backend, x, [3, 1, 2, 0]);
  const dyT = transpose(backend, dy, [1, 2, 0, 3]);
  let g: TensorInfo;
  try {
    g = conv2d(backend, xT, dyT, explicit(top, Math.max(0, bottom), left, Math.max(0, right)), [sh, sw]);
  } finally {
    free(backend, xT, dyT);
  }
  if (g.shape[1] !== kh || g.shape[2] !== kw) {
    const cropped = call(backend, Slice, { x: g }, { begin: [0, 0, 0, 0], size: [-1, kh, kw, -1] });
    free(backend, g);
    g = cropped;
  }
  const out = transpose(backend, g, [1, 2, 0, 3]);
  free(backend, g);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Conv2DBackpropInput
//
// With stride 1, dx is the convolution of dy with the filter flipped in space and with in/out
// channels swapped, padded so that each output pixel sees exactly the taps that read it.
// With stride s, the rows of dx split into s phases by (row + padTop) mod s; each phase is a
// stride-1 convolution of dy with the taps of that phase (every s-th filter row, flipped), and
// the s*s phase results interleave into dx. Same FLOPs, all in XNNPACK.

function conv2DBackpropInput(args: {
  inputs: NamedTensorInfoMap;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as Conv2DBackpropInputAttrs;
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs;
  if (dataFormat === 'NHWC' || dataFormat == null) {
    const info = backend_util.computeConv2DInfo(
      inputShape,
      filter.shape as Shape4,
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    const pads = flippedPadding(info);
    if (pads && info.strideHeight === 1 && info.strideWidth === 1) {
      const flipped = call(backend, Reverse, { x: filter }, { dims: [0, 1] });
      const swapped = transpose(backend, flipped, [0, 1, 3, 2]);
      free(backend, flipped);
      try {
        return conv2d(backend, dy, swapped, pads);
      } finally {
        free(backend, swapped);
      }
    }
    if (info.strideHeight > 1 || info.strideWidth > 1) return stridedInputGradient(backend, dy, filter, info);
  }
  // NCHW, or padded wider than the filter: the backend's own loop is slow but right.
  return call(backend, Conv2DBackpropInput, args.inputs, args.attrs);
}

/** One axis of one phase: which dx rows it fills and how dy must be padded (or cut) to get them. */
interface PhaseAxis {
  /** Filter taps of this phase: p, p + s, p + 2s, ... */
  taps: number;
  /** First and count of the phase's rows q, where dx row = q*s + p - pad. */
  first: number;
  count: number;
  /** Padding of dy before / after along this axis; negative means cut rows off. */
  before: number;
  after: number;
}

function phaseAxis(p: number, stride: number, kernel: number, pad: number, inSize: number, outSize: number): PhaseAxis | null {
  const taps = p < kernel ? Math.ceil((kernel - p) / stride) : 0;
  const first = Math.ceil((pad - p) / stride);
  const last = Math.floor((pad + inSize - 1 - p) / stride);
  if (taps === 0 || last < first) return null;
  const count = last - first + 1;
  const before = taps - 1 - first;
  return { taps, first, count, before, after: count + taps - 1 - outSize - before };
}

function stridedInputGradient(
  backend: BackendWasm,
  dy: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const { batchSize: n, inHeight, inWidth, inChannels: ci, outHeight, outWidth } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  const phases: Array<{ rows: PhaseAxis; cols: PhaseAxis; p: number; r: number; result: TensorInfo }> = [];
  try {
    for (let p = 0; p < sh; p++) {
      const rows = phaseAxis(p, sh, kh, top, inHeight, outHeight);
      if (!rows) continue;
      for (let r = 0; r < sw; r++) {
        const cols = phaseAxis(r, sw, kw, left, inWidth, outWidth);
        if (!cols) continue;
        const result = phaseConv(backend, dy, filter, p, r, rows, cols, info);
        if (result) phases.push({ rows, cols, p, r, result });
      }
    }
    // Every dx pixel belongs to exactly one phase; pixels of phases without taps stay zero.
    const out = backend.makeOutput([n, inHeight, inWidth, ci], 'float32');
    const dx = asFloat32(backend, out);
    dx.fill(0);
    for (const { rows, cols, p, r, result } of phases) {
      const v = asFloat32(backend, result);
      let i = 0;
      for (let b = 0; b < n; b++) {
        for (let q = 0; q < rows.count; q++) {
          const y = (rows.first + q) * sh + p - top;
          for (let c = 0; c < cols.count; c++, i += ci) {
            const x = (cols.first + c) * sw + r - left;
            dx.set(v.subarray(i, i + ci), ((b * inHeight + y) * inWidth + x) * ci);
          }
        }
      }
    }
    return out;
  } finally {
    free(backend, ...phases.map((ph) => ph.result));
  }
}

/**
 * The stride-1 convolution of dy with phase (p, r)'s taps, flipped, in/out channels swapped;
 * null when none of the phase's taps reaches dy (its pixels get no gradient).
 */
function phaseConv(
  backend: BackendWasm,
  dy: TensorInfo,
  filter: TensorInfo,
  p: number,
  r: number,
  rows: PhaseAxis,
  cols: PhaseAxis,
  info: backend_util.Conv2DInfo,
): TensorInfo | null {
  const { inChannels: ci, outChannels: co, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const [n, h, w, c] = dy.shape;
  const cutTop = Math.max(0, -rows.before);
  const cutLeft = Math.max(0, -cols.before);
  const cutBottom = Math.max(0, -rows.after);
  const cutRight = Math.max(0, -cols.after);
  if (h - cutTop - cutBottom <= 0 || w - cutLeft - cutRight <= 0) return null;
  const sub = backend.makeOutput([rows.taps, cols.taps, co, ci], 'float32');
  const f = asFloat32(backend, filter);
  const g = asFloat32(backend, sub);
  for (let t = 0; t < rows.taps; t++) {
    for (let u = 0; u < cols.taps; u++) {
      const src = ((p + sh * (rows.taps - 1 - t)) * kw + (r + sw * (cols.taps - 1 - u))) * ci * co;
      const dst = (t * cols.taps + u) * co * ci;
      for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) g[dst + o * ci + i] = f[src + i * co + o];
    }
  }
  // Negative padding: cut dy instead.
  let input = dy;
  if (cutTop || cutLeft || cutBottom || cutRight) {
    input = slice({
      inputs: { x: dy },
      backend,
      attrs: { begin: [0, cutTop, cutLeft, 0], size: [n, h - cutTop - cutBottom, w - cutLeft - cutRight, c] },
    });
  }
  try {
    return conv2d(
      backend,
      input,
      sub,
      explicit(Math.max(0, rows.before), Math.max(0, rows.after), Math.max(0, cols.before), Math.max(0, cols.after)),
    );
  } finally {
    free(backend, sub);
    if (input !== dy) free(backend, input);
  }
}

/** Padding of the stride-1 'full' correlation that maps dy back onto x; null if it would be negative. */
function flippedPadding(info: backend_util.Conv2DInfo): ExplicitPad | null {
  const { filterHeight: kh, filterWidth: kw, inHeight, inWidth, outHeight, outWidth } = info;
  const top = kh - 1 - info.padInfo.top;
  const left = kw - 1 - info.padInfo.left;
  const bottom = inHeight - outHeight + kh - 1 - top;
  const right = inWidth - outWidth + kw - 1 - left;
  if (top < 0 || left < 0 || bottom < 0 || right < 0) return null;
  return explicit(top, bottom, left, right);
}

// ---------------------------------------------------------------------------------------------
// BatchMatMul / _FusedMatMul with a transposed operand
//
// XNNPACK's fast GEMM wants both operands untransposed; moving the data once costs far less
// than the slow path the backend takes otherwise (12.6 vs 1.8 GFLOP/s measured).

function swapLast(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

function untransposed(
  backend: BackendWasm,
  a: TensorInfo,
  b: TensorInfo,
  attrs: { transposeA: boolean; transposeB: boolean },
): { a: TensorInfo; b: TensorInfo; temps: TensorInfo[] } {
  const temps: TensorInfo[] = [];
  if (attrs.transposeA) {
    a = transpose(backend, a, swapLast(a.shape.length));
    temps.push(a);
  }
  if (attrs.transposeB) {
    b = transpose(backend, b, swapLast(b.shape.length));
    temps.push(b);
  }
  return { a, b, temps };
}

function batchMatMul(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const backend = args.backend as BackendWasm;
  const attrs = args.attrs as unknown as BatchMatMulAttrs;
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  if (!attrs.transposeA && !attrs.transposeB) return call(backend, BatchMatMul, args.inputs, args.attrs);
  const u = untransposed(backend, a, b, attrs);
  try {
    return call(backend, BatchMatMul, { a: u.a, b: u.b }, { transposeA: false, transposeB: false });
  } finally {
    free(backend, ...u.temps);
  }
}

function fusedMatMul(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const backend = args.backend as BackendWasm;
  const attrs = args.attrs as unknown as _FusedMatMulAttrs;
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  if (!attrs.transposeA && !attrs.transposeB) return call(backend, _FusedMatMul, args.inputs, args.attrs);
  const u = untransposed(backend, a, b, attrs);
  try {
    return call(
      backend,
      _FusedMatMul,
      { ...args.inputs, a: u.a, b: u.b },
      { ...args.attrs, transposeA: false, transposeB: false } as unknown as NamedAttrMap,
    );
  } finally {
    free(backend, ...u.temps);
  }
}

// ---------------------------------------------------------------------------------------------
// Depthwise gradients (depthwise-separable convolutions). Channel multiplier 1, no dilation:
//  - input gradient, stride 1: depthwise conv of dy with the spatially flipped filter;
//  - filter gradient: a depthwise conv over b*c channels, each channel of x correlated with its
//    own dy plane (dilated by the stride), then summed over the batch.
// Other configurations use a direct loop (correct, not fast).

function depthwise(
  backend: BackendWasm,
  x: TensorInfo,
  filter: TensorInfo,
  pad: ExplicitPad,
  dilations: [number, number],
): TensorInfo {
  return call(
    backend,
    DepthwiseConv2dNative,
    { x, filter },
    { strides: [1, 1], pad, dilations, dimRoundingMode: undefined } as unknown as NamedAttrMap,
  );
}

function depthwiseInfo(
  xShape: Shape4,
  filterShape: Shape4,
  attrs: { strides: [number, number] | number; dilations: [number, number] | number; pad: Pad; dimRoundingMode?: 'floor' | 'round' | 'ceil' },
): backend_util.Conv2DInfo {
  return backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    attrs.strides,
    attrs.dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
}

function depthwiseBackpropInput(args: {
  inputs: NamedTensorInfoMap;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as DepthwiseConv2dNativeBackpropInputAttrs;
  const info = depthwiseInfo(attrs.inputShape, filter.shape as Shape4, attrs);
  const pads = flippedPadding(info);
  if (
    pads &&
    filter.shape[3] === 1 &&
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1
  ) {
    const flipped = call(backend, Reverse, { x: filter }, { dims: [0, 1] });
    try {
      return depthwise(backend, dy, flipped, pads, [1, 1]);
    } finally {
      free(backend, flipped);
    }
  }
  return depthwiseBackpropInputLoop(backend, dy, filter, info);
}

function depthwiseBackpropFilter(args: {
  inputs: NamedTensorInfoMap;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as DepthwiseConv2dNativeBackpropFilterAttrs;
  const info = depthwiseInfo(x.shape as Shape4, attrs.filterShape, attrs);
  if (attrs.filterShape[3] !== 1 || info.dilationHeight !== 1 || info.dilationWidth !== 1) {
    return depthwiseBackpropFilterLoop(backend, x, dy, info);
  }
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
  const [b, h, w, c] = x.shape;
  const { top, left } = info.padInfo;
  const bottom = (oh - 1) * sh + kh - h - top;
  const right = (ow - 1) * sw + kw - w - left;
  const temps: TensorInfo[] = [];
  try {
    // One image of b*c channels: channel (n, ch) holds x[n, :, :, ch] ...
    const xT = transpose(backend, x, [1, 2, 0, 3]);
    temps.push(xT);
    const xR = call(backend, Reshape, { x: xT }, { shape: [1, h, w, b * c] });
    temps.push(xR);
    // ... and its filter is dy[n, :, :, ch].
    const dyT = transpose(backend, dy, [1, 2, 0, 3]);
    temps.push(dyT);
    const dyR = call(backend, Reshape, { x: dyT }, { shape: [oh, ow, b * c, 1] });
    temps.push(dyR);
    let g = depthwise(
      backend,
      xR,
      dyR,
      explicit(top, Math.max(0, bottom), left, Math.max(0, right)),
      [sh, sw],
    );
    temps.push(g);
    if (g.shape[1] !== kh || g.shape[2] !== kw) {
      g = call(backend, Slice, { x: g }, { begin: [0, 0, 0, 0], size: [-1, kh, kw, -1] });
      temps.push(g);
    }
    const g5 = call(backend, Reshape, { x: g }, { shape: [kh, kw, b, c] });
    temps.push(g5);
    const summed = call(backend, Sum, { x: g5 }, { axis: [2], keepDims: false });
    temps.push(summed);
    return call(backend, Reshape, { x: summed }, { shape: [kh, kw, c, 1] });
  } finally {
    free(backend, ...temps);
  }
}

/**
 * Visits every (output pixel, filter tap) pair of a depthwise convolution whose input pixel lies
 * inside the image, with the offsets of that output pixel in dy, of the input pixel, and of the
 * tap's first channel in the filter. Both depthwise gradients are sums over exactly these pairs.
 */
function forEachDepthwiseTap(info: backend_util.Conv2DInfo, visit: (dyBase: number, inBase: number, tapBase: number) => void): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const { top, left } = info.padInfo;
  for (let n = 0; n < batchSize; n++) {
    for (let yo = 0; yo < outHeight; yo++) {
      for (let xo = 0; xo < outWidth; xo++) {
        const dyBase = ((n * outHeight + yo) * outWidth + xo) * outChannels;
        for (let fy = 0; fy < filterHeight; fy++) {
          const yi = yo * strideHeight - top + fy * dilationHeight;
          if (yi < 0 || yi >= inHeight) continue;
          for (let fx = 0; fx < filterWidth; fx++) {
            const xi = xo * strideWidth - left + fx * dilationWidth;
            if (xi < 0 || xi >= inWidth) continue;
            visit(dyBase, ((n * inHeight + yi) * inWidth + xi) * inChannels, (fy * filterWidth + fx) * outChannels);
          }
        }
      }
    }
  }
}

function depthwiseBackpropInputLoop(
  backend: BackendWasm,
  dy: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const { batchSize, inHeight, inWidth, inChannels, outChannels } = info;
  const mult = outChannels / inChannels;
  const dyV = asFloat32(backend, dy).slice();
  const fV = asFloat32(backend, filter).slice();
  const dx = new Float32Array(batchSize * inHeight * inWidth * inChannels);
  forEachDepthwiseTap(info, (dyBase, dxBase, fBase) => {
    for (let ch = 0; ch < inChannels; ch++) {
      let s = 0;
      for (let m = 0; m < mult; m++) s += dyV[dyBase + ch * mult + m] * fV[fBase + ch * mult + m];
      dx[dxBase + ch] += s;
    }
  });
  return backend.makeOutput([batchSize, inHeight, inWidth, inChannels], 'float32', undefined, dx);
}

function depthwiseBackpropFilterLoop(
  backend: BackendWasm,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const { inChannels, outChannels, filterHeight, filterWidth } = info;
  const mult = outChannels / inChannels;
  const xV = asFloat32(backend, x).slice();
  const dyV = asFloat32(backend, dy).slice();
  const dw = new Float32Array(filterHeight * filterWidth * outChannels);
  forEachDepthwiseTap(info, (dyBase, xBase, wBase) => {
    for (let ch = 0; ch < inChannels; ch++) {
      const xv = xV[xBase + ch];
      for (let m = 0; m < mult; m++) dw[wBase + ch * mult + m] += xv * dyV[dyBase + ch * mult + m];
    }
  });
  return backend.makeOutput([filterHeight, filterWidth, inChannels, mult], 'float32', undefined, dw);
}

// ---------------------------------------------------------------------------------------------
// MaxPoolGrad
//
// The backend's own MaxPoolGrad (4.22) is wrong: it starts its running max at FLT_MIN, the
// smallest positive float, so windows of zeros or negatives (everywhere after a ReLU) all send
// their gradient to element 0, and ties go to the last element where TensorFlow picks the first.
// One pass over the windows, first maximum wins, as on the cpu backend.

function maxPoolGrad(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as MaxPoolGradAttrs;
  const info = backend_util.computePool2DInfo(input.shape as Shape4, filterSize, strides, 1, pad, dimRoundingMode);
  const out = backend.makeOutput(input.shape, 'float32');
  // Views after the allocation: growing the wasm heap detaches earlier ones.
  const x = asFloat32(backend, input);
  const g = asFloat32(backend, dy);
  const dx = asFloat32(backend, out);
  dx.fill(0);
  const { strideHeight, strideWidth, effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  if (fh === 2 && fw === 2 && strideHeight === 2 && strideWidth === 2 && info.padInfo.top === 0 && info.padInfo.left === 0) {
    maxPoolGrad2x2(x, g, dx, info);
  } else {
    maxPoolGradAny(x, g, dx, info);
  }
  return out;
}

/** The U-Net's pooling: disjoint 2x2 windows, four loads per channel and no bounds checks. */
function maxPoolGrad2x2(x: Float32Array, g: Float32Array, dx: Float32Array, info: backend_util.Conv2DInfo): void {
  const { batchSize, inHeight, inWidth, inChannels: ch, outHeight, outWidth } = info;
  const row = inWidth * ch;
  let o = 0;
  for (let n = 0; n < batchSize; n++) {
    for (let yo = 0; yo < outHeight; yo++) {
      let p = (n * inHeight + 2 * yo) * row;
      for (let xo = 0; xo < outWidth; xo++, p += 2 * ch) {
        for (let c = 0; c < ch; c++, o++) {
          const i0 = p + c;
          const i1 = i0 + ch;
          const i2 = i0 + row;
          const i3 = i2 + ch;
          // Strictly greater, in scan order: the first maximum wins, as in TensorFlow.
          let at = i0;
          let best = x[i0];
          if (x[i1] > best) {
            best = x[i1];
            at = i1;
          }
          if (x[i2] > best) {
            best = x[i2];
            at = i2;
          }
          if (x[i3] > best) at = i3;
          dx[at] += g[o];
        }
      }
    }
  }
}

function maxPoolGradAny(x: Float32Array, g: Float32Array, dx: Float32Array, info: backend_util.Conv2DInfo): void {
  const { batchSize, inHeight, inWidth, inChannels: ch, outHeight, outWidth } = info;
  const { strideHeight, strideWidth, effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const { top, left } = info.padInfo;
  for (let n = 0; n < batchSize; n++) {
    for (let yo = 0; yo < outHeight; yo++) {
      const y0 = yo * strideHeight - top;
      const yBegin = Math.max(0, y0);
      const yEnd = Math.min(inHeight, y0 + fh);
      for (let xo = 0; xo < outWidth; xo++) {
        const x0 = xo * strideWidth - left;
        const xBegin = Math.max(0, x0);
        const xEnd = Math.min(inWidth, x0 + fw);
        const gBase = ((n * outHeight + yo) * outWidth + xo) * ch;
        for (let c = 0; c < ch; c++) {
          let best = -Infinity;
          let at = -1;
          for (let yi = yBegin; yi < yEnd; yi++) {
            let i = ((n * inHeight + yi) * inWidth + xBegin) * ch + c;
            for (let xi = xBegin; xi < xEnd; xi++, i += ch) {
              if (x[i] > best) {
                best = x[i];
                at = i;
              }
            }
          }
          if (at >= 0) dx[at] += g[gBase + c];
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ResizeNearestNeighborGrad
//
// The backend's kernel searches a window of dy for every input pixel (~25 ms per U-Net
// upsampling). For an integer power-of-two scale without corner alignment every input pixel
// owns one s x s block of dy, so the gradient is an XNNPACK average pool times s*s (exact:
// powers of two). Other scales use the backend's kernel, which is right.

function resizeNearestNeighborGrad(args: {
  inputs: NamedTensorInfoMap;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { images, dy } = args.inputs as { images: TensorInfo; dy: TensorInfo };
  const { alignCorners } = args.attrs as unknown as ResizeNearestNeighborGradAttrs;
  const [, inH, inW] = images.shape;
  const [, outH, outW] = dy.shape;
  const sh = outH / inH;
  const sw = outW / inW;
  const powerOfTwo = (v: number) => Number.isInteger(v) && v >= 1 && (v & (v - 1)) === 0;
  if (alignCorners || !powerOfTwo(sh) || !powerOfTwo(sw) || dy.dtype !== 'float32' || sh * sw === 1) {
    return call(backend, ResizeNearestNeighborGrad, args.inputs, args.attrs);
  }
  const out = call(
    backend,
    AvgPool,
    { x: dy },
    { filterSize: [sh, sw], strides: [sh, sw], pad: 'valid', dimRoundingMode: undefined } as unknown as NamedAttrMap,
  );
  const v = asFloat32(backend, out);
  const k = sh * sw;
  for (let i = 0; i < v.length; i++) v[i] *= k;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Data movement: Identity, Slice, SplitV, Concat, Sum over leading axes
//
// The backend copies on Identity (which tfjs' engine runs on every tensor it saves for the
// backward pass: ~100 full activation copies per U-Net step), and its Slice/Concat copy the
// whole input through readSync and then move 16-float rows one TypedArray.set call at a time.
// Tensors are immutable, so Identity can share the buffer, as the cpu backend does; the copies
// below walk the wasm heap directly.

type HeapArray = Float32Array | Int32Array | Uint8Array;

function heap(backend: BackendWasm, t: TensorInfo): HeapArray {
  return backend.typedArrayFromHeap(t) as HeapArray;
}

function stridesOf(shape: number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

/**
 * Copies the box of extent `size` at `srcBegin` in src (row-major `srcShape`) to `dstBegin` in
 * dst. Trailing dimensions whole in both are merged into one contiguous run per outer index.
 */
function copyBox(
  src: HeapArray,
  srcShape: number[],
  srcBegin: number[],
  dst: HeapArray,
  dstShape: number[],
  dstBegin: number[],
  size: number[],
): void {
  const rank = size.length;
  if (rank === 0 || size.some((d) => d === 0)) {
    if (rank === 0) dst[0] = src[0];
    return;
  }
  const ss = stridesOf(srcShape);
  const ds = stridesOf(dstShape);
  let k = rank - 1;
  let run = size[k];
  while (k > 0 && size[k] === srcShape[k] && size[k] === dstShape[k]) {
    k--;
    run *= size[k];
  }
  let s = 0;
  let d = 0;
  for (let i = 0; i < rank; i++) {
    s += srcBegin[i] * ss[i];
    d += dstBegin[i] * ds[i];
  }
  let outer = 1;
  for (let i = 0; i < k; i++) outer *= size[i];
  const idx = new Array<number>(k).fill(0);
  for (let n = 0; n < outer; n++) {
    if (run >= 64) {
      dst.set(src.subarray(s, s + run), d);
    } else {
      for (let j = 0; j < run; j++) dst[d + j] = src[s + j];
    }
    for (let j = k - 1; j >= 0; j--) {
      s += ss[j];
      d += ds[j];
      if (++idx[j] < size[j]) break;
      s -= ss[j] * size[j];
      d -= ds[j] * size[j];
      idx[j] = 0;
    }
  }
}

function identity(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x } = args.inputs as { x: TensorInfo };
  if (x.dtype === 'string') return call(backend, Identity, args.inputs, args.attrs);
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function slice(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x } = args.inputs as { x: TensorInfo };
  if (x.dtype === 'string') return call(backend, Slice, args.inputs, args.attrs);
  const { begin, size } = args.attrs as unknown as SliceAttrs;
  const [b, sz] = slice_util.parseSliceParams(x, begin, size);
  const out = backend.makeOutput(sz, x.dtype);
  copyBox(heap(backend, x), x.shape, b, heap(backend, out), sz, new Array<number>(sz.length).fill(0), sz);
  return out;
}

function splitV(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo[] {
  const backend = args.backend as BackendWasm;
  const { x } = args.inputs as { x: TensorInfo };
  if (x.dtype === 'string') return call(backend, SplitV, args.inputs, args.attrs) as unknown as TensorInfo[];
  const { numOrSizeSplits, axis } = args.attrs as unknown as SplitVAttrs;
  const ax = util.parseAxisParam(axis, x.shape)[0];
  const sizes = backend_util.prepareSplitSize(x as unknown as Parameters<typeof backend_util.prepareSplitSize>[0], numOrSizeSplits, ax);
  const outs = sizes.map((n) => {
    const shape = x.shape.slice();
    shape[ax] = n;
    return backend.makeOutput(shape, x.dtype);
  });
  const src = heap(backend, x);
  const begin = new Array<number>(x.shape.length).fill(0);
  for (const out of outs) {
    copyBox(src, x.shape, begin, heap(backend, out), out.shape, new Array<number>(out.shape.length).fill(0), out.shape);
    begin[ax] += out.shape[ax];
  }
  return outs;
}

function concat(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const backend = args.backend as BackendWasm;
  const inputs = Object.values(args.inputs) as TensorInfo[];
  const ax = util.parseAxisParam((args.attrs as unknown as ConcatAttrs).axis, inputs[0].shape)[0];
  const parts = inputs.filter((t) => util.sizeFromShape(t.shape) > 0);
  if (inputs[0].dtype === 'string' || parts.length < 2) return call(backend, Concat, args.inputs, args.attrs);
  backend_util.assertParamsConsistent(parts.map((t) => t.shape), ax);
  const shape = backend_util.computeOutShape(parts.map((t) => t.shape), ax);
  const out = backend.makeOutput(shape, inputs[0].dtype);
  const dst = heap(backend, out);
  const begin = new Array<number>(shape.length).fill(0);
  for (const t of parts) {
    copyBox(heap(backend, t), t.shape, new Array<number>(t.shape.length).fill(0), dst, shape, begin, t.shape);
    begin[ax] += t.shape[ax];
  }
  return out;
}

/**
 * Sum over leading axes only (bias gradients: [N,H,W,C] -> [C]). The backend first transposes
 * the reduced axes innermost (~20 ms for a 128x128x32 batch of 8). An XNNPACK average pool over
 * one window holding all P leading positions reads the data once (~1.5 ms); times P gives the sum.
 * (A ones[1,P] x X[P,C] GEMM is as fast only when X is reused: XNNPACK repacks it per call.)
 */
function sum(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x } = args.inputs as { x: TensorInfo };
  const { axis, keepDims } = args.attrs as unknown as SumAttrs;
  const axes = util.parseAxisParam(axis, x.shape).sort((p, q) => p - q);
  const leading = axes.length > 0 && axes.length < x.shape.length && axes.every((a, i) => a === i);
  if (x.dtype !== 'float32' || !leading || util.sizeFromShape(x.shape) === 0) {
    return call(backend, Sum, args.inputs, args.attrs);
  }
  const kept = x.shape.slice(axes.length);
  const inner = util.sizeFromShape(kept);
  const outer = util.sizeFromShape(x.shape) / inner;
  const x4 = call(backend, Reshape, { x }, { shape: [1, outer, 1, inner] });
  let out: TensorInfo;
  try {
    out = call(
      backend,
      AvgPool,
      { x: x4 },
      { filterSize: [outer, 1], strides: [1, 1], pad: 'valid', dimRoundingMode: undefined } as unknown as NamedAttrMap,
    );
  } finally {
    free(backend, x4);
  }
  const v = asFloat32(backend, out);
  for (let i = 0; i < v.length; i++) v[i] *= outer;
  out.shape = keepDims ? x.shape.map((d, i) => (i < axes.length ? 1 : d)) : kept;
  return out;
}

// ---------------------------------------------------------------------------------------------
// UnsortedSegmentSum (missing in wasm): the gradient of gather. One scatter-add pass; ids
// outside [0, numSegments) are dropped, as in TensorFlow.

function unsortedSegmentSum(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x, segmentIds } = args.inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const { numSegments } = args.attrs as unknown as UnsortedSegmentSumAttrs;
  const rows = util.sizeFromShape(segmentIds.shape);
  const inner = util.sizeFromShape(x.shape.slice(segmentIds.shape.length));
  const out = backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
  const v = heap(backend, x);
  const ids = heap(backend, segmentIds);
  const o = heap(backend, out);
  o.fill(0);
  for (let r = 0; r < rows; r++) {
    const id = ids[r];
    if (id < 0 || id >= numSegments) continue;
    for (let i = 0, p = r * inner, q = id * inner; i < inner; i++) o[q + i] += v[p + i];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const overrides: Array<[string, KernelFunc]> = [
  [Conv2DBackpropFilter, conv2DBackpropFilter as KernelFunc],
  [Conv2DBackpropInput, conv2DBackpropInput as KernelFunc],
  [BatchMatMul, batchMatMul as KernelFunc],
  [_FusedMatMul, fusedMatMul as KernelFunc],
  [DepthwiseConv2dNativeBackpropFilter, depthwiseBackpropFilter as KernelFunc],
  [DepthwiseConv2dNativeBackpropInput, depthwiseBackpropInput as KernelFunc],
  [MaxPoolGrad, maxPoolGrad as KernelFunc],
  [ResizeNearestNeighborGrad, resizeNearestNeighborGrad as KernelFunc],
  [Identity, identity as KernelFunc],
  [Slice, slice as KernelFunc],
  [SplitV, splitV as unknown as KernelFunc],
  [Concat, concat as KernelFunc],
  [Sum, sum as KernelFunc],
  [UnsortedSegmentSum, unsortedSegmentSum as KernelFunc],
];

/** Kernels this module provides on the wasm backend. */
export const fastWasmKernels: readonly string[] = overrides.map(([name]) => name);

/** The backend's kernel each of ours replaced (null where wasm had none). */
type Marked = KernelFunc & { [OURS]?: KernelConfig | null };

/**
 * Registers the kernels on the 'wasm' backend. Idempotent, also across copies of this module.
 * The backend's own kernels are registered by this module's import of the package, before.
 */
export function registerWasmKernels(): void {
  for (const [name, kernelFunc] of overrides) {
    const existing = getKernel(name, BACKEND);
    if (existing && OURS in existing.kernelFunc) continue;
    if (existing) base.set(name, existing.kernelFunc);
    const marked = ((a: Parameters<KernelFunc>[0]) => kernelFunc(a)) as Marked;
    marked[OURS] = existing ?? null;
    if (existing) unregisterKernel(name, BACKEND);
    // The wrapped kernel keeps its setup (which binds its wasm function when the backend is set)
    // and its disposal; dropping them would leave it unbound.
    registerKernel({
      kernelName: name,
      backendName: BACKEND,
      kernelFunc: marked,
      setupFunc: existing?.setupFunc,
      disposeFunc: existing?.disposeFunc,
    });
  }
}

/** True when the kernel registered under this name on wasm is one of this module's. */
export function isFastWasmKernel(name: string): boolean {
  const k = getKernel(name, BACKEND);
  return !!k && OURS in k.kernelFunc;
}
