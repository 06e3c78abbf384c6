// The wasm engine's kernels against tfjs' reference 'cpu' backend: same inputs, forward values
// and tf.grads on both, compared by max abs error relative to the reference's magnitude.
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { KernelBackend, NamedAttrMap } from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixCpuKernels } from '../../src/engine/cpuFixes';
import { initWasmBackend } from '../../src/engine/wasm/init';
import { fastWasmKernels, isFastWasmKernel, registerWasmKernels } from '../../src/engine/wasm/kernels';

/**
 * max|wasm - cpu| <= TOL * max(1, max|cpu|), for single kernels and for a whole network's
 * gradients alike (observed: below 1e-6 everywhere).
 */
const TOL = 1e-5;

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomData(size: number, seed: number, integers = false): Float32Array {
  const r = lcg(seed);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = integers ? Math.floor(r() * 7) - 3 : r() * 2 - 1;
  return out;
}

interface Input {
  shape: number[];
  data: Float32Array;
}

function input(shape: number[], seed: number, integers = false): Input {
  return { shape, data: randomData(shape.reduce((a, b) => a * b, 1), seed, integers) };
}

function tensor4d(i: Input): tf.Tensor4D {
  return tf.tensor(i.data, i.shape) as tf.Tensor as tf.Tensor4D;
}

interface Result {
  y: Float32Array;
  grads: Float32Array[];
}

type Fn = (...xs: tf.Tensor[]) => tf.Tensor;

async function forwardAndGrads(backend: string, f: Fn, inputs: Input[]): Promise<Result> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.data, i.shape));
    const y = f(...xs);
    const dy = tf.tensor(randomData(y.size, 4242), y.shape);
    const grads = tf.grads(f)(xs, dy);
    return { y: y.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/** Max abs difference over the reference's scale (1 when values are small). */
function relError(actual: Float32Array, expected: Float32Array): number {
  expect(actual.length).toBe(expected.length);
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]));
  return m / Math.max(1, maxAbs(expected));
}

async function expectSameOnBothBackends(f: Fn, inputs: Input[], tol = TOL): Promise<void> {
  const ref = await forwardAndGrads('cpu', f, inputs);
  const got = await forwardAndGrads('wasm', f, inputs);
  expect(relError(got.y, ref.y)).toBeLessThanOrEqual(tol);
  got.grads.forEach((g, i) => expect(relError(g, ref.grads[i]), `gradient ${i}`).toBeLessThanOrEqual(tol));
}

/** Tensors and backend buffers (kernel intermediates never become tensors) before/after `fn`. */
async function expectNoGrowth(fn: () => void): Promise<void> {
  await tf.setBackend('wasm');
  const backend = tf.findBackend('wasm') as KernelBackend;
  fn();
  const tensors = tf.memory().numTensors;
  const buffers = backend.numDataIds();
  for (let i = 0; i < 3; i++) fn();
  expect(tf.memory().numTensors).toBe(tensors);
  expect(backend.numDataIds()).toBe(buffers);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  // MASKLOOP_WASM_THREADS=2 runs every comparison on the threaded binary instead.
  expect(await initWasmBackend({ threads: Number(process.env.MASKLOOP_WASM_THREADS ?? 1) })).toBe(true);
  fixCpuKernels(); // the reference must be right: see src/engine/cpuFixes.ts
});

describe('initWasmBackend', () => {
  it('is idempotent, registers the kernels and leaves the current backend alone', async () => {
    await tf.setBackend('cpu');
    expect(await initWasmBackend()).toBe(true);
    expect(tf.getBackend()).toBe('cpu');
    for (const name of fastWasmKernels) expect(isFastWasmKernel(name), name).toBe(true);
    expect(fastWasmKernels).toEqual(
      expect.arrayContaining(['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'BatchMatMul', 'MaxPoolGrad']),
    );
    // Registering again must not wrap our own kernels (which would make them call themselves).
    const before = fastWasmKernels.map((name) => tf.getKernel(name, 'wasm')!.kernelFunc);
    registerWasmKernels();
    expect(fastWasmKernels.map((name) => tf.getKernel(name, 'wasm')!.kernelFunc)).toEqual(before);
  });

  it('keeps the wrapped kernels bound across backend switches', async () => {
    await tf.setBackend('wasm');
    await tf.setBackend('cpu');
    await tf.setBackend('wasm');
    const y = tf.tidy(() => tf.matMul(tf.ones([2, 3]), tf.ones([2, 3]), false, true).dataSync());
    expect(Array.from(y)).toEqual([3, 3, 3, 3]);
  });
});

describe('threaded binary in Node', () => {
  // Its own process: a process has one wasm backend, and this one stays single-threaded.
  it('starts with 2 threads, computes the same gradients as cpu and lets the process exit', async () => {
    const init = fileURLToPath(new URL('../../src/engine/wasm/init.ts', import.meta.url));
    const script = `
      const { initWasmBackend, wasmThreads } = await import(process.argv[1]);
      const tf = await import('@tensorflow/tfjs');
      const ok = await initWasmBackend({ threads: 2 });
      await tf.setBackend('wasm');
      const x = tf.sin(tf.reshape(tf.range(0, 2 * 12 * 12 * 8), [2, 12, 12, 8]));
      const w = tf.cos(tf.reshape(tf.range(0, 3 * 3 * 8 * 16), [3, 3, 8, 16]));
      const [gx, gw] = tf.grads((a, b) => tf.sum(tf.square(tf.conv2d(a, b, 1, 'same'))))([x, w]);
      console.log(JSON.stringify({ ok, threads: wasmThreads(), gx: Array.from(gx.dataSync()), gw: Array.from(gw.dataSync()) }));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, init], {
      encoding: 'utf8',
      timeout: 300_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const got = JSON.parse(out.trim().split('\n').pop()!) as { ok: boolean; threads: number; gx: number[]; gw: number[] };
    expect(got.ok).toBe(true);
    expect(got.threads).toBe(2);
    await tf.setBackend('cpu');
    const [gx, gw] = tf.tidy(() => {
      const x = tf.sin(tf.range(0, 2 * 12 * 12 * 8).reshape([2, 12, 12, 8]));
      const w = tf.cos(tf.range(0, 3 * 3 * 8 * 16).reshape([3, 3, 8, 16]));
      return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'))))([x, w]).map(
        (g) => g.dataSync() as Float32Array,
      );
    });
    expect(relError(Float32Array.from(got.gx), gx)).toBeLessThanOrEqual(TOL);
    expect(relError(Float32Array.from(got.gw), gw)).toBeLessThanOrEqual(TOL);
  });
});

type PadSpec = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

describe('conv2d and its gradients (Conv2DBackpropFilter, Conv2DBackpropInput)', () => {
  const channels: Array<[number, number]> = [
    [1, 3],
    [3, 16],
    [16, 1],
    [16, 16],
  ];
  const cases: Array<[number, number, number, number, PadSpec]> = [];
  for (const [ci, co] of channels)
    for (const k of [1, 3, 5]) for (const s of [1, 2]) for (const pad of ['same', 'valid'] as const) cases.push([ci, co, k, s, pad]);

  it.each(cases)('in %i out %i, kernel %i, stride %i, %s', async (ci, co, k, s, pad) => {
    // Odd, non-square sizes and batch 3 so that no stride divides evenly by accident.
    await expectSameOnBothBackends(
      (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s, pad),
      [input([3, 11, 9, ci], 1), input([k, k, ci, co], 2)],
    );
  });

  it.each([
    ['explicit padding, stride 1', [[0, 0], [1, 2], [0, 1], [0, 0]], 1],
    ['explicit padding, stride 2', [[0, 0], [2, 0], [1, 1], [0, 0]], 2],
    ['padding wider than the filter (input-gradient fallback)', [[0, 0], [3, 3], [3, 3], [0, 0]], 1],
  ] as Array<[string, PadSpec, number]>)('%s', async (_, pad, s) => {
    await expectSameOnBothBackends(
      (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s, pad),
      [input([2, 8, 7, 3], 3), input([3, 3, 3, 4], 4)],
    );
  });

  it.each([
    ['stride [2, 1], 3x3', [2, 1], 3, 'same'],
    ['stride 3, 5x5', 3, 5, 'same'],
    ['stride 3, 2x2, valid', 3, 2, 'valid'],
  ] as Array<[string, number | [number, number], number, 'same' | 'valid']>)('%s', async (_, s, k, pad) => {
    await expectSameOnBothBackends(
      (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s, pad),
      [input([2, 10, 11, 3], 60), input([k, k, 3, 5], 61)],
    );
  });

  it.each([
    ['4x4 stride 2 same', 4, 2, 'same'],
    ['3x3 stride 2 same', 3, 2, 'same'],
    ['3x3 stride 2 valid', 3, 2, 'valid'],
  ] as Array<[string, number, number, 'same' | 'valid']>)('conv2dTranspose (Conv2DBackpropInput forward) %s', async (_, k, s, pad) => {
    const outSize = pad === 'same' ? 6 * s : (6 - 1) * s + k;
    await expectSameOnBothBackends(
      (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, outSize, outSize, 4], s, pad),
      [input([2, 6, 6, 8], 62), input([k, k, 4, 8], 63)],
    );
  });

  it('fused conv2d with bias and ReLU (the U-Net layer)', async () => {
    await expectSameOnBothBackends(
      (x, w, b) => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, bias: b, strides: 1, pad: 'same', activation: 'relu' }),
      [input([2, 12, 12, 16], 5), input([3, 3, 16, 16], 6), input([16], 7)],
    );
  });

  it('runs the gradient kernels directly (batch 1, stride 2, non-divisible valid)', async () => {
    const x = input([1, 10, 13, 3], 8);
    const dyShape = [1, 4, 6, 5];
    const dy = input(dyShape, 9);
    const w = input([3, 3, 3, 5], 10);
    const attrs = { strides: [2, 2], pad: 'valid', dataFormat: 'NHWC', dimRoundingMode: undefined };
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const filter = tf.engine().runKernel(
          'Conv2DBackpropFilter',
          { x: tf.tensor(x.data, x.shape), dy: tf.tensor(dy.data, dy.shape) },
          { ...attrs, filterShape: [3, 3, 3, 5] } as unknown as NamedAttrMap,
        ) as tf.Tensor;
        const inp = tf.engine().runKernel(
          'Conv2DBackpropInput',
          { dy: tf.tensor(dy.data, dy.shape), filter: tf.tensor(w.data, w.shape) },
          { ...attrs, inputShape: x.shape } as unknown as NamedAttrMap,
        ) as tf.Tensor;
        return [filter.dataSync() as Float32Array, inp.dataSync() as Float32Array];
      });
    };
    const ref = await run('cpu');
    const got = await run('wasm');
    expect(relError(got[0], ref[0])).toBeLessThanOrEqual(TOL);
    expect(relError(got[1], ref[1])).toBeLessThanOrEqual(TOL);
  });

  it('leaves no tensors or buffers behind', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor(input([2, 9, 9, 3], 11).data, [2, 9, 9, 3]) as tf.Tensor4D;
    const w = tf.tensor(input([3, 3, 3, 4], 12).data, [3, 3, 3, 4]) as tf.Tensor4D;
    const step = (s: number) => () =>
      tf.tidy(() => {
        tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, s, 'same').square().sum())([x, w]);
      });
    await expectNoGrowth(step(1));
    await expectNoGrowth(step(2));
    tf.dispose([x, w]);
  });
});

describe('depthwise conv2d gradients (missing in wasm)', () => {
  const cases: Array<[number, number, number, number, 'same' | 'valid']> = [];
  for (const c of [1, 3, 16]) for (const k of [3, 5]) for (const s of [1, 2]) for (const pad of ['same', 'valid'] as const) cases.push([c, 1, k, s, pad]);
  cases.push([3, 2, 3, 1, 'same'], [3, 2, 3, 2, 'valid']);

  it.each(cases)('channels %i, multiplier %i, kernel %i, stride %i, %s', async (c, m, k, s, pad) => {
    await expectSameOnBothBackends(
      (x, w) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, s, pad),
      [input([2, 11, 10, c], 13), input([k, k, c, m], 14)],
    );
  });

  it('leaves no tensors or buffers behind', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor(input([2, 9, 9, 3], 15).data, [2, 9, 9, 3]) as tf.Tensor4D;
    const w = tf.tensor(input([3, 3, 3, 1], 16).data, [3, 3, 3, 1]) as tf.Tensor4D;
    await expectNoGrowth(() =>
      tf.tidy(() => {
        tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same').sum())([x, w]);
      }),
    );
    tf.dispose([x, w]);
  });
});

describe('matMul with transposed operands (BatchMatMul, _FusedMatMul)', () => {
  const cases: Array<[string, number[], number[], boolean, boolean]> = [
    ['plain', [7, 5], [5, 6], false, false],
    ['A transposed', [5, 7], [5, 6], true, false],
    ['B transposed', [7, 5], [6, 5], false, true],
    ['both transposed', [5, 7], [6, 5], true, true],
    ['batched, A transposed', [3, 16, 9], [3, 16, 4], true, false],
    ['batched, both transposed', [2, 33, 17], [2, 3, 33], true, true],
    ['vector, B transposed', [1, 16], [3, 16], false, true],
  ];
  it.each(cases)('%s', async (_, a, b, ta, tb) => {
    await expectSameOnBothBackends((x, y) => tf.matMul(x, y, ta, tb), [input(a, 17), input(b, 18)]);
  });

  it.each(cases.slice(1, 4))('fused with bias and ReLU, %s', async (_, a, b, ta, tb) => {
    const outCols = tb ? b[0] : b[1];
    await expectSameOnBothBackends(
      (x, y, bias) => tf.fused.matMul({ a: x as tf.Tensor2D, b: y as tf.Tensor2D, transposeA: ta, transposeB: tb, bias, activation: 'relu' }),
      [input(a, 19), input(b, 20), input([outCols], 21)],
    );
  });

  it('leaves no tensors or buffers behind', async () => {
    await tf.setBackend('wasm');
    const a = tf.tensor(input([4, 6], 22).data, [4, 6]);
    const b = tf.tensor(input([5, 6], 23).data, [5, 6]);
    await expectNoGrowth(() => tf.tidy(() => void tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.matMul(p, q, true, true).sum())([a.transpose(), b])));
    tf.dispose([a, b]);
  });
});

describe('maxPool gradient (wasm 4.22 MaxPoolGrad is wrong; replaced)', () => {
  const cases: Array<[string, number, number, 'same' | 'valid', boolean]> = [
    ['2x2 stride 2 valid', 2, 2, 'valid', false],
    ['2x2 stride 2 valid, ties and negatives', 2, 2, 'valid', true],
    ['3x3 stride 2 same, ties', 3, 2, 'same', true],
    ['3x3 stride 1 same', 3, 1, 'same', false],
  ];
  it.each(cases)('%s', async (_, size, stride, pad, ties) => {
    await expectSameOnBothBackends(
      (x) => tf.maxPool(x as tf.Tensor4D, size, stride, pad),
      [input([2, 9, 8, 3], 24, ties)],
    );
  });

  it('after a ReLU (all-zero windows)', async () => {
    await expectSameOnBothBackends(
      (x) => tf.maxPool(tf.relu(x) as tf.Tensor4D, 2, 2, 'valid'),
      [input([3, 8, 8, 16], 25)],
    );
  });
});

describe('resizeNearestNeighbor gradient', () => {
  it.each([
    [4, 4, 8, 8, false, false],
    [3, 5, 6, 10, false, false],
    [4, 4, 8, 8, true, false],
    [4, 4, 8, 8, false, true],
    [5, 3, 7, 8, false, false],
    [8, 8, 16, 32, false, false],
  ])('%ix%i -> %ix%i, alignCorners %s, halfPixelCenters %s', async (h, w, oh, ow, align, half) => {
    await expectSameOnBothBackends(
      (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [oh, ow], align, half),
      [input([2, h, w, 3], 26)],
    );
  });
});

describe('data movement (Identity, Slice, SplitV, Concat, Sum over leading axes)', () => {
  it('identity shares the buffer safely: a clone outlives its source', async () => {
    await tf.setBackend('wasm');
    const a = tf.tensor([1, 2, 3, 4], [2, 2]);
    const b = tf.clone(a);
    a.dispose();
    expect(Array.from(b.dataSync())).toEqual([1, 2, 3, 4]);
    b.dispose();
    await expectNoGrowth(() => tf.tidy(() => void tf.clone(tf.ones([3, 3])).dataSync()));
  });

  it.each([
    ['rank 1', [10], [3], [5]],
    ['rank 2 rows', [6, 5], [2, 0], [3, -1]],
    ['rank 4, last axis', [2, 5, 4, 8], [0, 0, 0, 3], [-1, -1, -1, 4]],
    ['rank 4, every axis', [3, 6, 5, 7], [1, 2, 1, 2], [2, 3, 3, 4]],
    ['rank 5, long runs', [2, 3, 4, 5, 70], [1, 1, 0, 1, 0], [1, 2, 4, 3, 70]],
  ])('slice %s', async (_, shape, begin, size) => {
    await expectSameOnBothBackends((x) => tf.slice(x, begin, size), [input(shape, 30)]);
  });

  it('slice and concat of int32 and bool tensors', async () => {
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const i = tf.tensor(Int32Array.from({ length: 60 }, (_, k) => k - 30), [3, 4, 5], 'int32');
        const b = i.greater(0);
        return [
          Array.from(tf.slice(i, [1, 1, 2], [2, 3, 3]).dataSync()),
          Array.from(tf.concat([i, i.neg()], 2).dataSync()),
          Array.from(tf.concat([b, b.logicalNot()], 1).dataSync()),
          Array.from(tf.split(i, [1, 4], 2)[1].dataSync()),
        ];
      });
    };
    expect(await run('wasm')).toEqual(await run('cpu'));
  });

  it.each([
    ['last axis, two parts', [2, 6, 5, 32], [16, 16], 3],
    ['last axis, uneven parts', [2, 3, 4, 10], [3, -1, 2], 3],
    ['middle axis', [2, 9, 4, 3], [4, 5], 1],
    ['first axis', [6, 3, 2], [1, 2, 3], 0],
  ] as Array<[string, number[], number[], number]>)('split (SplitV) along %s', async (_, shape, sizes, axis) => {
    await expectSameOnBothBackends((x) => tf.concat(tf.split(x, sizes, axis).map((p, i) => p.mul(i + 1)), axis), [input(shape, 31)]);
  });

  it.each([
    ['channels of two', [[2, 6, 5, 16], [2, 6, 5, 16]], 3],
    ['channels of three, uneven', [[2, 4, 3, 1], [2, 4, 3, 7], [2, 4, 3, 2]], 3],
    ['rows', [[2, 3, 5, 4], [2, 6, 5, 4]], 1],
    ['batch', [[1, 3, 3, 2], [2, 3, 3, 2]], 0],
  ] as Array<[string, number[][], number]>)('concat along %s', async (_, shapes, axis) => {
    await expectSameOnBothBackends((...xs) => tf.concat(xs, axis), shapes.map((sh, i) => input(sh, 32 + i)));
  });

  it.each([
    ['bias gradient axes', [3, 8, 7, 16], [0, 1, 2], false],
    ['leading axes, keepDims', [3, 8, 7, 16], [0, 1], true],
    ['one leading axis', [5, 12], [0], false],
    ['inner axes (backend kernel)', [3, 8, 7, 16], [1, 2], false],
    ['all axes (backend kernel)', [4, 5, 6], [0, 1, 2], false],
  ] as Array<[string, number[], number[], boolean]>)('sum over %s', async (_, shape, axes, keepDims) => {
    await expectSameOnBothBackends((x) => tf.sum(x, axes, keepDims), [input(shape, 40)]);
  });

  it('leave no tensors or buffers behind', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor(input([2, 6, 5, 8], 41).data, [2, 6, 5, 8]);
    await expectNoGrowth(() =>
      tf.tidy(() => {
        tf.grads((a: tf.Tensor) => tf.concat(tf.split(a, [3, 5], 3).reverse(), 3).slice([0, 1, 0, 0], [2, 4, 5, 8]).sum([0, 1, 2]).sum())([x]);
      }),
    );
    x.dispose();
  });
});

describe('other gradients a pretext task or head needs', () => {
  it('gather (UnsortedSegmentSum, missing in wasm), repeated and dropped indices', async () => {
    await expectSameOnBothBackends((x) => tf.gather(x, [0, 3, 3, 5, 1, 3]), [input([7, 4, 3], 50)]);
    await expectSameOnBothBackends((x) => tf.gather(x, [2, 0, 2], 1), [input([3, 5, 2], 51)]);
  });

  it.each([
    ['global', [8, 8], 1, 'valid'],
    ['2x2 stride 2', [2, 2], 2, 'valid'],
    ['3x3 stride 2 same', [3, 3], 2, 'same'],
  ] as Array<[string, [number, number], number, 'same' | 'valid']>)('avgPool %s', async (_, size, stride, pad) => {
    await expectSameOnBothBackends((x) => tf.avgPool(x as tf.Tensor4D, size, stride, pad), [input([2, 8, 8, 16], 52)]);
  });

  it('normalised similarity matrix with softmax cross-entropy (contrastive head)', async () => {
    await expectSameOnBothBackends((z, t) => {
      const unit = z.div(tf.norm(z, 'euclidean', 1, true).add(1e-8));
      const sim = tf.matMul(unit, unit, false, true).div(0.5);
      return tf.losses.softmaxCrossEntropy(tf.softmax(t), sim);
    }, [input([6, 16], 53), input([6, 6], 54)]);
  });
});

// A small U-Net with every op of the real one: fused conv2d + bias + ReLU, maxPool, nearest
// upsampling, skip concat, 1x1 head, sigmoid and binary cross-entropy.
const BASE = 4;
function unetShapes(): number[][] {
  const s: number[][] = [];
  const conv = (k: number, ci: number, co: number) => s.push([k, k, ci, co], [co]);
  conv(3, 1, BASE);
  conv(3, BASE, BASE);
  conv(3, BASE, 2 * BASE);
  conv(3, 2 * BASE, 2 * BASE);
  conv(3, 2 * BASE, 4 * BASE);
  conv(3, 4 * BASE, 4 * BASE);
  conv(3, 4 * BASE, 2 * BASE); // up
  conv(3, 4 * BASE, 2 * BASE);
  conv(3, 2 * BASE, BASE); // up
  conv(3, 2 * BASE, BASE);
  conv(1, BASE, 1); // head
  return s;
}

function unetLoss(x: tf.Tensor4D, y: tf.Tensor4D, p: tf.Tensor[]): tf.Scalar {
  let i = 0;
  const conv = (t: tf.Tensor4D, activation: 'relu' | 'linear' = 'relu') =>
    tf.fused.conv2d({ x: t, filter: p[i++] as tf.Tensor4D, bias: p[i++], strides: 1, pad: 'same', activation });
  const up = (t: tf.Tensor4D, like: tf.Tensor4D) => conv(tf.image.resizeNearestNeighbor(t, [like.shape[1], like.shape[2]]));
  const l0 = conv(conv(x));
  const l1 = conv(conv(tf.maxPool(l0, 2, 2, 'valid')));
  const l2 = conv(conv(tf.maxPool(l1, 2, 2, 'valid')));
  const d1 = conv(tf.concat([l1, up(l2, l1)], 3));
  const d0 = conv(tf.concat([l0, up(d1, l0)], 3));
  const prob = tf.sigmoid(conv(d0, 'linear')).clipByValue(1e-6, 1 - 1e-6);
  return tf.neg(tf.mean(y.mul(tf.log(prob)).add(tf.sub(1, y).mul(tf.log(tf.sub(1, prob)))))) as tf.Scalar;
}

function unetInputs(): { params: Input[]; x: Input; y: Input } {
  const params = unetShapes().map((shape, k) => {
    const i = input(shape, 100 + k);
    // He-like scale keeps activations O(1) through the layers.
    const fanIn = shape.length === 4 ? shape[0] * shape[1] * shape[2] : 1;
    const scale = shape.length === 4 ? Math.sqrt(6 / fanIn) : 0.1;
    for (let j = 0; j < i.data.length; j++) i.data[j] *= scale;
    return i;
  });
  const x = input([2, 16, 16, 1], 300);
  const y = input([2, 16, 16, 1], 301);
  for (let j = 0; j < y.data.length; j++) y.data[j] = y.data[j] > 0 ? 1 : 0;
  return { params, x, y };
}

describe('U-Net training step', () => {
  it('loss and every parameter gradient on wasm match cpu', async () => {
    const { params, x, y } = unetInputs();
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const xt = tensor4d(x);
        const yt = tensor4d(y);
        const ps = params.map((p) => tf.tensor(p.data, p.shape));
        const { value, grads } = tf.valueAndGrads((...q: tf.Tensor[]) => unetLoss(xt, yt, q))(ps);
        return { loss: value.dataSync()[0], grads: grads.map((g) => g.dataSync() as Float32Array) };
      });
    };
    const ref = await run('cpu');
    const got = await run('wasm');
    expect(Math.abs(got.loss - ref.loss)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(ref.loss)));
    got.grads.forEach((g, i) => {
      expect(maxAbs(ref.grads[i]), `gradient ${i} is not trivially zero`).toBeGreaterThan(0);
      expect(relError(g, ref.grads[i]), `gradient ${i}`).toBeLessThanOrEqual(TOL);
    });
  });

  it('trains with Adam on wasm: loss falls, tensors and buffers stay constant', async () => {
    await tf.setBackend('wasm');
    const backend = tf.findBackend('wasm') as KernelBackend;
    const { params, x, y } = unetInputs();
    const xt = tensor4d(x);
    const yt = tensor4d(y);
    const vars = params.map((p) => tf.variable(tf.tensor(p.data, p.shape)));
    const optimizer = tf.train.adam(1e-2);
    const step = () => {
      const loss = optimizer.minimize(() => unetLoss(xt, yt, vars), true, vars)!;
      const v = loss.dataSync()[0];
      loss.dispose();
      return v;
    };
    const first = step(); // creates the optimizer's moment variables
    const tensors = tf.memory().numTensors;
    const buffers = backend.numDataIds();
    let last = first;
    for (let i = 0; i < 15; i++) last = step();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(buffers);
    expect(last).toBeLessThan(first);
    optimizer.dispose();
    tf.dispose([xt, yt, ...vars]);
  });
});
