import { loadNativeAddon } from '../src/engine/native/index';
const a = loadNativeAddon().addon!;
const rows = 8 * 128 * 128, C = 16;
const x = new Float32Array(rows * C).map(() => Math.random()), y = new Float32Array(rows * C), dx = new Float32Array(rows * C);
const g = new Float32Array(C).fill(1), b = new Float32Array(C), m = new Float32Array(C), s = new Float32Array(C), v = new Float32Array(C), dg = new Float32Array(C), db = new Float32Array(C);
const out = new Float32Array(rows * C);
for (let r = 0; r < 3; r++) {
  let t0 = performance.now();
  for (let i = 0; i < 20; i++) a.batchNorm(x, g, b, y, m, s, v, rows, C, 1e-3, true);
  let t1 = performance.now();
  for (let i = 0; i < 20; i++) a.batchNormGrad(x, x, y, m, s, g, dx, dg, db, rows, C, true);
  let t2 = performance.now();
  for (let i = 0; i < 20; i++) a.unary(0, x, out, 0);
  let t3 = performance.now();
  console.log('fwd', ((t1 - t0) / 20).toFixed(2), 'bwd', ((t2 - t1) / 20).toFixed(2), 'relu', ((t3 - t2) / 20).toFixed(2), 'ms');
}
