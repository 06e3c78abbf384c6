/**
 * Micro-benchmark of the native kernels on the reference U-Net's shapes (DESIGN.md), and of a
 * whole U-Net training step / inference through tfjs on the 'native' backend.
 *
 *   npx tsx tools/bench/microbench.ts [--threads 1,2] [--only kernels|unet|profile] [--batch 8]
 *     [--conv auto,f4,f2,direct]
 *
 * --conv lists the algorithms for 3x3 stride-1 convolutions to measure, one after the other in the
 * same run: auto (what the product runs: per kind of convolution the Winograd tile that timed
 * faster), f4 (Winograd F(4x4, 3x3) where it applies, else F(2x2, 3x3)), f2 (F(2x2, 3x3) only)
 * or direct (the implicit GEMM); by default auto.
 *
 * Kernel figures call the addon directly on preallocated arrays (the kernel's own speed);
 * U-Net figures include everything tfjs does around the kernels.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { convAlgorithm, loadNativeAddon, OperandLayout, WINOGRAD_TILE, type ConvAlgorithm, type NativeAddon } from '../../src/engine/native/index';
import { nativeFallbacks, registerNativeBackend } from '../../src/engine/native/register';
import { REFERENCE_UNET, UNet } from '../../src/engine/model/unet';
import { createOptimizer } from '../../src/engine/train/optimizerState';

interface Options {
  threads: number[];
  only: Set<string>;
  conv: ConvAlgorithm[];
  batch: number;
  seconds: number;
  /** Before each measurement, wait (up to a minute) until the machine's CPUs are idle. */
  waitIdle: boolean;
}

function parseArgs(argv: string[]): Options {
  const opt: Options = { threads: [1, 2], only: new Set(['kernels', 'unet', 'profile']), conv: [], batch: 8, seconds: 1.5, waitIdle: false };
  for (let i = 0; i < argv.length; i++) {
    const next = () => argv[++i] ?? '';
    switch (argv[i]) {
      case '--threads':
        opt.threads = next().split(',').map(Number).filter((n) => n > 0);
        break;
      case '--only':
        opt.only = new Set(next().split(','));
        break;
      case '--conv':
        opt.conv = next().split(',').map((a) => {
          if (!(a in WINOGRAD_TILE)) throw new Error(`--conv takes ${Object.keys(WINOGRAD_TILE).join(', ')}, not ${a}`);
          return a as ConvAlgorithm;
        });
        break;
      case '--batch':
        opt.batch = Number(next());
        break;
      case '--seconds':
        opt.seconds = Number(next());
        break;
      case '--wait-idle':
        opt.waitIdle = true;
        break;
      default:
        throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return opt;
}

let waitIdle = false;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Fraction of all CPU time that was idle over the next `ms`. */
function idleFraction(ms: number): number {
  const total = () => os.cpus().reduce((acc, c) => {
    const t = c.times;
    acc.all += t.user + t.nice + t.sys + t.idle + t.irq;
    acc.idle += t.idle;
    return acc;
  }, { all: 0, idle: 0 });
  const a = total();
  Atomics.wait(sleeper, 0, 0, ms);
  const b = total();
  return (b.idle - a.idle) / Math.max(1, b.all - a.all);
}

/** On a shared machine, other processes' load makes multi-thread figures meaningless: wait it out. */
function settle(): void {
  if (!waitIdle) return;
  const until = performance.now() + 60_000;
  while (performance.now() < until && idleFraction(400) < 0.9);
}

/**
 * Best (minimum) seconds per call of f over about `seconds` of repeats, after a warm-up. The
 * minimum, not the median: on a shared machine other processes only ever add time, so the best
 * sample is the closest to the kernel's own speed.
 */
function timeIt(f: () => void, seconds: number): number {
  settle();
  f();
  let best = Infinity;
  let n = 0;
  const end = performance.now() + seconds * 1000;
  while (n < 3 || (performance.now() < end && n < 500)) {
    const t0 = performance.now();
    f();
    best = Math.min(best, (performance.now() - t0) / 1000);
    n++;
  }
  return best;
}

function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296) * 2 - 1;
  }
  return a;
}

interface ConvLayer {
  name: string;
  size: number;
  cin: number;
  cout: number;
  k: number;
}

/** Every convolution of the reference U-Net (4 levels, base 16), in forward order. */
function unetLayers(): ConvLayer[] {
  const L: ConvLayer[] = [];
  const base = 16;
  let cin = 1;
  for (let level = 0; level < 4; level++) {
    const f = base << level;
    const size = 128 >> level;
    L.push({ name: `enc${level}.conv0`, size, cin, cout: f, k: 3 }, { name: `enc${level}.conv1`, size, cin: f, cout: f, k: 3 });
    cin = f;
  }
  for (let level = 2; level >= 0; level--) {
    const f = base << level;
    const size = 128 >> level;
    L.push(
      { name: `dec${level}.up`, size, cin: 2 * f, cout: f, k: 3 },
      { name: `dec${level}.conv0`, size, cin: 2 * f, cout: f, k: 3 },
      { name: `dec${level}.conv1`, size, cin: f, cout: f, k: 3 },
    );
  }
  L.push({ name: 'head', size: 128, cin: base, cout: 1, k: 1 });
  return L;
}

function benchKernels(addon: NativeAddon, opt: Options): void {
  const n = opt.batch;
  const layers = unetLayers();
  console.log(`\nConvolution kernels, batch ${n}, 'same' padding, GFLOP/s (best of repeats):`);
  const header = ['layer', 'shape'];
  for (const t of opt.threads) header.push(`fwd ${t}T`, `dX ${t}T`, `dW ${t}T`);
  console.log(header.join('\t'));
  const totals = new Map<string, { flop: number; sec: number }>();
  for (const l of layers) {
    const pad = (l.k - 1) >> 1;
    const geo = Int32Array.of(n, l.size, l.size, l.cin, l.k, l.k, l.cout, 1, 1, 1, 1, pad, pad, l.size, l.size);
    const x = random(n * l.size * l.size * l.cin, 1);
    const w = random(l.k * l.k * l.cin * l.cout, 2);
    const bias = random(l.cout, 3);
    const y = new Float32Array(n * l.size * l.size * l.cout);
    const dy = random(y.length, 4);
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(w.length);
    const flop = 2 * n * l.size * l.size * l.k * l.k * l.cin * l.cout;
    const row = [l.name, `${l.size}² ${l.cin}→${l.cout}`];
    for (const t of opt.threads) {
      addon.setThreads(t);
      const secs = {
        fwd: timeIt(() => addon.conv2d(x, w, bias, y, geo, 1, 0), opt.seconds / 3),
        dX: timeIt(() => addon.conv2dBackpropInput(dy, w, dx, geo), opt.seconds / 3),
        dW: timeIt(() => addon.conv2dBackpropFilter(x, dy, dw, geo), opt.seconds / 3),
      };
      for (const [kind, s] of Object.entries(secs)) {
        // The first layer's input gradient is never computed in training (the image needs none).
        if (kind === 'dX' && l.cin === 1) continue;
        const key = `${kind} ${t}T`;
        const acc = totals.get(key) ?? { flop: 0, sec: 0 };
        acc.flop += flop;
        acc.sec += s;
        totals.set(key, acc);
      }
      row.push(...Object.values(secs).map((s) => (flop / s / 1e9).toFixed(1)));
    }
    console.log(row.join('\t'));
  }
  const order = opt.threads.flatMap((t) => ['fwd', 'dX', 'dW'].map((k) => `${k} ${t}T`));
  console.log(['all convs', 'time-weighted', ...order.map((k) => {
    const v = totals.get(k);
    return v ? (v.flop / v.sec / 1e9).toFixed(1) : '-';
  })].join('\t'));

  console.log(`\nGEMM (BatchMatMul), GFLOP/s:`);
  const gemms: Array<[number, number, number, boolean, boolean]> = [
    [1024, 1024, 1024, false, false],
    [1024, 1024, 1024, true, false],
    [1024, 1024, 1024, false, true],
    [131072, 16, 144, false, false],
    [2048, 128, 1152, false, false],
  ];
  for (const [m, nn, k, ta, tb] of gemms) {
    const a = random(m * k, 5);
    const b = random(k * nn, 6);
    const c = new Float32Array(m * nn);
    const row = [`${m}x${nn}x${k}${ta ? ' Aᵀ' : ''}${tb ? ' Bᵀ' : ''}`];
    for (const t of opt.threads) {
      addon.setThreads(t);
      const s = timeIt(() => addon.matmul(a, b, c, null, 1, 1, m, nn, k, ta, tb, 0, 0), opt.seconds / 2);
      row.push(`${t}T ${((2 * m * nn * k) / s / 1e9).toFixed(1)}`);
    }
    console.log(row.join('\t'));
  }

  console.log(`\nMemory-bound kernels at 128² x 16 ch, batch ${n}, GB/s moved:`);
  const c = 16;
  const big = n * 128 * 128 * c;
  const x = random(big, 7);
  const g = random(big, 8);
  const out = new Float32Array(big);
  const small = new Float32Array(big / 4);
  const smallIn = random(big / 4, 9);
  const rows = new Int32Array(128).map((_, i) => i >> 1);
  const poolGeo = Int32Array.of(n, 128, 128, c, 2, 2, 2, 2, 0, 0, 64, 64);
  const mem: Array<[string, number, () => void]> = [
    ['maxPool 2x2', big * 1.25 * 4, () => addon.maxPool(x, small, poolGeo)],
    ['maxPoolGrad 2x2', (big * 2 + big / 4) * 4, () => addon.maxPoolGrad(smallIn, x, out, poolGeo)],
    ['resizeNearest 2x', big * 1.25 * 4, () => addon.resizeNearest(smallIn, out, n, 64, 64, c, 128, 128, rows, rows)],
    ['resizeNearestGrad 2x', big * 1.25 * 4, () => addon.resizeNearestGrad(x, small, n, 64, 64, c, 128, 128, rows, rows)],
    ['relu', big * 8, () => addon.unary(0, x, out, 0)],
    ['mul', big * 12, () => addon.binary(2, x, g, out, 1, big, OperandLayout.Full, OperandLayout.Full)],
    ['bias add (row broadcast)', big * 8, () => addon.binary(0, x, g.subarray(0, c), out, big / c, c, OperandLayout.Full, OperandLayout.Row)],
    ['sum over N,H,W', big * 4, () => addon.sum(x, small, 1, big / c, c)],
  ];
  for (const [name, bytes, f] of mem) {
    const row = [name];
    for (const t of opt.threads) {
      addon.setThreads(t);
      row.push(`${t}T ${(bytes / timeIt(f, opt.seconds / 4) / 1e9).toFixed(1)}`);
    }
    console.log(row.join('\t'));
  }
}

function unetStep(model: UNet, optimizer: tf.Optimizer, x: tf.Tensor4D, y: tf.Tensor4D): void {
  const loss = optimizer.minimize(() => tf.losses.sigmoidCrossEntropy(y, model.forward(x, true)) as tf.Scalar, true, model.variables());
  loss?.dataSync();
  loss?.dispose();
}

function benchUnet(addon: NativeAddon, opt: Options): void {
  tf.setBackend('native');
  const n = opt.batch;
  const model = UNet.create(REFERENCE_UNET, 7);
  const optimizer = createOptimizer(1e-3);
  const x = tf.randomNormal([n, 128, 128, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
  const y = tf.tidy(() => tf.randomUniform([n, 128, 128, 1], 0, 1, 'float32', 2).greater(0.5).toFloat()) as tf.Tensor4D;
  console.log(`\nReference U-Net (${model.parameterCount()} parameters), batch ${n}, 128²x1, Adam + BCE:`);
  const samples = (f: () => void, count: number) => {
    settle();
    f();
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      f();
      out.push((performance.now() - t0) / 1000);
    }
    out.sort((a, b) => a - b);
    return { best: out[0], median: out[Math.floor(out.length / 2)] };
  };
  const rate = (sec: number) => (n / sec).toFixed(1);
  for (const t of opt.threads) {
    addon.setThreads(t);
    const infer = samples(() => tf.tidy(() => model.predict(x)).dataSync(), 10);
    unetStep(model, optimizer, x, y); // Adam creates its moment variables on the first step
    const before = tf.memory().numTensors;
    const train = samples(() => unetStep(model, optimizer, x, y), 8);
    const leaked = tf.memory().numTensors - before;
    console.log(
      `${t} thread(s): inference ${rate(infer.best)} img/s best, ${rate(infer.median)} median ` +
        `(${(infer.best * 1000).toFixed(0)} ms/batch); training ${rate(train.best)} img/s best, ` +
        `${rate(train.median)} median (${(train.best * 1000).toFixed(0)} ms/step)` +
        (leaked ? `, ${leaked} tensors leaked` : ''),
    );
  }
  const fb = nativeFallbacks();
  if (Object.keys(fb).length) console.log('fallbacks to cpu kernels:', fb);
  x.dispose();
  y.dispose();
  optimizer.dispose();
  model.dispose();
}

async function profileUnet(addon: NativeAddon, opt: Options): Promise<void> {
  tf.setBackend('native');
  addon.setThreads(opt.threads[opt.threads.length - 1]);
  const n = opt.batch;
  const model = UNet.create(REFERENCE_UNET, 7);
  const optimizer = createOptimizer(1e-3);
  const x = tf.randomNormal([n, 128, 128, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
  const y = tf.tidy(() => tf.randomUniform([n, 128, 128, 1], 0, 1, 'float32', 2).greater(0.5).toFloat()) as tf.Tensor4D;
  unetStep(model, optimizer, x, y);
  const t0 = performance.now();
  const info = await tf.profile(() => unetStep(model, optimizer, x, y));
  const wall = performance.now() - t0;
  const byName = new Map<string, { ms: number; calls: number }>();
  let kernelMs = 0;
  for (const k of info.kernels) {
    const ms = Number(k.kernelTimeMs) || 0;
    const e = byName.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += ms;
    e.calls++;
    byName.set(k.name, e);
    kernelMs += ms;
  }
  console.log(`\nProfile of one training step (${addon.getThreads()} threads): ${wall.toFixed(0)} ms wall under the profiler, ${kernelMs.toFixed(0)} ms in kernels`);
  const rows = [...byName].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25);
  for (const [name, e] of rows) console.log(`${name.padEnd(28)} ${e.ms.toFixed(1).padStart(8)} ms ${String(e.calls).padStart(5)} calls`);
  x.dispose();
  y.dispose();
  optimizer.dispose();
  model.dispose();
}

async function main(): Promise<void> {
  const opt = parseArgs(process.argv.slice(2));
  waitIdle = opt.waitIdle;
  const { addon, reason } = loadNativeAddon();
  if (!addon) throw new Error(`native addon unavailable: ${reason}`);
  console.log(`native addon: ${reason}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} on ${os.cpus().length} CPUs`);
  if (opt.only.has('unet') || opt.only.has('profile')) {
    if (!registerNativeBackend()) throw new Error('native backend registration failed');
    await tf.setBackend('native');
  }
  for (const conv of opt.conv.length > 0 ? opt.conv : [convAlgorithm(addon.getWinograd())]) {
    addon.setWinograd(WINOGRAD_TILE[conv]);
    console.log(`\n== 3x3 stride-1 convolutions: ${conv} ==`);
    if (opt.only.has('kernels')) benchKernels(addon, opt);
    if (opt.only.has('unet')) benchUnet(addon, opt);
    if (opt.only.has('profile')) await profileUnet(addon, opt);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
