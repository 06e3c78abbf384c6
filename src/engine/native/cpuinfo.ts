/**
 * Linux's /proc/cpuinfo: the one place that reads it and picks its fields, for the tile plans'
 * cache (which CPU they were timed on) and the benchmark's description of the machine.
 */
import fs from 'node:fs';

/** A field of /proc/cpuinfo's text (the first processor's), trimmed; undefined where it has none. */
export function cpuinfoField(cpuinfo: string, name: string): string | undefined {
  return new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(cpuinfo)?.[1]?.trim();
}

let cached: string | null | undefined;

/** /proc/cpuinfo's text, read once per process; null where the OS has none (not Linux). */
export function procCpuinfo(): string | null {
  if (cached === undefined) {
    try {
      cached = fs.readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      cached = null;
    }
  }
  return cached;
}
