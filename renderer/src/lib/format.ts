export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}:${String(s % 60).padStart(2, '0')}`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

export function formatDice(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : value.toFixed(3);
}

/** Val Dice, and for instance projects the F1 of their objects, which decides promotion there. */
export function formatValScore(dice: number | null | undefined, f1: number | null | undefined): string {
  return f1 === null || f1 === undefined ? formatDice(dice) : `${formatDice(dice)} · F1 ${f1.toFixed(3)}`;
}

export function formatDate(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
}

export function baseName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}

export function parentDir(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return i > 0 ? path.slice(0, i) : path;
}

/**
 * The backend in use from the job process's log line ('[maskloop] backend: native — AVX2/FMA
 * addon, 2 threads; tensorflow-gpu unavailable (…)'): the part before the first ';'.
 */
export function backendInUse(line: string | null | undefined): string | null {
  return line?.replace(/^\[maskloop\]\s*backend:\s*/, '').split(';')[0].trim() ?? null;
}
