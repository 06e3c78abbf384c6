/**
 * What CPU a benchmark ran on, and what it could do at most: the model, the widest vector
 * instructions the kernels use, the cores, and a nominal single-precision peak (cores × clock ×
 * floating-point operations per cycle), so throughput can be read as a share of the machine.
 */
import fs from 'node:fs';
import os from 'node:os';

export interface CpuDescription {
  model: string;
  vendor: string;
  /** x86 family and model numbers (which tell AMD's Zen generations apart), where the OS gives them. */
  family?: number;
  modelNumber?: number;
  cores: number;
  /** The widest vector extension the native kernels use here ('avx2+fma', or 'none'). */
  vectors: string;
  /** Single-precision floating-point operations one core can issue per cycle (an FMA counts two). */
  flopsPerCycle: number;
  ghz: number;
  /** cores × ghz × flopsPerCycle, in GFLOP/s. */
  peakGflops: number;
}

/**
 * Per-cycle FP32 throughput of one core with AVX2 and FMA: two 256-bit FMA pipes (32 FLOP) on
 * Intel since Haswell and on AMD since Zen 2; the first Zen generation (family 23, models below
 * 0x30) splits each 256-bit operation over 128-bit units (16 FLOP).
 */
function avx2FlopsPerCycle(vendor: string, family?: number, modelNumber?: number): number {
  if (vendor === 'AuthenticAMD' && family === 23 && modelNumber !== undefined && modelNumber < 0x30) return 16;
  return 32;
}

/** A description from /proc/cpuinfo's text (Linux); `cores` is what the benchmark ran on. */
export function cpuFromCpuinfo(cpuinfo: string, cores: number): CpuDescription {
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(cpuinfo)?.[1]?.trim();
  const number = (name: string) => {
    const v = field(name);
    return v === undefined ? undefined : Number(v);
  };
  const vendor = field('vendor_id') ?? 'unknown';
  const family = number('cpu family');
  const modelNumber = number('model');
  const flags = new Set((field('flags') ?? '').split(/\s+/));
  const vectors = flags.has('avx2') && flags.has('fma') ? 'avx2+fma' : 'none';
  const mhz = Math.max(0, ...[...cpuinfo.matchAll(/^cpu MHz\s*:\s*([\d.]+)/gm)].map((m) => Number(m[1])));
  // Without AVX2 the kernels run SSE-width code (4 lanes, no FMA: two operations per cycle per unit, two units).
  const flopsPerCycle = vectors === 'avx2+fma' ? avx2FlopsPerCycle(vendor, family, modelNumber) : 8;
  const ghz = mhz / 1000;
  return { model: field('model name') ?? 'unknown', vendor, family, modelNumber, cores, vectors, flopsPerCycle, ghz, peakGflops: cores * ghz * flopsPerCycle };
}

/** This machine's CPU, with `cores` the threads the benchmark used. */
export function describeCpu(cores: number): CpuDescription {
  try {
    return cpuFromCpuinfo(fs.readFileSync('/proc/cpuinfo', 'utf8'), cores);
  } catch {
    // Not Linux: the model and clock from Node, the vector width unknown.
    const cpu = os.cpus()[0];
    return { model: cpu?.model ?? 'unknown', vendor: 'unknown', cores, vectors: 'unknown', flopsPerCycle: NaN, ghz: (cpu?.speed ?? 0) / 1000, peakGflops: NaN };
  }
}
