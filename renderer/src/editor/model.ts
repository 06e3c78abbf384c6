/**
 * The mask being edited: one class value per pixel (0 background, 1..254 classes, 255 'unknown'
 * for sparse labels) and one object id per pixel (0 none). Framework-free and DOM-free so the
 * tools and undo are unit-tested in Node.
 *
 * Every write goes through a stroke: the first write to a tile copies that tile's old values, so
 * a stroke of any length costs memory in proportion to the area it touched, and undo restores
 * exactly that area (napari labels layer / CVAT canvas do the same with changed-region patches).
 */
export const BACKGROUND = 0;
export const UNKNOWN = 255;

/** Side of the square tiles that undo snapshots; 64 keeps a 4096 x 4096 mask at 4096 tiles. */
export const TILE = 64;

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The old and new values of one tile (or part of one at the image edge) changed by a stroke. */
export interface TilePatch {
  rect: Rect;
  beforeClasses: Uint8Array;
  beforeInstances: Int32Array;
  afterClasses: Uint8Array;
  afterInstances: Int32Array;
}

/** One undo step: everything a stroke changed. */
export interface Patch {
  label: string;
  tiles: TilePatch[];
  bounds: Rect;
  pixelsChanged: number;
}

export type ChangeListener = (dirty: Rect) => void;

export function unionRect(a: Rect | null, b: Rect): Rect {
  if (!a) return { ...b };
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.max(a.y + a.height, b.y + b.height) - y };
}

export function clipRect(r: Rect, width: number, height: number): Rect | null {
  const x0 = Math.max(0, Math.floor(r.x));
  const y0 = Math.max(0, Math.floor(r.y));
  const x1 = Math.min(width, Math.ceil(r.x + r.width));
  const y1 = Math.min(height, Math.ceil(r.y + r.height));
  if (x1 <= x0 || y1 <= y0) return null;
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

function copyRect<T extends Uint8Array | Int32Array>(src: T, stride: number, r: Rect, make: (n: number) => T): T {
  const out = make(r.width * r.height);
  for (let row = 0; row < r.height; row++) {
    const start = (r.y + row) * stride + r.x;
    out.set(src.subarray(start, start + r.width), row * r.width);
  }
  return out;
}

function pasteRect(dst: Uint8Array | Int32Array, stride: number, r: Rect, values: Uint8Array | Int32Array): void {
  for (let row = 0; row < r.height; row++) dst.set(values.subarray(row * r.width, (row + 1) * r.width), (r.y + row) * stride + r.x);
}

interface OpenStroke {
  label: string;
  /** Whether the mask held objects when the stroke began (see giveLoosePixelsObjects). */
  hadObjects: boolean;
  /** Tile index -> snapshot of its values before the stroke first wrote to it. */
  before: Map<number, { classes: Uint8Array; instances: Int32Array; rect: Rect }>;
}

export class MaskModel {
  readonly width: number;
  readonly height: number;
  readonly classes: Uint8Array;
  readonly instances: Int32Array;
  private readonly tilesX: number;
  private stroke: OpenStroke | null = null;
  private listeners = new Set<ChangeListener>();
  /** Union of rectangles written since the last flush; listeners hear it once per flush. */
  private pending: Rect | null = null;
  private highestInstance = 0;
  /** Pixels that belong to an object, kept by set() and applyPatch(): whether the mask holds objects now. */
  private objectPixels = 0;

  constructor(width: number, height: number, classes?: Uint8Array, instances?: Int32Array) {
    if (!Number.isInteger(width) || width <= 0 || !Number.isInteger(height) || height <= 0) {
      throw new Error(`mask size must be positive integers, got ${width}x${height}`);
    }
    const n = width * height;
    if (classes && classes.length !== n) throw new Error(`classes has ${classes.length} values, expected ${n}`);
    if (instances && instances.length !== n) throw new Error(`instances has ${instances.length} values, expected ${n}`);
    this.width = width;
    this.height = height;
    this.classes = classes ?? new Uint8Array(n);
    this.instances = instances ?? new Int32Array(n);
    this.tilesX = Math.ceil(width / TILE);
    for (let i = 0; i < n; i++) {
      if (this.instances[i] > this.highestInstance) this.highestInstance = this.instances[i];
      if (this.instances[i] !== 0) this.objectPixels++;
    }
  }

  /** Whether some pixel belongs to an object now (after an undo that removed the last one, not any more). */
  get hasObjects(): boolean {
    return this.objectPixels > 0;
  }

  /**
   * Where pixels of a class but no object can be while the stroke is open: anywhere when the mask
   * held no objects as it began, else only in the tiles the stroke touched (every committed state
   * of a mask with objects has none). Null outside a stroke.
   */
  strokeLooseArea(): Rect | null {
    const stroke = this.stroke;
    if (!stroke) return null;
    if (!stroke.hadObjects) return { x: 0, y: 0, width: this.width, height: this.height };
    let area: Rect | null = null;
    for (const { rect } of stroke.before.values()) area = unionRect(area, rect);
    return area;
  }

  /** A fresh object id, never used in this mask (ids of deleted objects are not reused). */
  nextInstanceId(): number {
    return ++this.highestInstance;
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get inStroke(): boolean {
    return this.stroke !== null;
  }

  beginStroke(label: string): void {
    if (this.stroke) this.endStroke();
    this.stroke = { label, hadObjects: this.hasObjects, before: new Map() };
  }

  /**
   * Must be called before writing pixels of `r`: snapshots each tile of `r` not yet seen in this
   * stroke. Tools call it once per stamp, not per pixel.
   */
  touch(r: Rect): Rect | null {
    const clipped = clipRect(r, this.width, this.height);
    if (!clipped) return null;
    if (!this.stroke) throw new Error('pixels can only change inside a stroke (beginStroke first)');
    const tx0 = Math.floor(clipped.x / TILE);
    const ty0 = Math.floor(clipped.y / TILE);
    const tx1 = Math.floor((clipped.x + clipped.width - 1) / TILE);
    const ty1 = Math.floor((clipped.y + clipped.height - 1) / TILE);
    for (let ty = ty0; ty <= ty1; ty++) {
      for (let tx = tx0; tx <= tx1; tx++) {
        const key = ty * this.tilesX + tx;
        if (this.stroke.before.has(key)) continue;
        const rect = clipRect({ x: tx * TILE, y: ty * TILE, width: TILE, height: TILE }, this.width, this.height)!;
        this.stroke.before.set(key, {
          rect,
          classes: copyRect(this.classes, this.width, rect, (n) => new Uint8Array(n)),
          instances: copyRect(this.instances, this.width, rect, (n) => new Int32Array(n)),
        });
      }
    }
    this.pending = unionRect(this.pending, clipped);
    return clipped;
  }

  /** Writes one pixel; the caller has touched its rectangle in this stroke. */
  set(index: number, cls: number, instance: number): void {
    this.classes[index] = cls;
    if ((this.instances[index] !== 0) !== (instance !== 0)) this.objectPixels += instance !== 0 ? 1 : -1;
    this.instances[index] = instance;
    if (instance > this.highestInstance) this.highestInstance = instance;
  }

  /** Tells listeners what changed since the last flush (tools call it once per pointer event). */
  flush(): void {
    if (!this.pending) return;
    const dirty = this.pending;
    this.pending = null;
    for (const listener of this.listeners) listener(dirty);
  }

  /** Closes the stroke; returns its patch, or null when no pixel actually changed. */
  endStroke(): Patch | null {
    const stroke = this.stroke;
    if (!stroke) return null;
    this.stroke = null;
    this.flush();
    const tiles: TilePatch[] = [];
    let bounds: Rect | null = null;
    let pixelsChanged = 0;
    for (const { rect, classes, instances } of stroke.before.values()) {
      const afterClasses = copyRect(this.classes, this.width, rect, (n) => new Uint8Array(n));
      const afterInstances = copyRect(this.instances, this.width, rect, (n) => new Int32Array(n));
      let changed = 0;
      for (let i = 0; i < afterClasses.length; i++) {
        if (afterClasses[i] !== classes[i] || afterInstances[i] !== instances[i]) changed++;
      }
      if (changed === 0) continue;
      pixelsChanged += changed;
      tiles.push({ rect, beforeClasses: classes, beforeInstances: instances, afterClasses, afterInstances });
      bounds = unionRect(bounds, rect);
    }
    if (!bounds) return null;
    return { label: stroke.label, tiles, bounds, pixelsChanged };
  }

  /** Puts a patch's old (undo) or new (redo) values back and tells listeners. */
  applyPatch(patch: Patch, direction: 'undo' | 'redo'): void {
    if (this.stroke) this.endStroke();
    for (const tile of patch.tiles) {
      pasteRect(this.classes, this.width, tile.rect, direction === 'undo' ? tile.beforeClasses : tile.afterClasses);
      const [instances, replaced] = direction === 'undo' ? [tile.beforeInstances, tile.afterInstances] : [tile.afterInstances, tile.beforeInstances];
      pasteRect(this.instances, this.width, tile.rect, instances);
      for (let i = 0; i < instances.length; i++) {
        if (instances[i] > this.highestInstance) this.highestInstance = instances[i];
        this.objectPixels += (instances[i] !== 0 ? 1 : 0) - (replaced[i] !== 0 ? 1 : 0);
      }
    }
    this.pending = unionRect(this.pending, patch.bounds);
    this.flush();
  }

  /** Replaces the whole mask (a proposal taken over, a stored version loaded) as one undoable stroke. */
  replaceAll(classes: Uint8Array, instances: Int32Array | null, label: string): Patch | null {
    if (classes.length !== this.classes.length) throw new Error('replacement mask has a different size');
    this.beginStroke(label);
    this.touch({ x: 0, y: 0, width: this.width, height: this.height });
    for (let i = 0; i < classes.length; i++) this.set(i, classes[i], instances ? instances[i] : 0);
    return this.endStroke();
  }

  classAt(x: number, y: number): number {
    return this.classes[y * this.width + x];
  }

  instanceAt(x: number, y: number): number {
    return this.instances[y * this.width + x];
  }

  contains(x: number, y: number): boolean {
    return x >= 0 && y >= 0 && x < this.width && y < this.height;
  }

  /** The pixel under a pointer position (image coordinates) and its object id; null outside the image. */
  pixelUnder(p: { x: number; y: number }): { x: number; y: number; instance: number } | null {
    const x = Math.floor(p.x);
    const y = Math.floor(p.y);
    return this.contains(x, y) ? { x, y, instance: this.instanceAt(x, y) } : null;
  }

  /** Counts per class value (index 255 = unknown), for the status line and tests. */
  classCounts(): Uint32Array {
    const counts = new Uint32Array(256);
    for (let i = 0; i < this.classes.length; i++) counts[this.classes[i]]++;
    return counts;
  }
}
