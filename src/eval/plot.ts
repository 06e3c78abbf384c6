/**
 * Line charts as SVG (and PNG through sharp's SVG renderer): one line per series, optional
 * error bars and a log x-axis. Small on purpose: evaluation plots need axes, ticks, a legend and
 * honest error bars, nothing more.
 */
import fs from 'node:fs';
import sharp from 'sharp';

export interface SeriesPoint {
  x: number;
  y: number;
  /** Half-length of the error bar (e.g. one standard deviation). */
  err?: number;
}

export interface Series {
  name: string;
  points: SeriesPoint[];
  /** Drawn thicker and dashed, for a line that summarises the others. */
  emphasis?: boolean;
  /** Palette index (default: the series' position), so that two views of one thing share a colour. */
  colour?: number;
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  logX?: boolean;
  /** Fixed y range; default: the data's range padded. */
  yRange?: [number, number];
  /** Tick labels at given x values (e.g. 'all' at the train split's size). */
  xTickLabels?: Map<number, string>;
  /** Horizontal reference lines (e.g. a baseline, a target). */
  references?: { y: number; label: string }[];
}

const PALETTE = ['#222222', '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];
const H = 480;
const M = { left: 70, top: 40, bottom: 56 };
/** Width of the plotting area; the legend to its right grows with the longest series name. */
const PLOT_WIDTH = 500;
/** Roughly DejaVu Sans' mean advance at 12 px, so the legend leaves room for its longest name. */
const CHAR_WIDTH = 7.2;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceTicks(lo: number, hi: number, count = 6): number[] {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) ticks.push(Number(v.toFixed(10)));
  return ticks;
}

export function lineChartSvg(spec: ChartSpec): string {
  const pts = spec.series.flatMap((s) => s.points);
  if (pts.length === 0) throw new Error('nothing to plot');
  const xs = pts.map((p) => p.x);
  const tx = (v: number) => (spec.logX ? Math.log10(v) : v);
  let [x0, x1] = [Math.min(...xs.map(tx)), Math.max(...xs.map(tx))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  const padX = (x1 - x0) * 0.04;
  [x0, x1] = [x0 - padX, x1 + padX];
  let [y0, y1] = spec.yRange ?? [Math.min(...pts.map((p) => p.y - (p.err ?? 0))), Math.max(...pts.map((p) => p.y + (p.err ?? 0)))];
  for (const r of spec.references ?? []) [y0, y1] = [Math.min(y0, r.y), Math.max(y1, r.y)];
  if (!spec.yRange) {
    const pad = (y1 - y0 || 1) * 0.06;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const right = Math.max(190, Math.ceil(56 + CHAR_WIDTH * Math.max(...spec.series.map((s) => s.name.length))));
  const W = M.left + PLOT_WIDTH + right;
  const pw = PLOT_WIDTH;
  const ph = H - M.top - M.bottom;
  const px = (v: number) => M.left + ((tx(v) - x0) / (x1 - x0)) * pw;
  const py = (v: number) => M.top + (1 - (v - y0) / (y1 - y0)) * ph;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`);
  // y grid and ticks
  for (const t of niceTicks(y0, y1)) {
    const y = py(t);
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y}" y2="${y}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${M.left - 8}" y="${y + 4}" text-anchor="end">${+t.toFixed(3)}</text>`);
  }
  // x ticks: the distinct data x values (few, and meaningful: label counts or rounds)
  const xTicks = [...new Set(xs)].sort((a, b) => a - b);
  for (const t of xTicks) {
    const x = px(t);
    out.push(`<line x1="${x}" x2="${x}" y1="${M.top}" y2="${M.top + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${x}" y="${M.top + ph + 18}" text-anchor="middle">${esc(spec.xTickLabels?.get(t) ?? String(+t.toFixed(2)))}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 14}" text-anchor="middle">${esc(spec.xLabel)}${spec.logX ? ' (log scale)' : ''}</text>`);
  out.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`);
  for (const r of spec.references ?? []) {
    const y = py(r.y);
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y}" y2="${y}" stroke="#999" stroke-dasharray="2 4"/>`);
    out.push(`<text x="${M.left + pw - 4}" y="${y - 4}" text-anchor="end" fill="#777">${esc(r.label)}</text>`);
  }
  spec.series.forEach((s, i) => {
    const color = PALETTE[(s.colour ?? i) % PALETTE.length];
    const sorted = [...s.points].sort((a, b) => a.x - b.x);
    // A small per-series x offset keeps overlapping error bars apart.
    const dx = (i - (spec.series.length - 1) / 2) * 2.5;
    const width = s.emphasis ? 3 : 1.6;
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="${width}"${s.emphasis ? ' stroke-dasharray="7 4"' : ''} points="${sorted.map((p) => `${(px(p.x) + dx).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ')}"/>`);
    for (const p of sorted) {
      const x = px(p.x) + dx;
      if (p.err) {
        const [ya, yb] = [py(p.y - p.err), py(p.y + p.err)];
        out.push(`<line x1="${x}" x2="${x}" y1="${ya}" y2="${yb}" stroke="${color}"/>`);
        out.push(`<line x1="${x - 3}" x2="${x + 3}" y1="${ya}" y2="${ya}" stroke="${color}"/><line x1="${x - 3}" x2="${x + 3}" y1="${yb}" y2="${yb}" stroke="${color}"/>`);
      }
      out.push(`<circle cx="${x}" cy="${py(p.y)}" r="${s.emphasis ? 4 : 3}" fill="${color}"/>`);
    }
    const ly = M.top + 10 + i * 20;
    out.push(`<line x1="${W - right + 14}" x2="${W - right + 40}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="${width}"${s.emphasis ? ' stroke-dasharray="7 4"' : ''}/>`);
    out.push(`<text x="${W - right + 46}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Writes the chart as `<base>.svg` and `<base>.png`. */
export async function writeChart(base: string, spec: ChartSpec): Promise<void> {
  const svg = lineChartSvg(spec);
  fs.writeFileSync(`${base}.svg`, svg);
  await sharp(Buffer.from(svg)).png().toFile(`${base}.png`);
}
