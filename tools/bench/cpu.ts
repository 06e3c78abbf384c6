/**
 * What CPU a benchmark ran on, and what it could do at most: the model, the widest vector
 * instructions the kernels use, the cores, and a nominal single-precision peak (cores × clock ×
 * floating-point operations per cycle), so throughput can be read as a share of the machine.
 */
import os from 'node:os';
import { cpuinfoField, procCpuinfo } from '../../src/engine/native/cpuinfo';

export interface CpuDescription {
  model: string;
  vendor: string;
  /** x86 family and model numbers (which tell AMD's Zen generations apart), where the OS gives them. */
  family?: number;
  modelNumber?: number;
  cores: number;
  /** The widest vector extension the native kernels use here ('avx512f', 'avx2+fma', or 'none'). */
  vectors: string;
  /** Single-precision floating-point operations one core can issue per cycle (an FMA counts two). */
  flopsPerCycle: number;
  ghz: number;
  /** cores × ghz × flopsPerCycle, in GFLOP/s. */
  peakGflops: number;
}

/**
 * Per-cycle FP32 throughput of one core with the vectors the kernels use. AVX2 and FMA: two 256-bit
 * FMA pipes (32 FLOP) on Intel since Haswell and on AMD since Zen 2; the first Zen generation
 * (family 23, models below 0x30) splits each 256-bit operation over 128-bit units (16 FLOP).
 * AVX-512 (the GEMM microkernel where the CPU has it): two 512-bit FMA pipes (64 FLOP) on Zen 5
 * and Intel's server cores; Zen 4 (family 25, the only AVX-512 parts of that family) runs each
 * 512-bit operation as two 256-bit halves (32 FLOP).
 */
function flopsPerCycle(vectors: string, vendor: string, family?: number, modelNumber?: number): number {
  if (vectors === 'avx512f') return vendor === 'AuthenticAMD' && family === 25 ? 32 : 64;
  if (vectors === 'avx2+fma') return vendor === 'AuthenticAMD' && family === 23 && modelNumber !== undefined && modelNumber < 0x30 ? 16 : 32;
  // Without AVX2 the kernels run SSE-width code (4 lanes, no FMA: two operations per cycle per unit, two units).
  return 8;
}

/**
 * A description from /proc/cpuinfo's text (Linux); `cores` is what the benchmark ran on. `avx512`:
 * whether the kernels run their AVX-512 microkernel (false when a benchmark turned it off).
 */
export function cpuFromCpuinfo(cpuinfo: string, cores: number, avx512 = true): CpuDescription {
  const field = (name: string) => cpuinfoField(cpuinfo, name);
  const number = (name: string) => {
    const v = field(name);
    return v === undefined ? undefined : Number(v);
  };
  const vendor = field('vendor_id') ?? 'unknown';
  const family = number('cpu family');
  const modelNumber = number('model');
  const flags = new Set((field('flags') ?? '').split(/\s+/));
  const avx2 = flags.has('avx2') && flags.has('fma');
  const vectors = avx2 && avx512 && flags.has('avx512f') ? 'avx512f' : avx2 ? 'avx2+fma' : 'none';
  const mhz = Math.max(0, ...[...cpuinfo.matchAll(/^cpu MHz\s*:\s*([\d.]+)/gm)].map((m) => Number(m[1])));
  const perCycle = flopsPerCycle(vectors, vendor, family, modelNumber);
  const ghz = mhz / 1000;
  return { model: field('model name') ?? 'unknown', vendor, family, modelNumber, cores, vectors, flopsPerCycle: perCycle, ghz, peakGflops: cores * ghz * perCycle };
}

/** This machine's CPU, with `cores` the threads the benchmark used. */
export function describeCpu(cores: number, avx512 = true): CpuDescription {
  const cpuinfo = procCpuinfo();
  if (cpuinfo !== null) return cpuFromCpuinfo(cpuinfo, cores, avx512);
  // Not Linux: the model and clock from Node, the vector width unknown.
  const cpu = os.cpus()[0];
  return { model: cpu?.model ?? 'unknown', vendor: 'unknown', cores, vectors: 'unknown', flopsPerCycle: NaN, ghz: (cpu?.speed ?? 0) / 1000, peakGflops: NaN };
}
