/** One line (or set of markers) of a LinePlot. */
export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number; marker?: boolean; label?: string }[];
  /** Draw only markers (e.g. one value per model). */
  markersOnly?: boolean;
}

export interface Tick {
  value: number;
  text: string;
}

/**
 * About n round tick values (steps of 1, 2 or 5 x 10^k; whole numbers only when `integer`) between a and b, each written with as
 * many decimals as the step needs: a loss falling from 0.0135 to 0.0101 reads 0.011, 0.012, 0.013,
 * not 0.01 three times.
 */
export function axisTicks(a: number, b: number, n = 5, integer = false): Tick[] {
  if (!Number.isFinite(a) || !Number.isFinite(b) || a === b) return Number.isFinite(a) ? [{ value: a, text: String(Number(a.toPrecision(4))) }] : [];
  // Counts and ids have no ticks between whole numbers.
  const raw = integer ? Math.max(1, (b - a) / n) : (b - a) / n;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const out: Tick[] = [];
  for (let t = Math.ceil(a / step) * step; t <= b + step * 1e-9; t += step) {
    const value = Number(t.toPrecision(12));
    out.push({ value, text: formatTick(value, decimals) });
  }
  return out;
}

function formatTick(value: number, decimals: number): string {
  if (Math.abs(value) >= 1e5 || (value !== 0 && Math.abs(value) < 1e-4)) return value.toExponential(1);
  return value.toFixed(decimals);
}
