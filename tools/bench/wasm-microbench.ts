// Speed of the wasm engine on DESIGN.md's reference U-Net (128x128x1, 4 levels, base 16,
// batch 8, Adam, binary cross-entropy), in Node, one thread.
//
//   npx tsx tools/bench/wasm-microbench.ts [--steps N] [--threads N] [--profile] [--stock]
//
// --threads N starts the threaded binary with N XNNPACK threads (see init.ts).
// --profile prints where a training step spends its time, per kernel.
// --stock   runs without maskloop's kernels (training then fails: wasm lacks a filter gradient).
import * as tf from '@tensorflow/tfjs';
import { initWasmBackend, wasmThreads } from '../../src/engine/wasm/init';
import { REFERENCE_UNET, UNet } from '../../src/engine/model/unet';
import { createOptimizer } from '../../src/engine/train/optimizerState';

const BATCH = 8;
const SIZE = 128;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const steps = Number(arg('--steps') ?? 5);
  const profile = process.argv.includes('--profile');
  if (process.argv.includes('--stock')) {
    await import('@tensorflow/tfjs-backend-wasm');
  } else if (!(await initWasmBackend({ threads: Number(arg('--threads') ?? 1) }))) {
    throw new Error('wasm backend did not initialise');
  }
  if (!(await tf.setBackend('wasm'))) throw new Error('could not switch to wasm');

  const model = UNet.create(REFERENCE_UNET, 1);
  const x = tf.randomUniform([BATCH, SIZE, SIZE, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
  const y = tf.randomUniform([BATCH, SIZE, SIZE, 1], 0, 1, 'float32', 3).greater(0.5).toFloat() as tf.Tensor4D;
  const optimizer = createOptimizer(1e-3);
  const vars = model.variables();
  const loss = (): tf.Scalar => {
    const logits = model.forward(x, true);
    // Stable binary cross-entropy on logits: max(z,0) - z*y + log(1 + exp(-|z|)).
    return tf.mean(tf.relu(logits).sub(logits.mul(y)).add(tf.log1p(tf.exp(tf.neg(tf.abs(logits)))))) as tf.Scalar;
  };
  const predict = () => tf.tidy(() => model.predict(x)).dataSync();
  const train = () => {
    const l = optimizer.minimize(loss, true, vars);
    const v = l!.dataSync()[0];
    l!.dispose();
    return v;
  };

  console.log(`wasm, SIMD ${String(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'))}, ${wasmThreads()} thread(s); ` +
    `U-Net ${model.parameterCount()} parameters, batch ${BATCH}, ${SIZE}x${SIZE}x1`);
  // The machines are shared: report the median and the best step, not a mean over noise.
  const time = (label: string, fn: () => unknown) => {
    fn(); // warm-up: XNNPACK operator creation, heap growth
    const ms: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      fn();
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    const rate = (t: number) => (BATCH / (t / 1000)).toFixed(2).padStart(6);
    const median = ms[Math.floor(ms.length / 2)];
    console.log(
      `${label.padEnd(16)} median ${median.toFixed(0).padStart(5)} ms/batch = ${rate(median)} img/s; ` +
        `best ${ms[0].toFixed(0).padStart(5)} ms = ${rate(ms[0])} img/s`,
    );
  };
  time('predict', predict);
  try {
    time('train (fwd+bwd)', train);
  } catch (err) {
    console.log(`train: fails (${(err as Error).message.split('\n')[0]})`);
    return;
  }

  if (profile) {
    const info = await tf.profile(() => {
      train();
    });
    const byKernel = new Map<string, { ms: number; n: number }>();
    for (const k of info.kernels) {
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      const e = byKernel.get(k.name) ?? { ms: 0, n: 0 };
      e.ms += ms;
      e.n += 1;
      byKernel.set(k.name, e);
    }
    const total = [...byKernel.values()].reduce((a, e) => a + e.ms, 0);
    console.log(`\nkernels of one training step (${total.toFixed(0)} ms in kernels):`);
    for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 20)) {
      console.log(`  ${name.padEnd(34)} ${e.ms.toFixed(1).padStart(8)} ms  x${e.n}`);
    }
  }
  // A leak of tensors, of kernel intermediates or of XNNPACK operators (which hold packed
  // weights on the wasm heap) shows here as growth over a few more steps.
  const backend = tf.findBackend('wasm') as unknown as { numDataIds(): number; wasm: { HEAPU8: Uint8Array } };
  const before = { tensors: tf.memory().numTensors, buffers: backend.numDataIds(), heap: backend.wasm.HEAPU8.length };
  for (let i = 0; i < 3; i++) train();
  console.log(
    `after 3 more steps: tensors ${tf.memory().numTensors - before.tensors >= 0 ? '+' : ''}${tf.memory().numTensors - before.tensors}, ` +
      `buffers ${backend.numDataIds() - before.buffers >= 0 ? '+' : ''}${backend.numDataIds() - before.buffers}, ` +
      `wasm heap ${(before.heap / 2 ** 20).toFixed(0)} -> ${(backend.wasm.HEAPU8.length / 2 ** 20).toFixed(0)} MiB`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
