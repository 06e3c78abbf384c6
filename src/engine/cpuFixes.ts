/**
 * Corrections to tfjs-backend-cpu 4.22 kernels that maskloop relies on. The 'cpu' backend is the
 * last-resort engine and the reference every fast kernel is tested against, and the 'native'
 * backend starts from a copy of its kernels, so a wrong cpu kernel would be wrong everywhere.
 *
 * ResizeNearestNeighborGrad offsets dy by the *input's* batch stride, so for batch > 1 with
 * upsampling (every U-Net decoder step) its gradient is wrong. Nearest resizing is a gather, so
 * the exact gradient scatters dy back through the source indices the forward kernel picked; the
 * replacement computes those indices with cpu's own forward kernel, so both agree by construction.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelBackend, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';

type InfoMaker = { makeTensorInfo(shape: number[], dtype: string, values: Float32Array): TensorInfo };

function nearestSources(backend: KernelBackend, inH: number, inW: number, outH: number, outW: number, attrs: NamedAttrMap): Int32Array {
  const forward = tf.getKernel('ResizeNearestNeighbor', 'cpu')?.kernelFunc;
  if (!forward) throw new Error('cpu backend has no ResizeNearestNeighbor kernel');
  const index = Float32Array.from({ length: inH * inW }, (_, i) => i);
  const images = (backend as unknown as InfoMaker).makeTensorInfo([1, inH, inW, 1], 'float32', index);
  const picked = forward({ inputs: { images }, backend, attrs: { ...attrs, size: [outH, outW] } }) as TensorInfo;
  const src = Int32Array.from(backend.readSync(picked.dataId) as Float32Array);
  backend.disposeData(images.dataId);
  backend.disposeData(picked.dataId);
  return src;
}

let applied = false;

/** Replaces the faulty cpu kernels; idempotent. Call before any backend copies cpu's kernels. */
export function fixCpuKernels(): void {
  if (applied) return;
  applied = true;
  tf.unregisterKernel('ResizeNearestNeighborGrad', 'cpu');
  tf.registerKernel({
    kernelName: 'ResizeNearestNeighborGrad',
    backendName: 'cpu',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { images, dy } = inputs as { images: TensorInfo; dy: TensorInfo };
      const b = backend as KernelBackend;
      const [n, inH, inW, c] = images.shape;
      const [, outH, outW] = dy.shape;
      const src = nearestSources(b, inH, inW, outH, outW, attrs as NamedAttrMap);
      const dyV = b.readSync(dy.dataId) as Float32Array;
      const dx = new Float32Array(n * inH * inW * c);
      for (let i = 0; i < n; i++) {
        for (let p = 0; p < outH * outW; p++) {
          const to = (i * inH * inW + src[p]) * c;
          const from = (i * outH * outW + p) * c;
          for (let k = 0; k < c; k++) dx[to + k] += dyV[from + k];
        }
      }
      return (b as unknown as InfoMaker).makeTensorInfo(images.shape, 'float32', dx);
    },
  });
}
