/**
 * What it costs an annotator to turn a proposal into the ground truth, against drawing the mask
 * from nothing. Pixels are exact; strokes are an estimate of brush work: a stroke paints a band
 * `brush` pixels wide and up to `strokeLength` long, so a region needs at least as many strokes
 * as its area fills bands, and as many as its longest extent spans stroke lengths. Errors closer
 * to each other than the brush is wide (the slivers along one object's outline) are one region:
 * a single stroke along the outline fixes them together.
 */
import { connectedComponents } from '../imaging/instances';

export interface BrushModel {
  /** Brush diameter in pixels. */
  brush: number;
  /** Length of one stroke in pixels. */
  strokeLength: number;
}

export const DEFAULT_BRUSH: BrushModel = { brush: 8, strokeLength: 96 };

export interface CorrectionCost {
  /** Pixels whose foreground/background state the annotator must change. */
  changedPixels: number;
  /** Pixels to paint when drawing the mask from nothing: the ground-truth foreground. */
  drawPixels: number;
  /** changedPixels / drawPixels: below 1, correcting beats drawing. */
  changedFraction: number;
  /**
   * Pixels to change outside a band BOUNDARY_TOLERANCE pixels either side of the true boundary, and
   * their share of drawPixels: on thin structures (membranes) a pixel or two of border ambiguity
   * dominates the strict figure, and no annotator would redraw it.
   */
  bandChangedPixels: number;
  bandChangedFraction: number;
  strokes: number;
  drawStrokes: number;
}

/** Sets every element within `radius` of a set one along a line (start, stride, length) of `src`. */
function dilateLine(src: Uint8Array, dst: Uint8Array, start: number, stride: number, length: number, radius: number): void {
  // Forward the last set position reaches right; backward the next one reaches left.
  let last = -Infinity;
  for (let i = 0; i < length; i++) {
    if (src[start + i * stride]) last = i;
    if (i - last <= radius) dst[start + i * stride] = 1;
  }
  last = Infinity;
  for (let i = length - 1; i >= 0; i--) {
    if (src[start + i * stride]) last = i;
    if (last - i <= radius) dst[start + i * stride] = 1;
  }
}

/** Square dilation by `radius` pixels (separable: rows, then columns), for grouping nearby regions. */
export function dilate(mask: Uint8Array, width: number, height: number, radius: number): Uint8Array {
  const rows = new Uint8Array(mask.length);
  for (let y = 0; y < height; y++) dilateLine(mask, rows, y * width, 1, width, radius);
  const out = new Uint8Array(mask.length);
  for (let x = 0; x < width; x++) dilateLine(rows, out, x, width, height, radius);
  return out;
}

/**
 * Estimated strokes to paint every region of a binary mask; with `groupWithin`, regions closer
 * than that many pixels count as one region.
 */
export function strokesFor(mask: Uint8Array, width: number, height: number, model: BrushModel = DEFAULT_BRUSH, groupWithin = 0): number {
  const grouping = groupWithin > 0 ? dilate(mask, width, height, Math.floor(groupWithin / 2)) : mask;
  const { labels, count } = connectedComponents(grouping, width, height);
  if (count === 0) return 0;
  const area = new Float64Array(count + 1);
  const x0 = new Int32Array(count + 1).fill(width);
  const x1 = new Int32Array(count + 1).fill(-1);
  const y0 = new Int32Array(count + 1).fill(height);
  const y1 = new Int32Array(count + 1).fill(-1);
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i++) {
      const c = labels[i];
      if (!c || !mask[i]) continue;
      area[c]++;
      if (x < x0[c]) x0[c] = x;
      if (x > x1[c]) x1[c] = x;
      if (y < y0[c]) y0[c] = y;
      if (y > y1[c]) y1[c] = y;
    }
  }
  let strokes = 0;
  for (let c = 1; c <= count; c++) {
    if (area[c] === 0) continue;
    const extent = Math.max(x1[c] - x0[c] + 1, y1[c] - y0[c] + 1);
    strokes += Math.max(1, Math.ceil(area[c] / (model.brush * model.strokeLength)), Math.ceil(extent / model.strokeLength));
  }
  return strokes;
}

/** Half-width in pixels of the band around the true boundary that the tolerant cost forgives. */
export const BOUNDARY_TOLERANCE = 2;

/** Pixels within `radius` of the boundary of a binary mask (pixels that differ from a 4-neighbour). */
export function boundaryBand(truth: Uint8Array, width: number, height: number, radius = BOUNDARY_TOLERANCE): Uint8Array {
  const edge = new Uint8Array(truth.length);
  const on = (i: number) => (truth[i] ? 1 : 0);
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i++) {
      // Both pixels of a differing pair are on the boundary: the band reaches either side alike.
      if (x + 1 < width && on(i + 1) !== on(i)) edge[i] = edge[i + 1] = 1;
      if (y + 1 < height && on(i + width) !== on(i)) edge[i] = edge[i + width] = 1;
    }
  }
  return radius > 0 ? dilate(edge, width, height, radius - 1) : edge;
}

/** Each ground truth's band, made once (ground truths are never edited): an evaluation scores many models against the same images. */
const bands = new WeakMap<Uint8Array, Uint8Array>();

/** Pixels of `proposal` that differ from `truth` outside the boundary band (see CorrectionCost). */
export function bandChangedPixels(proposal: Uint8Array | null, truth: Uint8Array, width: number, height: number): number {
  let band = bands.get(truth);
  if (!band) bands.set(truth, (band = boundaryBand(truth, width, height)));
  let n = 0;
  for (let i = 0; i < truth.length; i++) if (!band[i] && (proposal && proposal[i] ? 1 : 0) !== (truth[i] ? 1 : 0)) n++;
  return n;
}

/** Cost of correcting `proposal` (binary foreground, or null when there is none) into `truth`. */
export function correctionCost(proposal: Uint8Array | null, truth: Uint8Array, width: number, height: number, model: BrushModel = DEFAULT_BRUSH): CorrectionCost {
  const wrong = new Uint8Array(truth.length);
  let changedPixels = 0;
  let drawPixels = 0;
  for (let i = 0; i < truth.length; i++) {
    const t = truth[i] ? 1 : 0;
    drawPixels += t;
    const p = proposal ? (proposal[i] ? 1 : 0) : 0;
    if (p !== t) {
      wrong[i] = 1;
      changedPixels++;
    }
  }
  const band = bandChangedPixels(proposal, truth, width, height);
  const fraction = (n: number) => (drawPixels > 0 ? n / drawPixels : n > 0 ? Infinity : 0);
  return {
    changedPixels,
    drawPixels,
    changedFraction: fraction(changedPixels),
    bandChangedPixels: band,
    bandChangedFraction: fraction(band),
    strokes: strokesFor(wrong, width, height, model, model.brush),
    drawStrokes: strokesFor(truth, width, height, model),
  };
}

/**
 * The object-level edits that turn proposed objects into the true ones, as an annotator of an
 * instance set makes them: delete a proposed object that is mostly background, add a true object
 * nothing proposed, split a proposed object that holds several true ones, merge the fragments of
 * one true object. "Holds" and "fragment" are by majority: a true object is held by the proposed
 * object that covers more than half of it; a proposed object is a fragment of the true object
 * that covers more than half of it. Each split or merge of n pieces is n − 1 edits. Objects that
 * need none of these may still need their outline touched up, which the pixel costs count.
 */
export interface ObjectEdits {
  add: number;
  delete: number;
  split: number;
  merge: number;
}

export function objectEdits(proposed: Int32Array, truth: Int32Array): ObjectEdits {
  if (proposed.length !== truth.length) throw new Error(`object maps differ in size: ${proposed.length} and ${truth.length} pixels`);
  const areaP = new Map<number, number>();
  const areaT = new Map<number, number>();
  const overlap = new Map<string, number>();
  for (let i = 0; i < truth.length; i++) {
    const p = proposed[i];
    const t = truth[i];
    if (p > 0) areaP.set(p, (areaP.get(p) ?? 0) + 1);
    if (t > 0) areaT.set(t, (areaT.get(t) ?? 0) + 1);
    if (p > 0 && t > 0) overlap.set(`${p},${t}`, (overlap.get(`${p},${t}`) ?? 0) + 1);
  }
  const held = new Map<number, number>(); // proposed id -> true objects it holds
  const fragments = new Map<number, number>(); // true id -> proposed objects that are its fragments
  const heldTruth = new Set<number>();
  const fragmentProposals = new Set<number>();
  for (const [key, n] of overlap) {
    const [p, t] = key.split(',').map(Number);
    if (2 * n > (areaT.get(t) as number)) {
      held.set(p, (held.get(p) ?? 0) + 1);
      heldTruth.add(t);
    }
    if (2 * n > (areaP.get(p) as number)) {
      fragments.set(t, (fragments.get(t) ?? 0) + 1);
      fragmentProposals.add(p);
    }
  }
  let split = 0;
  for (const n of held.values()) split += n - 1;
  let merge = 0;
  for (const n of fragments.values()) merge += n - 1;
  let add = 0;
  for (const t of areaT.keys()) if (!heldTruth.has(t) && !fragments.has(t)) add++;
  let remove = 0;
  for (const p of areaP.keys()) if (!fragmentProposals.has(p) && !held.has(p)) remove++;
  return { add, delete: remove, split, merge };
}
