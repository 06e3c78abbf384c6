/**
 * The native (AVX2/FMA addon, AVX-512 microkernel where the CPU has it) backend against tfjs' reference 'cpu' backend: values and gradients
 * of every replaced kernel, over shapes chosen to hit edge cases (channel counts that are not
 * multiples of 8, strides, all padding kinds, partial register tiles), plus determinism across
 * thread counts, tensor bookkeeping and the safety of recycled output buffers.
 *
 * Tolerance: max |native - cpu| <= 1e-4 * max(1, max |cpu|). Both accumulate in float32 in
 * different orders; a wrong index or a missing tap is off by O(max |cpu|).
 *
 * If the addon cannot load, these tests fail with the reason. MASKLOOP_SKIP_NATIVE=1 skips them.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import path from 'node:path';
import { loadNativeAddon, nativeAddonPath, type NativeAddon } from '../../src/engine/native/index';
import { loadTilePlans, tilePlanFile } from '../../src/engine/native/tilePlans';
import { createOptimizer, setLearningRate } from '../../src/engine/train/optimizerState';
import { normaliseBatch } from '../../src/engine/model/unet';
import { NATIVE_BACKEND, nativeFallbacks, nativeKernelNames, registerNativeBackend, resetNativeFallbacks } from '../../src/engine/native/register';

const SKIP = process.env.MASKLOOP_SKIP_NATIVE === '1';
const TOL = 1e-4;

if (SKIP) {
  console.warn('[native-kernels] skipped: MASKLOOP_SKIP_NATIVE=1 (native addon not built or not wanted)');
  describe.skip('native kernels (skipped: MASKLOOP_SKIP_NATIVE=1, the addon is not built or used)', () => {
    it('skipped', () => {});
  });
} else {
  const load = loadNativeAddon();

  describe('native addon', () => {
    it('loads (set MASKLOOP_SKIP_NATIVE=1 to skip these tests on machines without it)', () => {
      expect(load.addon, `native addon unavailable: ${load.reason}`).not.toBeNull();
    });
  });

  if (load.addon) nativeSuite(load.addon);
}

function nativeSuite(addon: NativeAddon): void {
  const cpuConvBefore = tf.getKernel('Conv2D', 'cpu')?.kernelFunc;
  const cpuKernelCount = tf.getKernelsForBackend('cpu').length;
  let threadsBefore = 0;

  beforeAll(() => {
    threadsBefore = addon.getThreads();
    expect(registerNativeBackend()).toBe(true);
    tf.setBackend('cpu');
  });

  afterAll(() => {
    addon.setThreads(threadsBefore);
    tf.setBackend('cpu');
  });

  const sameBits = (a: Float32Array, b: Float32Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

  /** Runs f on a backend; the result is moved nowhere (read it with values()). */
  function on<T>(backend: string, f: () => T): T {
    tf.setBackend(backend);
    try {
      return f();
    } finally {
      tf.setBackend('cpu');
    }
  }

  function values(t: tf.Tensor): Float32Array {
    return Float32Array.from(t.dataSync());
  }

  function expectClose(got: tf.Tensor | Float32Array, want: tf.Tensor | Float32Array, what: string): void {
    if (!(got instanceof Float32Array)) expect(got.shape, `${what}: shape`).toEqual((want as tf.Tensor).shape);
    const g = got instanceof Float32Array ? got : values(got);
    const w = want instanceof Float32Array ? want : values(want);
    expect(g.length, `${what}: size`).toBe(w.length);
    let scale = 1;
    for (const v of w) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    let err = 0;
    let at = -1;
    for (let i = 0; i < w.length; i++) {
      const e = Number.isFinite(w[i]) ? Math.abs(g[i] - w[i]) : Object.is(g[i], w[i]) || (Number.isNaN(g[i]) && Number.isNaN(w[i])) ? 0 : Infinity;
      if (!(e <= err)) {
        err = e;
        at = i;
      }
    }
    expect(err, `${what}: max abs error ${err} at ${at} (native ${g[at]}, cpu ${w[at]}), scale ${scale}`).toBeLessThanOrEqual(TOL * scale);
  }

  let seed = 1;
  const randn = (shape: number[]) => on('cpu', () => tf.randomNormal(shape, 0, 1, 'float32', seed++));

  /** Value and gradients of f(...inputs) * R summed, on both backends. */
  function compareWithGrads(what: string, f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]): void {
    const outShape = on('cpu', () => tf.tidy(() => f(...inputs).shape));
    const r = randn(outShape);
    const loss = (...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), r));
    const run = (backend: string) =>
      on(backend, () => {
        const y = f(...inputs);
        const grads = tf.grads(loss)(inputs);
        const out = [values(y), ...grads.map(values)];
        y.dispose();
        tf.dispose(grads);
        return out;
      });
    const want = run('cpu');
    const got = run(NATIVE_BACKEND);
    expectClose(got[0], want[0], `${what} value`);
    for (let i = 1; i < want.length; i++) expectClose(got[i], want[i], `${what} gradient ${i - 1}`);
    r.dispose();
  }

  describe('registration', () => {
    it('leaves the cpu backend untouched and is idempotent', () => {
      expect(registerNativeBackend()).toBe(true);
      expect(tf.getKernel('Conv2D', 'cpu')?.kernelFunc).toBe(cpuConvBefore);
      expect(tf.getKernelsForBackend('cpu').length).toBe(cpuKernelCount);
      expect(tf.getKernelsForBackend(NATIVE_BACKEND).length).toBe(cpuKernelCount);
      tf.removeBackend(NATIVE_BACKEND);
      expect(registerNativeBackend()).toBe(true);
      expect(tf.findBackendFactory(NATIVE_BACKEND)).toBeTruthy();
      for (const name of ['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'BatchMatMul', '_FusedMatMul', 'MaxPool', 'MaxPoolGrad', 'ResizeNearestNeighbor', 'ResizeNearestNeighborGrad']) {
        expect(nativeKernelNames()).toContain(name);
        expect(tf.getKernel(name, NATIVE_BACKEND)?.kernelFunc).not.toBe(tf.getKernel(name, 'cpu')?.kernelFunc);
      }
    });
  });

  describe('training batch normalisation (fused on native, composed of tensor ops on cpu)', () => {
    // [features shape, ReLU after it]: odd channels, a ReLU-free one, and enough rows for several chunks.
    const cases: Array<[number[], boolean]> = [[[2, 9, 7, 16], true], [[3, 5, 6, 5], false], [[8, 32, 32, 16], true]];
    for (const [shape, relu] of cases) {
      it(`features ${shape}${relu ? ' + ReLU' : ''}: value, gradients and batch statistics`, () => {
        const x = on('cpu', () => tf.add(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', seed++), 3), 1.5));
        const gamma = randn([shape[3]]);
        const beta = randn([shape[3]]);
        compareWithGrads('batch norm', (a, g, b) => normaliseBatch(a as tf.Tensor4D, g, b, () => {}, relu), [x, gamma, beta]);
        const statistics = (backend: string) => on(backend, () => {
          let out: Float32Array[] = [];
          tf.tidy(() => normaliseBatch(x as tf.Tensor4D, gamma, beta, (mean, variance, count) => {
            out = [values(mean), values(variance)];
            expect(count).toBe(shape[0] * shape[1] * shape[2]);
          }, relu));
          return out;
        });
        const [want, got] = [statistics('cpu'), statistics(NATIVE_BACKEND)];
        expectClose(got[0], want[0], 'batch mean');
        expectClose(got[1], want[1], 'batch variance');
        tf.dispose([x, gamma, beta]);
      });
    }

    it('the fused kernels give the same bits on 1 and 2 threads', () => {
      const x = randn([4, 40, 40, 16]);
      const gamma = randn([16]);
      const beta = randn([16]);
      const loss = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(normaliseBatch(a as tf.Tensor4D, g, b, () => {}, true)));
      const run = (threads: number) => {
        addon.setThreads(threads);
        return on(NATIVE_BACKEND, () => {
          const grads = tf.grads(loss)([x, gamma, beta]);
          const out = grads.map(values);
          tf.dispose(grads);
          return out;
        });
      };
      const [one, two] = [run(1), run(2)];
      addon.setThreads(threadsBefore);
      for (let i = 0; i < 3; i++) expect(Buffer.compare(Buffer.from(one[i].buffer), Buffer.from(two[i].buffer)), `gradient ${i}`).toBe(0);
      tf.dispose([x, gamma, beta]);
    });
  });

  describe('conv2d', () => {
    // [x shape, filter shape, strides, pad]
    const cases: Array<[number[], number[], number | [number, number], 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]]]> = [
      [[1, 7, 9, 1], [3, 3, 1, 5], 1, 'same'],
      [[2, 9, 11, 3], [3, 3, 3, 17], 1, 'same'],
      [[3, 8, 8, 5], [5, 5, 5, 7], 1, 'valid'],
      [[2, 10, 9, 17], [3, 3, 17, 20], 2, 'same'],
      [[1, 11, 13, 8], [5, 5, 8, 33], 2, 'valid'],
      [[2, 12, 12, 16], [1, 1, 16, 16], 1, 'valid'],
      [[2, 6, 7, 19], [1, 1, 19, 3], 2, 'same'],
      [[2, 13, 12, 5], [3, 3, 5, 9], [2, 1], [[0, 0], [1, 2], [2, 0], [0, 0]]],
      [[1, 9, 9, 4], [4, 4, 4, 6], 1, 'same'], // even kernel: asymmetric 'same' padding
      [[1, 8, 10, 3], [3, 3, 3, 1], 1, 1], // numeric padding, one output channel
      [[2, 5, 5, 24], [3, 3, 24, 40], 1, 'same'],
      // 3x3 stride 1 with >= 8 channels each side: the Winograd path, F(2x2) on outputs under 8
      // pixels a side and F(4x4) from 8. Sizes off the tile leave partial tiles; channel counts
      // off multiples of 8 take the vector tails; 'valid' and padding 2 move the tiles against
      // the image; 520 input channels split the transform-domain GEMMs' K; 128 channels sum
      // many of F(4x4)'s larger terms.
      [[2, 9, 7, 11], [3, 3, 11, 13], 1, 'valid'],
      [[1, 6, 5, 9], [3, 3, 9, 8], 1, 2],
      [[1, 5, 6, 520], [3, 3, 520, 9], 1, 'same'],
      [[2, 13, 11, 12], [3, 3, 12, 9], 1, 'valid'],
      [[1, 10, 9, 520], [3, 3, 520, 10], 1, 'same'],
      [[1, 17, 18, 128], [3, 3, 128, 24], 1, 'same'],
    ];
    for (const [xs, ws, strides, pad] of cases) {
      it(`x ${xs} filter ${ws} strides ${strides} pad ${JSON.stringify(pad)}: value and both gradients`, () => {
        const x = randn(xs);
        const w = randn(ws);
        compareWithGrads('conv2d', (a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, pad), [x, w]);
        tf.dispose([x, w]);
      });
    }

    it('long reductions stay accurate (U-Net level-1 shape, 8192 pixels per filter gradient)', () => {
      const x = randn([2, 64, 64, 16]);
      const w = randn([3, 3, 16, 16]);
      compareWithGrads('conv2d 64x64x16', (a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), [x, w]);
      tf.dispose([x, w]);
    });

    /**
     * A fused 3x3 convolution with bias and ReLU, and the input and filter gradients of a
     * convolution, under a Winograd setting. The gradients' upstream gradient is a fixed tensor,
     * not a function of the forward's output: otherwise a timed run whose forward and input
     * gradient chose different tiles would match neither tile's run.
     */
    const underTiles = (tiles: -1 | 0 | 2 | 4, x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): Float32Array[] => {
      const conv = (a: tf.Tensor, f: tf.Tensor, activation: 'relu' | 'linear') =>
        tf.fused.conv2d({ x: a as tf.Tensor4D, filter: f as tf.Tensor4D, bias: b, strides: 1, pad: 'same', activation });
      const productDefault = addon.getWinograd();
      addon.setWinograd(tiles);
      try {
        return on(NATIVE_BACKEND, () => {
          const y = conv(x, w, 'relu');
          const dy = tf.tidy(() => tf.sin(tf.range(0, y.size).mul(0.37)).reshape(y.shape));
          const [dx, dw] = tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.sum(tf.mul(conv(a, f, 'linear'), dy)))([x, w]);
          const out = [values(y), values(dx), values(dw)];
          tf.dispose([y, dy, dx, dw]);
          return out;
        });
      } finally {
        addon.setWinograd(productDefault);
      }
    };

    it('3x3 stride-1 convolutions by Winograd F(4x4), F(2x2) and the direct kernels agree, are not the same code, and the timed choice is one of the two for good', () => {
      const x = randn([2, 16, 15, 24]);
      const w = randn([3, 3, 24, 20]);
      const b = randn([20]);
      expect(addon.getWinograd()).toBe(-1);
      const run = (tiles: -1 | 0 | 2 | 4) => underTiles(tiles, x, w, b);
      const [f4, f2, direct] = [run(4), run(2), run(0)];
      const what = ['forward', 'input gradient', 'filter gradient'];
      // The default times F(4x4) against F(2x2) at a kind's first call and keeps the winner: each
      // result is one of the two, bit for bit, the first call's included, and so is every later one.
      const [auto, again] = [run(-1), run(-1)];
      for (let i = 0; i < 2; i++) {
        expect(sameBits(auto[i], f4[i]) || sameBits(auto[i], f2[i]), `timed ${what[i]} is F(4x4)'s or F(2x2)'s`).toBe(true);
        expect(sameBits(again[i], auto[i]), `timed ${what[i]} the same on the second call`).toBe(true);
      }
      for (let i = 0; i < 3; i++) {
        expectClose(f4[i], direct[i], `F(4x4) ${what[i]} vs direct`);
        expectClose(f2[i], direct[i], `F(2x2) ${what[i]} vs direct`);
        // Different arithmetic rounds differently somewhere: proof that each setting selects its own path
        // (the filter gradient is F(2x2) under both Winograd settings).
        expect(sameBits(f2[i], direct[i]), `F(2x2) ${what[i]} bit-identical to direct`).toBe(false);
        if (i < 2) expect(sameBits(f4[i], f2[i]), `F(4x4) ${what[i]} bit-identical to F(2x2)`).toBe(false);
      }
      tf.dispose([x, w, b]);
    });

    it('a machine keeps its timed tiles: the cache file\'s plans are used instead of timing, new plans are written to it, and its own win', () => {
      // Kinds met nowhere else in this file (channels 40 -> 36, then 52 -> 20, 12 x 12 outputs): a
      // forward and its input gradient are two kinds, both of 2^7 output pixels.
      const size = Math.floor(Math.log2(12 * 12));
      const [x, w, dy] = [randn([1, 12, 12, 40]), randn([3, 3, 40, 36]), randn([1, 12, 12, 36])].map(values);
      const geometry = Int32Array.from([1, 12, 12, 40, 3, 3, 36, 1, 1, 1, 1, 1, 1, 12, 12]);
      // The forward and the input gradient straight from the addon, under a Winograd setting.
      const raw = (tiles: -1 | 2 | 4) => {
        const [y, dx] = [new Float32Array(12 * 12 * 36), new Float32Array(12 * 12 * 40)];
        addon.setWinograd(tiles);
        try {
          addon.conv2d(x, w, null, y, geometry, 0, 0);
          addon.conv2dBackpropInput(dy, w, dx, geometry);
        } finally {
          addon.setWinograd(-1);
        }
        return [y, dx];
      };
      const file = tilePlanFile(addon);
      expect(path.dirname(file)).toBe(process.env.MASKLOOP_CACHE_DIR);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      // Each tile the other way round from the other kind's, so that no timing could give both.
      fs.writeFileSync(file, JSON.stringify({ cpu: 'this one', isa: addon.isa, plans: [[40, 36, size, 2], [36, 40, size, 4], [44, 28, size, 2], [28, 44, size, 2]] }));
      expect(loadTilePlans(addon)).toBe(4);
      const [planned, f4, f2] = [raw(-1), raw(4), raw(2)];
      expect(sameBits(planned[0], f2[0]) && !sameBits(planned[0], f4[0]), 'forward by the file\'s F(2x2)').toBe(true);
      expect(sameBits(planned[1], f4[1]) && !sameBits(planned[1], f2[1]), 'input gradient by the file\'s F(4x4)').toBe(true);

      // A new kind is timed and written at once; a plan the file holds for a kind stays as written.
      fs.writeFileSync(file, JSON.stringify({ plans: [[40, 36, size, 4]] }));
      const x2 = randn([1, 12, 12, 52]);
      const w2 = randn([3, 3, 52, 20]);
      const b2 = randn([20]);
      underTiles(-1, x2, w2, b2);
      const written = JSON.parse(fs.readFileSync(file, 'utf8')) as { cpu: string; isa: string; plans: number[][] };
      const tileOf = (ic: number, oc: number) => written.plans.find((p) => p[0] === ic && p[1] === oc && p[2] === size)?.[3];
      expect(written.isa).toBe(addon.isa);
      expect(tileOf(40, 36)).toBe(4);
      expect(tileOf(36, 40)).toBe(4);
      expect([2, 4]).toContain(tileOf(52, 20));
      expect([2, 4]).toContain(tileOf(20, 52));
      const inProcess = addon.winogradPlans();
      for (let i = 0; i < inProcess.length; i += 4) {
        if (inProcess[i] === 52 && inProcess[i + 2] === size) expect(tileOf(52, 20)).toBe(inProcess[i + 3]);
      }

      // A plan the addon could not have made is refused, and an unreadable file is no plans.
      expect(addon.addWinogradPlan(8, 8, 5, 3)).toBe(false);
      expect(addon.addWinogradPlan(-1, 8, 5, 4)).toBe(false);
      fs.writeFileSync(file, '{ not json');
      expect(loadTilePlans(addon)).toBe(0);
      tf.dispose([x2, w2, b2]);
    });

    it('the AVX-512 microkernel, where the CPU has it, agrees with the AVX2 one and the cpu backend, and is its own path', () => {
      const hasAvx512 = addon.isa.includes('avx512f');
      // Winograd products (K = 40), a direct 5x5 convolution with a bias and leaky ReLU, and a GEMM
      // with a partial panel (n = 21): every way a 16-column panel reaches the microkernel.
      const x = randn([2, 13, 14, 40]);
      const w3 = randn([3, 3, 40, 21]);
      const w5 = randn([5, 5, 40, 21]);
      const b = randn([21]);
      const a = randn([37, 45]);
      const m = randn([45, 21]);
      const compute = () => [
        tf.conv2d(x as tf.Tensor4D, w3 as tf.Tensor4D, 1, 'same'),
        tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w5 as tf.Tensor4D, bias: b, strides: 1, pad: 'same', activation: 'leakyrelu', leakyreluAlpha: 0.1 }),
        tf.matMul(a as tf.Tensor2D, m as tf.Tensor2D),
      ];
      const run = (avx512: boolean) => {
        expect(addon.setAvx512(avx512)).toBe(avx512 && hasAvx512);
        try {
          return on(NATIVE_BACKEND, () => {
            const ys = compute();
            const out = ys.map(values);
            tf.dispose(ys);
            return out;
          });
        } finally {
          addon.setAvx512(true);
        }
      };
      const [wide, narrow] = [run(true), run(false)];
      const reference = on('cpu', () => {
        const ys = compute();
        const out = ys.map(values);
        tf.dispose(ys);
        return out;
      });
      const what = ['Winograd conv', 'direct conv + bias + leaky ReLU', 'matmul'];
      for (let i = 0; i < 3; i++) {
        expectClose(wide[i], reference[i], `${what[i]}, AVX-512 where available`);
        expectClose(narrow[i], reference[i], `${what[i]}, AVX2`);
        // The AVX-512 kernel sums even and odd k apart: its rounding differs, which proves it ran.
        const same = Buffer.compare(Buffer.from(wide[i].buffer), Buffer.from(narrow[i].buffer)) === 0;
        expect(same, `${what[i]}: AVX-512 and AVX2 results ${hasAvx512 ? 'bit-identical' : 'differ without AVX-512'}`).toBe(!hasAvx512);
      }
      tf.dispose([x, w3, w5, b, a, m]);
    });

    it('dilated convolution (forward)', () => {
      const x = randn([2, 12, 11, 5]);
      const w = randn([3, 3, 5, 7]);
      const f = () => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same', 'NHWC', [2, 3]);
      expectClose(on(NATIVE_BACKEND, f), on('cpu', f), 'dilated conv2d');
      tf.dispose([x, w]);
    });

    it('fused conv2d with bias + relu: value and gradients (the training path)', () => {
      const x = randn([2, 10, 10, 6]);
      const w = randn([3, 3, 6, 17]);
      const b = randn([17]);
      compareWithGrads(
        'fused conv2d relu',
        (a, f, c) => tf.fused.conv2d({ x: a as tf.Tensor4D, filter: f as tf.Tensor4D, bias: c, strides: 1, pad: 'same', activation: 'relu' }),
        [x, w, b],
      );
      compareWithGrads(
        'fused conv2d linear',
        (a, f, c) => tf.fused.conv2d({ x: a as tf.Tensor4D, filter: f as tf.Tensor4D, bias: c, strides: 2, pad: 'valid' }),
        [x, w, b],
      );
      tf.dispose([x, w, b]);
    });

    it('fused conv2d forward with every activation and bias kind', () => {
      const x = randn([2, 7, 8, 5]);
      const w = randn([3, 3, 5, 12]);
      const biases = [randn([12]), randn([]), randn([7, 8, 12])]; // per channel, scalar, broadcast over HWC
      const alpha = randn([12]);
      for (const bias of biases) {
        for (const activation of ['linear', 'relu', 'relu6', 'sigmoid', 'leakyrelu', 'elu', 'prelu'] as const) {
          const f = () =>
            tf.fused.conv2d({
              x: x as tf.Tensor4D, filter: w as tf.Tensor4D, bias, strides: 1, pad: 'same', activation,
              preluActivationWeights: activation === 'prelu' ? alpha : undefined, leakyreluAlpha: 0.3,
            });
          expectClose(on(NATIVE_BACKEND, f), on('cpu', f), `fused conv2d ${activation} bias ${bias.shape}`);
        }
      }
      tf.dispose([x, w, alpha, ...biases]);
    });
  });

  describe('Adam', () => {
    it('the fused update gives the bits of tfjs\' Adam on the cpu backend, step after step, at changing rates, with the same checkpointable state', async () => {
      // Sizes that leave a vector tail, span several threads' blocks, and are a single value.
      const shapes = [[3, 3, 24, 20], [70001], [1]];
      const inits = shapes.map((sh) => values(randn(sh)));
      const gradients = [0, 1, 2, 3, 4].map(() => shapes.map((sh) => values(randn(sh))));
      const train = async (backend: string, optimizer: tf.AdamOptimizer) => {
        tf.setBackend(backend);
        try {
          const vars = inits.map((v, i) => tf.variable(tf.tensor(v, shapes[i]), true, `adam-${backend}-${i}`));
          gradients.forEach((step, t) => {
            setLearningRate(optimizer, 0.01 / (t + 1));
            const grads = step.map((g, i) => ({ name: vars[i].name, tensor: tf.tensor(g, shapes[i]) }));
            optimizer.applyGradients(grads);
            tf.dispose(grads.map((g) => g.tensor));
          });
          const state = await optimizer.getWeights();
          const out = [...vars.map((v) => values(v)), ...state.map((w) => values(w.tensor))];
          tf.dispose(vars);
          optimizer.dispose();
          return out;
        } finally {
          tf.setBackend('cpu');
        }
      };
      const fused = await train(NATIVE_BACKEND, createOptimizer(0.01));
      const reference = await train('cpu', tf.train.adam(0.01) as tf.AdamOptimizer);
      // Weights, then the iteration count, then the first and second moments of each tensor.
      expect(fused.length).toBe(3 + 1 + 6);
      fused.forEach((a, i) => expect(sameBits(a, reference[i]), `array ${i}`).toBe(true));
      expect(fused[3][0]).toBe(5);
      // The steps moved the weights: the comparison above is not of untouched initial values.
      expect(sameBits(fused[0], inits[0])).toBe(false);
    });
  });

  describe('matMul', () => {
    const cases: Array<[number[], number[], boolean, boolean]> = [
      [[7, 13], [13, 5], false, false],
      [[1, 40], [40, 33], false, false],
      [[17, 9], [17, 21], true, false],
      [[6, 19], [8, 19], false, true],
      [[23, 6], [31, 23], true, true],
      [[3, 5, 18], [3, 18, 7], false, false],
      [[2, 12, 5], [2, 7, 12], true, true],
      [[65, 130], [130, 70], false, false], // several panels and K chunks
    ];
    for (const [as, bs, ta, tb] of cases) {
      it(`a ${as}${ta ? 'ᵀ' : ''} b ${bs}${tb ? 'ᵀ' : ''}: value and gradients`, () => {
        const a = randn(as);
        const b = randn(bs);
        compareWithGrads('matMul', (p, q) => tf.matMul(p, q, ta, tb), [a, b]);
        tf.dispose([a, b]);
      });
    }

    it('broadcasts a 2-D operand over the batch (value; tfjs has no gradient for it)', () => {
      const a = randn([4, 9, 10]);
      const b = randn([10, 3]);
      expectClose(on(NATIVE_BACKEND, () => tf.matMul(a, b)), on('cpu', () => tf.matMul(a, b)), 'broadcast matMul');
      expectClose(on(NATIVE_BACKEND, () => tf.matMul(b, a, true, true)), on('cpu', () => tf.matMul(b, a, true, true)), 'broadcast matMul a');
      tf.dispose([a, b]);
    });

    it('fused matMul with bias and activations', () => {
      const a = randn([9, 14]);
      const b = randn([14, 19]);
      const bias = randn([19]);
      for (const activation of ['linear', 'relu', 'relu6', 'sigmoid', 'leakyrelu', 'elu'] as const) {
        const f = () => tf.fused.matMul({ a, b, bias, activation, leakyreluAlpha: 0.2 });
        expectClose(on(NATIVE_BACKEND, f), on('cpu', f), `fused matMul ${activation}`);
      }
      compareWithGrads('fused matMul linear', (p, q, c) => tf.fused.matMul({ a: p, b: q, bias: c }), [a, b, bias]);
      tf.dispose([a, b, bias]);
    });
  });

  describe('maxPool', () => {
    const cases: Array<[number[], number, number, 'same' | 'valid']> = [
      [[2, 8, 8, 16], 2, 2, 'valid'],
      [[1, 9, 7, 5], 2, 2, 'same'],
      [[2, 9, 9, 3], 3, 2, 'same'],
      [[1, 7, 8, 17], 3, 1, 'valid'],
      [[1, 6, 6, 9], 2, 1, 'same'],
    ];
    for (const [xs, size, stride, pad] of cases) {
      it(`x ${xs} window ${size} stride ${stride} ${pad}: value and gradient`, () => {
        const x = randn(xs);
        compareWithGrads('maxPool', (a) => tf.maxPool(a as tf.Tensor4D, size, stride, pad), [x]);
        x.dispose();
      });
    }

    it('sends the gradient of tied maxima to the first one, as the cpu backend does', () => {
      // ReLU outputs are full of zeros: ties in almost every window.
      const x = on('cpu', () => tf.tidy(() => tf.relu(tf.randomNormal([2, 10, 10, 12], -0.5, 1, 'float32', 99))));
      compareWithGrads('maxPool ties', (a) => tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid'), [x]);
      compareWithGrads('maxPool ties overlapping', (a) => tf.maxPool(a as tf.Tensor4D, 3, 1, 'same'), [x]);
      x.dispose();
    });
  });

  describe('resizeNearestNeighbor', () => {
    /** tfjs' source-index rule, restated independently of the backend code. */
    function source(inSize: number, outSize: number, align: boolean, half: boolean, i: number): number {
      const ratio = (align && outSize > 1 ? inSize - 1 : inSize) / (align && outSize > 1 ? outSize - 1 : outSize);
      const frac = half ? ratio * (i + 0.5) : ratio * i;
      const s = Math.min(inSize - 1, align ? Math.round(frac) : Math.floor(frac));
      return half ? Math.max(0, s) : s;
    }

    /** The exact gradient: each dy pixel added to the pixel it was copied from. */
    function referenceGrad(dy: Float32Array, shape: number[], oh: number, ow: number, align: boolean, half: boolean): Float32Array {
      const [n, h, w, c] = shape;
      const dx = new Float32Array(n * h * w * c);
      for (let b = 0; b < n; b++)
        for (let y = 0; y < oh; y++)
          for (let x = 0; x < ow; x++) {
            const sy = source(h, oh, align, half, y);
            const sx = source(w, ow, align, half, x);
            for (let ch = 0; ch < c; ch++) dx[((b * h + sy) * w + sx) * c + ch] += dy[((b * oh + y) * ow + x) * c + ch];
          }
      return dx;
    }

    const cases: Array<[number[], [number, number], boolean, boolean]> = [
      [[2, 8, 8, 16], [16, 16], false, false], // the U-Net's 2x upsampling
      [[3, 5, 7, 3], [10, 14], false, false],
      [[2, 5, 7, 17], [7, 9], false, false],
      [[1, 9, 6, 5], [4, 3], true, false],
      [[2, 6, 5, 4], [11, 9], true, false],
      [[2, 4, 6, 9], [9, 13], false, true],
    ];
    for (const [xs, size, align, half] of cases) {
      it(`x ${xs} to ${size} alignCorners ${align} halfPixelCenters ${half}`, () => {
        const x = randn(xs);
        const f = () => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, size, align, half);
        expectClose(on(NATIVE_BACKEND, f), on('cpu', f), 'resize value');
        const dy = randn([xs[0], size[0], size[1], xs[3]]);
        const want = referenceGrad(values(dy), xs, size[0], size[1], align, half);
        const got = on(NATIVE_BACKEND, () => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(a as tf.Tensor4D, size, align, half), dy)))(x));
        expectClose(values(got), want, 'resize gradient');
        if (xs[0] === 1 && !half) {
          // Where tfjs' cpu gradient is right (one image, no half-pixel centres) it must agree too.
          const cpu = on('cpu', () => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(a as tf.Tensor4D, size, align, half), dy)))(x));
          expectClose(values(got), values(cpu), 'resize gradient vs cpu');
        }
        tf.dispose([x, dy, got]);
      });
    }

    it('batched gradient equals the per-image cpu gradients (tfjs cpu misreads dy for batch > 1)', () => {
      const x = randn([3, 6, 6, 5]);
      const dy = randn([3, 12, 12, 5]);
      const grad = (a: tf.Tensor, g: tf.Tensor) => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(t as tf.Tensor4D, [12, 12]), g)))(a);
      const want = on('cpu', () => tf.concat([0, 1, 2].map((i) => grad(tf.slice(x, [i], [1]), tf.slice(dy, [i], [1]))), 0));
      expectClose(on(NATIVE_BACKEND, () => grad(x, dy)), want, 'batched resize gradient');
      tf.dispose([x, dy, want]);
    });
  });

  describe('elementwise, reductions and copies', () => {
    const special = () => on('cpu', () => tf.tensor1d([0, -0, 1, -1, 6, 7, -7, 30, -30, 100, -100, NaN, Infinity, -Infinity, 1e-30, 0.5]));

    it('unary ops, including NaN and infinities', () => {
      const xs = [randn([3, 7, 5, 11]), special(), on('cpu', () => tf.abs(tf.randomNormal([1000], 0, 3, 'float32', 5)))];
      const ops: Array<[string, (x: tf.Tensor) => tf.Tensor]> = [
        ['relu', tf.relu], ['relu6', tf.relu6], ['leakyRelu', (x) => tf.leakyRelu(x, 0.15)], ['sigmoid', tf.sigmoid],
        ['step', (x) => tf.step(x, 0.25)], ['neg', tf.neg], ['exp', tf.exp], ['square', tf.square], ['abs', tf.abs],
        ['sqrt', tf.sqrt], ['rsqrt', tf.rsqrt], ['reciprocal', tf.reciprocal],
      ];
      for (const x of xs) {
        for (const [name, op] of ops) {
          const want = on('cpu', () => op(x));
          const got = on(NATIVE_BACKEND, () => op(x));
          // Exp, sigmoid and rsqrt are approximations of the double-precision reference: compare
          // relatively where values are large.
          const w = values(want);
          const g = values(got);
          for (let i = 0; i < w.length; i++) {
            const ok = (Number.isNaN(w[i]) && Number.isNaN(g[i])) || w[i] === g[i] || Math.abs(g[i] - w[i]) <= TOL * Math.max(1, Math.abs(w[i]));
            expect(ok, `${name}(${values(x)[i]}): native ${g[i]}, cpu ${w[i]}`).toBe(true);
          }
          tf.dispose([want, got]);
        }
      }
      tf.dispose(xs);
    });

    it('binary ops: same shape, scalar, trailing and per-pixel broadcasts, and a broadcast it leaves to cpu', () => {
      const pairs: Array<[number[], number[]]> = [
        [[4, 5, 6, 7], [4, 5, 6, 7]], [[4, 5, 6, 7], [7]], [[7], [4, 5, 6, 7]], [[3, 9], []], [[], [3, 9]],
        [[2, 3, 5], [1, 3, 5]], [[2, 1, 3], [2, 4, 1]], [[5, 17], [1, 17]],
        [[4, 5, 6, 3], [4, 5, 6, 1]], [[4, 5, 6, 1], [4, 5, 6, 3]], [[2, 3, 4, 5], [2, 3, 1, 1]], [[5, 3], [5, 1]], [[6, 19], [6, 1]], [[2, 1, 9], [2, 1, 1]],
      ];
      const ops: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
        ['add', tf.add], ['sub', tf.sub], ['mul', tf.mul], ['div', tf.div], ['maximum', tf.maximum], ['minimum', tf.minimum],
        ['squaredDifference', tf.squaredDifference],
      ];
      for (const [as, bs] of pairs) {
        const a = randn(as);
        const b = randn(bs);
        for (const [name, op] of ops) expectClose(on(NATIVE_BACKEND, () => op(a, b)), on('cpu', () => op(a, b)), `${name} ${as} ${bs}`);
        tf.dispose([a, b]);
      }
      // Per-pixel against per-channel operands run natively (the multi-class loss is made of them).
      resetNativeFallbacks();
      const [pixels, mask] = [randn([4, 5, 6, 3]), randn([4, 5, 6, 1])];
      on(NATIVE_BACKEND, () => tf.tidy(() => [tf.mul(pixels, mask), tf.sub(mask, pixels)].forEach((t) => t.dataSync())));
      expect(nativeFallbacks()).not.toHaveProperty('Multiply');
      expect(nativeFallbacks()).not.toHaveProperty('Sub');
      tf.dispose([pixels, mask]);
      const s = special();
      const t = on('cpu', () => tf.reverse(s));
      for (const [name, op] of ops) expectClose(on(NATIVE_BACKEND, () => op(s, t)), on('cpu', () => op(s, t)), `${name} special values`);
      tf.dispose([s, t]);
    });

    it('equal and notEqual against one value, as the loss masks labels, and what they leave to cpu', () => {
      const labels = on('cpu', () => tf.tensor3d(Array.from({ length: 2 * 5 * 7 }, (_, i) => [0, 1, 2, 255][(i * 7) % 4]), [2, 5, 7], 'int32'));
      const s = special();
      const cases: Array<[string, () => tf.Tensor]> = [
        ['int32 labels == 255', () => tf.equal(labels, 255)],
        ['int32 labels != 255', () => tf.notEqual(labels, 255)],
        ['255 == int32 labels (the value first)', () => tf.equal(tf.scalar(255, 'int32'), labels)],
        ['int32 labels == [[[1]]] (a value of more dimensions)', () => tf.equal(labels, tf.tensor3d([1], [1, 1, 1], 'int32'))],
        ['float32 special values == 0 (NaN equals nothing)', () => tf.equal(s, 0)],
        ['float32 special values != NaN', () => tf.notEqual(s, NaN)],
        ['bool == true', () => tf.equal(tf.greater(s, 0), true)],
        ['two tensors (left to cpu)', () => tf.equal(labels, tf.reverse(labels))],
      ];
      resetNativeFallbacks();
      for (const [what, f] of cases) {
        const [got, want] = [on(NATIVE_BACKEND, f), on('cpu', f)];
        expect(got.dtype, what).toBe('bool');
        expect(got.shape, what).toEqual(want.shape);
        expect(Array.from(got.dataSync()), what).toEqual(Array.from(want.dataSync()));
        tf.dispose([got, want]);
      }
      expect(nativeFallbacks().Equal).toBe(1);
      tf.dispose([labels, s]);
    });

    it('takes float32 tensors whose storage is still a bool/int array (cast without copy)', () => {
      const x = randn([3, 5, 7]);
      const mask = on('cpu', () => tf.greater(tf.randomNormal([3, 5, 7], 0, 1, 'float32', 77), 0));
      resetNativeFallbacks();
      const f = () => tf.mul(x, tf.cast(mask, 'float32'));
      expectClose(on(NATIVE_BACKEND, f), on('cpu', f), 'multiply by a cast mask');
      expect(nativeFallbacks().Multiply ?? 0).toBe(0);
      tf.dispose([x, mask]);
    });

    it('sum over leading, trailing, middle, all and non-contiguous axes', () => {
      const x = randn([4, 6, 5, 7]);
      const axes: Array<number | number[] | undefined> = [undefined, 0, 3, [0, 1, 2], [1, 2], [2, 3], [0, 2], -1];
      for (const axis of axes) {
        for (const keepDims of [false, true]) {
          const f = () => tf.sum(x, axis, keepDims);
          expectClose(on(NATIVE_BACKEND, f), on('cpu', f), `sum axis ${JSON.stringify(axis)} keepDims ${keepDims}`);
        }
      }
      const big = randn([8, 64, 64, 16]); // long reductions take the chunked path
      expectClose(on(NATIVE_BACKEND, () => tf.sum(big, [0, 1, 2])), on('cpu', () => tf.sum(big, [0, 1, 2])), 'bias-gradient sum');
      expectClose(on(NATIVE_BACKEND, () => tf.sum(big)), on('cpu', () => tf.sum(big)), 'full sum');
      tf.dispose([x, big]);
    });

    it('concat, split and slice (and their gradients)', () => {
      const a = randn([2, 5, 4, 3]);
      const b = randn([2, 5, 4, 13]);
      const c = randn([2, 5, 4, 1]);
      compareWithGrads('concat channels', (p, q, r) => tf.concat([p, q, r], 3), [a, b, c]);
      const d = randn([2, 3, 4, 3]);
      compareWithGrads('concat rows', (p, q) => tf.concat([p, q], 1), [a, d]);
      const x = randn([3, 6, 5, 8]);
      for (const [begin, size] of [[[0, 0, 0, 2], [3, 6, 5, 4]], [[1, 2, 0, 0], [2, 3, 5, 8]], [[0, 1, 1, 1], [2, 4, 3, 6]], [[1, 0, 0, 0], [1, 6, 5, 8]]]) {
        compareWithGrads(`slice ${begin} ${size}`, (p) => tf.slice(p, begin, size), [x]);
      }
      const f = () => tf.concat(tf.split(x, [3, 1, 4], 3).reverse(), 3);
      expectClose(on(NATIVE_BACKEND, f), on('cpu', f), 'split');
      tf.dispose([a, b, c, d, x]);
    });

    it('softmax over the last axis, with its gradient, for large logits too', () => {
      // [1, 160, 160, 3]: rows enough to be split between threads.
      for (const shape of [[2, 5, 4, 3], [7, 1], [3, 6, 11], [1, 160, 160, 3]]) {
        const x = randn(shape);
        compareWithGrads(`softmax ${shape}`, (p) => tf.softmax(p), [x]);
        const big = on('cpu', () => tf.mul(x, 200)); // exp would overflow unshifted
        const f = () => tf.softmax(big);
        expectClose(on(NATIVE_BACKEND, f), on('cpu', f), `softmax ${shape} x200`);
        tf.dispose([x, big]);
      }
    });

    it('reverse along every combination of axes, with its gradient', () => {
      const x = randn([2, 7, 5, 3]);
      const wide = randn([1, 3, 4, 70]); // blocks of >= 64 floats take the copy path
      for (const axes of [[1], [2], [1, 2], [0, 3], [3], [0, 1, 2, 3]]) {
        compareWithGrads(`reverse ${axes}`, (p) => tf.reverse(p, axes), [x]);
        const g = () => tf.reverse(wide, axes.filter((a) => a !== 3));
        if (axes.some((a) => a !== 3)) expectClose(on(NATIVE_BACKEND, g), on('cpu', g), `reverse wide ${axes}`);
      }
      tf.dispose([x, wide]);
    });
  });

  describe('threads and bookkeeping', () => {
    it('gives bit-identical results on 1 and 2 threads', () => {
      const x = randn([4, 20, 18, 24]);
      const w = randn([3, 3, 24, 40]);
      const m1 = randn([150, 70]);
      const m2 = randn([70, 90]);
      const run = (threads: number) => {
        addon.setThreads(threads);
        return on(NATIVE_BACKEND, () => {
          const loss = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.relu(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'))));
          const [dx, dw] = tf.grads(loss)([x, w]);
          const out = [values(dx), values(dw), values(tf.matMul(m1, m2)), values(tf.sum(x, [0, 1, 2])), values(tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid'))];
          tf.dispose([dx, dw]);
          return out;
        });
      };
      const one = run(1);
      const two = run(2);
      for (let i = 0; i < one.length; i++) expect(Buffer.compare(Buffer.from(one[i].buffer), Buffer.from(two[i].buffer)), `output ${i}`).toBe(0);
      addon.setThreads(threadsBefore);
      tf.dispose([x, w, m1, m2]);
    });

    it('stays correct when two JS threads call kernels at the same time', async () => {
      const geo = Int32Array.of(4, 24, 24, 16, 3, 3, 24, 1, 1, 1, 1, 1, 1, 24, 24);
      const x = new Float32Array(4 * 24 * 24 * 16).map((_, i) => Math.sin(i));
      const w = new Float32Array(3 * 3 * 16 * 24).map((_, i) => Math.cos(i));
      const want = new Float32Array(4 * 24 * 24 * 24);
      addon.setThreads(2);
      addon.conv2d(x, w, null, want, geo, 0, 0);
      const source = `
        const { parentPort, workerData } = require('node:worker_threads');
        const addon = require(workerData.path);
        const out = new Float32Array(workerData.size);
        let same = true;
        for (let i = 0; i < 300; i++) {
          addon.conv2d(workerData.x, workerData.w, null, out, workerData.geo, 0, 0);
          for (let j = 0; j < out.length; j++) if (out[j] !== workerData.want[j]) same = false;
        }
        parentPort.postMessage(same);`;
      const worker = new Worker(source, { eval: true, workerData: { path: nativeAddonPath(), x, w, geo, want, size: want.length } });
      let finished = false;
      const done = new Promise<boolean>((resolve, reject) => {
        worker.once('message', (v: boolean) => {
          finished = true;
          resolve(v);
        });
        worker.once('error', reject);
      });
      // Keep calling (and resizing the pool) until the worker is done, so that the two overlap.
      const got = new Float32Array(want.length);
      let same = true;
      let calls = 0;
      while (!finished) {
        for (let i = 0; i < 5; i++, calls++) {
          addon.conv2d(x, w, null, got, geo, 0, 0);
          if (Buffer.compare(Buffer.from(got.buffer), Buffer.from(want.buffer)) !== 0) same = false;
          if (calls % 7 === 0) addon.setThreads(calls % 14 === 0 ? 1 : 2);
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(same, 'main thread results').toBe(true);
      expect(await done, 'worker thread results').toBe(true);
      await worker.terminate();
      addon.setThreads(threadsBefore);
    });

    it('keeps the tensor count constant across repeated training-like steps', () => {
      const x = randn([2, 16, 16, 3]);
      const w1 = tf.variable(randn([3, 3, 3, 8]));
      const b1 = tf.variable(randn([8]));
      const w2 = tf.variable(randn([3, 3, 16, 4]));
      const bias = randn([1, 1, 4]); // not per-channel-1D: the fused op finishes with an Add
      const step = () =>
        on(NATIVE_BACKEND, () =>
          tf.tidy(() => {
            const { value, grads } = tf.variableGrads(() => {
              const h = tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w1 as tf.Tensor4D, bias: b1, pad: 'same', strides: 1, activation: 'relu' });
              const p = tf.maxPool(h, 2, 2, 'valid');
              const u = tf.image.resizeNearestNeighbor(p, [16, 16]);
              const cat = tf.concat([h, u], 3);
              const y = tf.fused.conv2d({ x: cat, filter: w2 as tf.Tensor4D, bias, pad: 'same', strides: 1, activation: 'sigmoid' });
              return tf.mean(tf.square(y)) as tf.Scalar;
            });
            return [value, ...Object.values(grads)].map((t) => t.dataSync()[0]);
          }),
        );
      step();
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) step();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, w1, b1, w2, bias]);
    });

    it('never recycles a buffer that user code holds or that a view still uses', () => {
      const x = randn([4, 64, 64, 8]);
      // Held through dataSync() after the tensor is gone.
      const held = on(NATIVE_BACKEND, () => {
        const y = tf.relu(x);
        const v = y.dataSync();
        y.dispose();
        return v;
      });
      const copy = Float32Array.from(held);
      // A zero-copy view (cpu Slice of a contiguous range) outliving its base.
      const view = on(NATIVE_BACKEND, () => {
        const y = tf.neg(x);
        const s = tf.slice(y, [1], [2]);
        y.dispose();
        return s;
      });
      const viewCopy = Float32Array.from(on('cpu', () => tf.neg(tf.slice(x, [1], [2]))).dataSync());
      for (let i = 0; i < 4; i++) on(NATIVE_BACKEND, () => tf.tidy(() => tf.exp(tf.sigmoid(tf.abs(x)))));
      expect(Buffer.compare(Buffer.from(held.buffer, held.byteOffset, held.byteLength), Buffer.from(copy.buffer))).toBe(0);
      expectClose(values(view), viewCopy, 'view after its base was disposed');
      tf.dispose([x, view]);
    });

    it('handles the U-Net layer shapes without falling back to cpu kernels', () => {
      resetNativeFallbacks();
      const x = randn([1, 32, 32, 1]);
      const w1 = randn([3, 3, 1, 16]);
      const w2 = randn([3, 3, 32, 16]);
      const head = randn([1, 1, 16, 1]);
      on(NATIVE_BACKEND, () =>
        tf.tidy(() => {
          const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => {
            const h = tf.relu(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'));
            const down = tf.maxPool(h, 2, 2, 'valid');
            const up = tf.image.resizeNearestNeighbor(down, [32, 32]);
            const g = tf.relu(tf.conv2d(tf.concat([h, up], 3), c as tf.Tensor4D, 1, 'same'));
            return tf.sum(tf.sigmoid(tf.conv2d(g, d as tf.Tensor4D, 1, 'valid')));
          };
          tf.grads(f)([x, w1, w2, head]).forEach((t) => t.dataSync());
        }),
      );
      const hot = ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'MaxPool', 'MaxPoolGrad', 'ResizeNearestNeighbor', 'ResizeNearestNeighborGrad', 'Relu', 'Sigmoid', 'Multiply', 'Add', 'Sum', 'Concat', 'SplitV'];
      const fb = nativeFallbacks();
      for (const k of hot) expect(fb[k] ?? 0, `${k} fell back to the cpu kernel`).toBe(0);
      tf.dispose([x, w1, w2, head]);
    });
  });
}
