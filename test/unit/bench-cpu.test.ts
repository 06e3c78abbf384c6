import { describe, expect, it } from 'vitest';
import { cpuFromCpuinfo } from '../../tools/bench/cpu';
import { convolutionFlops, REFERENCE_UNET } from '../../src/engine/model/unet';

const cpuinfo = (family: number, model: number, mhz: number, flags = 'fpu sse2 avx avx2 fma') =>
  [0, 1].map((i) => `processor\t: ${i}\nvendor_id\t: AuthenticAMD\ncpu family\t: ${family}\nmodel\t\t: ${model}\nmodel name\t: AMD EPYC\ncpu MHz\t\t: ${mhz + i}\nflags\t\t: ${flags}\n`).join('\n');

describe('bench: the machine and the work', () => {
  it('names the CPU and its nominal FP32 peak: the first Zen issues half the FMA width of later ones, Zen 5 twice with AVX-512', () => {
    const zen1 = cpuFromCpuinfo(cpuinfo(23, 1, 2000), 2);
    expect(zen1).toMatchObject({ vendor: 'AuthenticAMD', family: 23, modelNumber: 1, vectors: 'avx2+fma', flopsPerCycle: 16, cores: 2 });
    expect(zen1.ghz).toBeCloseTo(2.001, 6);
    expect(zen1.peakGflops).toBeCloseTo(2 * 2.001 * 16, 6);
    expect(cpuFromCpuinfo(cpuinfo(23, 0x31, 2000), 2).flopsPerCycle).toBe(32);
    expect(cpuFromCpuinfo(cpuinfo(25, 17, 2600), 2).flopsPerCycle).toBe(32);
    expect(cpuFromCpuinfo(cpuinfo(25, 17, 2600, 'fpu sse2'), 2)).toMatchObject({ vectors: 'none', flopsPerCycle: 8 });
    // AVX-512: full width on Zen 5 (family 26), halves on Zen 4; AVX2's figure when the bench turns it off.
    const avx512 = 'fpu sse2 avx avx2 fma avx512f';
    expect(cpuFromCpuinfo(cpuinfo(26, 2, 2100, avx512), 2)).toMatchObject({ vectors: 'avx512f', flopsPerCycle: 64 });
    expect(cpuFromCpuinfo(cpuinfo(25, 17, 2600, avx512), 2)).toMatchObject({ vectors: 'avx512f', flopsPerCycle: 32 });
    expect(cpuFromCpuinfo(cpuinfo(26, 2, 2100, avx512), 2, false)).toMatchObject({ vectors: 'avx2+fma', flopsPerCycle: 32 });
  });

  it('counts the reference U-Net at about 1.55 GFLOP (0.78 G multiply-adds) per 128x128 image', () => {
    // By hand: 16-32-64-128 filters; the encoder 0.42 GFLOP, each decoder level 0.377 GFLOP, the head 0.5 MFLOP.
    const encoder = 2 * 9 * (1 * 16 * 16384 + 16 * 16 * 16384 + (16 * 32 + 32 * 32) * 4096 + (32 * 64 + 64 * 64) * 1024 + (64 * 128 + 128 * 128) * 256);
    const decoder = 3 * 2 * 9 * (2 * 128 * 64 + 64 * 64) * 1024;
    const head = 2 * 16 * 16384;
    expect(convolutionFlops(REFERENCE_UNET, 128)).toBe(encoder + decoder + head);
    expect(convolutionFlops(REFERENCE_UNET, 128) / 1e9).toBeCloseTo(1.55, 2);
    expect(convolutionFlops(REFERENCE_UNET, 256)).toBe(4 * convolutionFlops(REFERENCE_UNET, 128));
  });
});
