/**
 * Pixel operations shared by the tools. Each one touches (snapshots) the rectangle it will write
 * before writing, so it must run inside a stroke.
 */
import { clipRect, UNKNOWN, type MaskModel, type Rect } from './model';

export interface Point {
  x: number;
  y: number;
}

export interface PaintValue {
  cls: number;
  instance: number;
}

/** A filled disc; radius 0 is a single pixel. Coordinates are pixel centres (x + 0.5 is the middle). */
export function stampDisc(model: MaskModel, cx: number, cy: number, radius: number, value: PaintValue): Rect | null {
  const r = Math.max(0, radius);
  const px = Math.floor(cx);
  const py = Math.floor(cy);
  const ri = Math.ceil(r);
  const rect = model.touch({ x: px - ri, y: py - ri, width: 2 * ri + 1, height: 2 * ri + 1 });
  if (!rect) return null;
  const r2 = r * r + r; // a little over r^2 so small discs are round, not diamonds
  const { width } = model;
  for (let y = rect.y; y < rect.y + rect.height; y++) {
    const dy = y - py;
    for (let x = rect.x; x < rect.x + rect.width; x++) {
      const dx = x - px;
      if (dx * dx + dy * dy <= r2) model.set(y * width + x, value.cls, value.instance);
    }
  }
  return rect;
}

/** Discs along a segment, spaced so that a fast drag leaves no gaps. */
export function stampSegment(model: MaskModel, a: Point, b: Point, radius: number, value: PaintValue): void {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const length = Math.hypot(dx, dy);
  const spacing = Math.max(0.5, radius / 2);
  const steps = Math.max(1, Math.ceil(length / spacing));
  for (let i = 1; i <= steps; i++) stampDisc(model, a.x + (dx * i) / steps, a.y + (dy * i) / steps, radius, value);
}

/**
 * Pixels of a 4-connected line from a to b (every step moves in x or in y, never both), so a cut
 * along it separates 4-connected regions.
 */
export function line4(a: Point, b: Point): Point[] {
  let x = Math.floor(a.x);
  let y = Math.floor(a.y);
  const nx = Math.abs(Math.floor(b.x) - x);
  const ny = Math.abs(Math.floor(b.y) - y);
  const sx = Math.floor(b.x) > x ? 1 : -1;
  const sy = Math.floor(b.y) > y ? 1 : -1;
  const points: Point[] = [{ x, y }];
  // Grid walk: take whichever axis step keeps closer to the true line (Red Blob Games' walk_grid).
  for (let ix = 0, iy = 0; ix < nx || iy < ny; ) {
    if ((0.5 + ix) / nx < (0.5 + iy) / ny) {
      x += sx;
      ix++;
    } else {
      y += sy;
      iy++;
    }
    points.push({ x, y });
  }
  return points;
}

/**
 * The 4-connected region of pixels equal (class and object) to the seed, as pixel indices, with
 * its bounding box. Scanline fill: memory is one bit-ish byte per pixel plus the region itself.
 */
export function regionAt(model: MaskModel, sx: number, sy: number): { indices: Int32Array; bounds: Rect } | null {
  const x0 = Math.floor(sx);
  const y0 = Math.floor(sy);
  if (!model.contains(x0, y0)) return null;
  const { width, height, classes, instances } = model;
  const seed = y0 * width + x0;
  const cls = classes[seed];
  const inst = instances[seed];
  const matches = (i: number) => classes[i] === cls && instances[i] === inst;
  const visited = new Uint8Array(width * height);
  let indices = new Int32Array(1024);
  let count = 0;
  let minX = x0, maxX = x0, minY = y0, maxY = y0;
  const stack: number[] = [x0, y0];
  while (stack.length) {
    const y = stack.pop()!;
    const x = stack.pop()!;
    let left = x;
    const row = y * width;
    if (visited[row + x] || !matches(row + x)) continue;
    while (left > 0 && !visited[row + left - 1] && matches(row + left - 1)) left--;
    let right = x;
    while (right < width - 1 && !visited[row + right + 1] && matches(row + right + 1)) right++;
    if (count + (right - left + 1) > indices.length) {
      const grown = new Int32Array(Math.max(indices.length * 2, count + right - left + 1));
      grown.set(indices.subarray(0, count));
      indices = grown;
    }
    for (let i = left; i <= right; i++) {
      visited[row + i] = 1;
      indices[count++] = row + i;
    }
    if (left < minX) minX = left;
    if (right > maxX) maxX = right;
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
    for (const ny of [y - 1, y + 1]) {
      if (ny < 0 || ny >= height) continue;
      const nrow = ny * width;
      // Push one seed per run of matching pixels in the neighbouring row.
      let i = left;
      while (i <= right) {
        while (i <= right && (visited[nrow + i] || !matches(nrow + i))) i++;
        if (i > right) break;
        stack.push(i, ny);
        while (i <= right && !visited[nrow + i] && matches(nrow + i)) i++;
      }
    }
  }
  return { indices: indices.subarray(0, count), bounds: { x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1 } };
}

export function writeIndices(model: MaskModel, indices: Int32Array, bounds: Rect, value: PaintValue): void {
  model.touch(bounds);
  for (let k = 0; k < indices.length; k++) model.set(indices[k], value.cls, value.instance);
}

/** Fills a closed polygon (even-odd rule, pixel centres), e.g. a polygon or lasso outline. */
export function fillPolygon(model: MaskModel, points: readonly Point[], value: PaintValue): Rect | null {
  if (points.length < 3) return null;
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const p of points) {
    minX = Math.min(minX, p.x); maxX = Math.max(maxX, p.x);
    minY = Math.min(minY, p.y); maxY = Math.max(maxY, p.y);
  }
  const rect = clipRect({ x: Math.floor(minX), y: Math.floor(minY), width: Math.ceil(maxX) - Math.floor(minX) + 1, height: Math.ceil(maxY) - Math.floor(minY) + 1 }, model.width, model.height);
  if (!rect) return null;
  model.touch(rect);
  const crossings: number[] = [];
  for (let y = rect.y; y < rect.y + rect.height; y++) {
    const cy = y + 0.5;
    crossings.length = 0;
    for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
      const a = points[j];
      const b = points[i];
      if ((a.y <= cy && b.y > cy) || (b.y <= cy && a.y > cy)) crossings.push(a.x + ((cy - a.y) / (b.y - a.y)) * (b.x - a.x));
    }
    crossings.sort((p, q) => p - q);
    for (let k = 0; k + 1 < crossings.length; k += 2) {
      const from = Math.max(rect.x, Math.ceil(crossings[k] - 0.5));
      const to = Math.min(rect.x + rect.width - 1, Math.floor(crossings[k + 1] - 0.5));
      for (let x = from; x <= to; x++) model.set(y * model.width + x, value.cls, value.instance);
    }
  }
  return rect;
}

/** Bounding box and pixel indices of one object id (a full scan: objects carry no index). */
export function objectPixels(model: MaskModel, instance: number): { indices: Int32Array; bounds: Rect } | null {
  if (instance <= 0) return null;
  const { width, instances } = model;
  let count = 0;
  let minX = Infinity, minY = Infinity, maxX = -1, maxY = -1;
  for (let i = 0; i < instances.length; i++) {
    if (instances[i] !== instance) continue;
    count++;
    const x = i % width;
    const y = (i - x) / width;
    if (x < minX) minX = x;
    if (x > maxX) maxX = x;
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
  }
  if (count === 0) return null;
  const indices = new Int32Array(count);
  let k = 0;
  for (let y = minY; y <= maxY; y++) {
    for (let x = minX; x <= maxX; x++) if (instances[y * width + x] === instance) indices[k++] = y * width + x;
  }
  return { indices, bounds: { x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1 } };
}

/**
 * Splits every 4-connected piece of `instance` inside `bounds` into its own object; the largest
 * piece keeps the id. Returns the ids of the new objects.
 */
export function separateComponents(model: MaskModel, instance: number, bounds: Rect): number[] {
  const { width } = model;
  const seen = new Uint8Array(bounds.width * bounds.height);
  const pieces: number[][] = [];
  for (let y = bounds.y; y < bounds.y + bounds.height; y++) {
    for (let x = bounds.x; x < bounds.x + bounds.width; x++) {
      const local = (y - bounds.y) * bounds.width + (x - bounds.x);
      if (seen[local] || model.instances[y * width + x] !== instance) continue;
      const piece: number[] = [];
      const stack = [x, y];
      seen[local] = 1;
      while (stack.length) {
        const py = stack.pop()!;
        const px = stack.pop()!;
        piece.push(py * width + px);
        for (const [nx, ny] of [[px - 1, py], [px + 1, py], [px, py - 1], [px, py + 1]]) {
          if (nx < bounds.x || ny < bounds.y || nx >= bounds.x + bounds.width || ny >= bounds.y + bounds.height) continue;
          const nl = (ny - bounds.y) * bounds.width + (nx - bounds.x);
          if (seen[nl] || model.instances[ny * width + nx] !== instance) continue;
          seen[nl] = 1;
          stack.push(nx, ny);
        }
      }
      pieces.push(piece);
    }
  }
  if (pieces.length < 2) return [];
  pieces.sort((a, b) => b.length - a.length);
  model.touch(bounds);
  const created: number[] = [];
  for (const piece of pieces.slice(1)) {
    const id = model.nextInstanceId();
    created.push(id);
    for (const i of piece) model.set(i, model.classes[i], id);
  }
  return created;
}

/**
 * The store holds a mask with objects as object ids only, so a labeled pixel of no object (painted
 * with objects off, or lassoed before the first object) would be lost on saving. Each 4-connected
 * group of such pixels becomes a new object of its own; the caller runs this before closing the
 * stroke, so it is part of that undo step. Only where the stroke can have left such pixels is
 * looked at (MaskModel.strokeLooseArea): a stroke on a 4096 x 4096 mask stays cheap. Returns the
 * objects made.
 */
export function giveLoosePixelsObjects(model: MaskModel): number {
  const area = model.strokeLooseArea();
  if (!area || !model.hasObjects) return 0;
  const { width, classes, instances } = model;
  const loose = (i: number) => instances[i] === 0 && classes[i] !== 0 && classes[i] !== UNKNOWN;
  // Indexed within the area: loose pixels, and so their groups, lie inside it.
  const seen = new Uint8Array(area.width * area.height);
  const seenAt = (x: number, y: number) => (y - area.y) * area.width + (x - area.x);
  const inside = (x: number, y: number) => x >= area.x && y >= area.y && x < area.x + area.width && y < area.y + area.height;
  const group: number[] = [];
  let made = 0;
  for (let sy = area.y; sy < area.y + area.height; sy++) {
    for (let sx = area.x; sx < area.x + area.width; sx++) {
      const start = sy * width + sx;
      if (seen[seenAt(sx, sy)] || !loose(start)) continue;
      const cls = classes[start];
      group.length = 0;
      seen[seenAt(sx, sy)] = 1;
      group.push(start);
      let minX = sx, maxX = sx, minY = sy, maxY = sy;
      for (let k = 0; k < group.length; k++) {
        const i = group[k];
        const x = i % width;
        const y = (i - x) / width;
        minX = Math.min(minX, x);
        maxX = Math.max(maxX, x);
        minY = Math.min(minY, y);
        maxY = Math.max(maxY, y);
        for (const [nx, ny] of [[x - 1, y], [x + 1, y], [x, y - 1], [x, y + 1]]) {
          const n = ny * width + nx;
          if (inside(nx, ny) && !seen[seenAt(nx, ny)] && loose(n) && classes[n] === cls) {
            seen[seenAt(nx, ny)] = 1;
            group.push(n);
          }
        }
      }
      model.touch({ x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1 });
      const id = model.nextInstanceId();
      for (const i of group) model.set(i, cls, id);
      made++;
    }
  }
  return made;
}
