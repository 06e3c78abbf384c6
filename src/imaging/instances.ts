/**
 * Instance labels: connected components, the interior/boundary targets a network learns to separate
 * touching objects, and the way back from a predicted interior map to labelled objects.
 * All functions take flat row-major arrays of width * height pixels.
 */

export type Connectivity = 4 | 8;

/** Labels 1..count per pixel, 0 = background. */
export interface Components {
  labels: Int32Array;
  count: number;
}

/**
 * Connected components of a binary mask (any non-zero value is foreground), numbered 1..count in
 * raster order of each component's first pixel.
 */
export function connectedComponents(
  mask: ArrayLike<number>,
  width: number,
  height: number,
  connectivity: Connectivity = 8,
): Components {
  return labelComponents(mask, width, height, connectivity, false);
}

/**
 * Connected regions of equal non-zero value, each its own object. This reads graph-coloured
 * instance masks (BBBC039: touching nuclei carry different values 1..3, a value is reused for
 * nuclei that do not touch) and label images whose ids may repeat across separate objects.
 */
export function labelRegions(
  values: ArrayLike<number>,
  width: number,
  height: number,
  connectivity: Connectivity = 8,
): Components {
  return labelComponents(values, width, height, connectivity, true);
}

function labelComponents(
  values: ArrayLike<number>,
  width: number,
  height: number,
  connectivity: Connectivity,
  byValue: boolean,
): Components {
  const n = checkSize(values, width, height);
  const labels = new Int32Array(n);
  // Each pixel enters the queue at most once over the whole image, so one buffer serves every component.
  const queue = new Int32Array(n);
  const diagonal = connectivity === 8;
  let count = 0;
  for (let start = 0; start < n; start++) {
    const v0 = values[start];
    if (v0 === 0 || labels[start] !== 0 || v0 !== v0) continue;
    count++;
    labels[start] = count;
    let head = 0;
    let tail = 0;
    queue[tail++] = start;
    while (head < tail) {
      const p = queue[head++];
      const x = p % width;
      const y = (p - x) / width;
      const left = x > 0;
      const right = x < width - 1;
      const up = y > 0;
      const down = y < height - 1;
      for (let k = 0; k < 8; k++) {
        let q: number;
        switch (k) {
          case 0: if (!left) continue; q = p - 1; break;
          case 1: if (!right) continue; q = p + 1; break;
          case 2: if (!up) continue; q = p - width; break;
          case 3: if (!down) continue; q = p + width; break;
          case 4: if (!diagonal || !up || !left) continue; q = p - width - 1; break;
          case 5: if (!diagonal || !up || !right) continue; q = p - width + 1; break;
          case 6: if (!diagonal || !down || !left) continue; q = p + width - 1; break;
          default: if (!diagonal || !down || !right) continue; q = p + width + 1; break;
        }
        if (labels[q] !== 0) continue;
        const v = values[q];
        if (byValue ? v !== v0 : v === 0 || v !== v) continue;
        labels[q] = count;
        queue[tail++] = q;
      }
    }
  }
  return { labels, count };
}

/** Renumbers arbitrary ids (any order, gaps) to 1..count in raster order of first appearance. */
export function relabelSequential(labels: ArrayLike<number>): Components {
  const out = new Int32Array(labels.length);
  const mapping = new Map<number, number>();
  for (let i = 0; i < labels.length; i++) {
    const id = labels[i];
    if (id === 0) continue;
    let next = mapping.get(id);
    if (next === undefined) {
      next = mapping.size + 1;
      mapping.set(id, next);
    }
    out[i] = next;
  }
  return { labels: out, count: mapping.size };
}

/** Area in pixels of each label 0..count (index 0 counts the background). */
export function objectSizes(labels: Int32Array, count: number): Int32Array {
  const sizes = new Int32Array(count + 1);
  for (let i = 0; i < labels.length; i++) sizes[labels[i]]++;
  return sizes;
}

/** Drops objects smaller than minSize pixels and renumbers the rest 1..count, keeping their order. */
export function removeSmallObjects(components: Components, minSize: number): Components {
  const { labels, count } = components;
  if (minSize <= 1) return components;
  const sizes = objectSizes(labels, count);
  const mapping = new Int32Array(count + 1);
  let kept = 0;
  for (let id = 1; id <= count; id++) if (sizes[id] >= minSize) mapping[id] = ++kept;
  const out = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) out[i] = mapping[labels[i]];
  return { labels: out, count: kept };
}

export interface InstanceTargets {
  /** 1 where a pixel belongs to an object and is not on its boundary. */
  interior: Uint8Array;
  /** 1 on the rim of an object: pixels within boundaryWidth of another object or the background. */
  boundary: Uint8Array;
  /** interior | boundary: every object pixel. */
  foreground: Uint8Array;
}

export interface TargetOptions {
  /** Thickness of the rim in pixels (default 1). */
  boundaryWidth?: number;
}

/**
 * Per-pixel targets that separate touching objects: a pixel is on the boundary when one of its 8
 * neighbours carries a different label (another object or background), and, for thicker rims, when
 * it neighbours a boundary pixel. With the 8-neighbourhood no interior pixel of one object ever
 * touches an interior pixel of another, even diagonally, so the interiors' connected components
 * are the objects. The image border is not a boundary: objects cut by a tile edge keep their interior.
 */
export function instanceTargets(
  labels: ArrayLike<number>,
  width: number,
  height: number,
  options: TargetOptions = {},
): InstanceTargets {
  const n = checkSize(labels, width, height);
  const boundaryWidth = options.boundaryWidth ?? 1;
  if (!Number.isInteger(boundaryWidth) || boundaryWidth < 1) {
    throw new RangeError(`boundaryWidth must be a positive integer, got ${boundaryWidth}`);
  }
  const boundary = new Uint8Array(n);
  const foreground = new Uint8Array(n);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const id = labels[p];
      if (id === 0) continue;
      foreground[p] = 1;
      if (hasNeighbourWhere(width, height, x, y, (q) => labels[q] !== id)) boundary[p] = 1;
    }
  }
  // Thicker rims grow inwards one ring per pass; pass k marks pixels touching ring k-1.
  let ring = 1;
  for (let pass = 2; pass <= boundaryWidth; pass++) {
    const next = ring + 1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = y * width + x;
        if (!foreground[p] || boundary[p]) continue;
        if (hasNeighbourWhere(width, height, x, y, (q) => boundary[q] === ring)) boundary[p] = next;
      }
    }
    ring = next;
  }
  const interior = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    if (boundary[p]) boundary[p] = 1;
    else if (foreground[p]) interior[p] = 1;
  }
  return { interior, boundary, foreground };
}

function hasNeighbourWhere(
  width: number,
  height: number,
  x: number,
  y: number,
  test: (q: number) => boolean,
): boolean {
  const x0 = x > 0 ? x - 1 : x;
  const x1 = x < width - 1 ? x + 1 : x;
  const y0 = y > 0 ? y - 1 : y;
  const y1 = y < height - 1 ? y + 1 : y;
  for (let yy = y0; yy <= y1; yy++) {
    for (let xx = x0; xx <= x1; xx++) {
      if ((xx !== x || yy !== y) && test(yy * width + xx)) return true;
    }
  }
  return false;
}

export interface FromInteriorOptions {
  /** Interior probability above which a pixel seeds an object (default 0.5). */
  threshold?: number;
  /**
   * Where objects may grow from their seeds: a foreground probability map or a binary mask,
   * compared against foregroundThreshold. Without it, seeds grow by at most maxGrowth pixels.
   */
  foreground?: ArrayLike<number>;
  /** Default 0.5. */
  foregroundThreshold?: number;
  /**
   * Steps of growth (8-neighbourhood) allowed from a seed. Default: unlimited when a foreground
   * is given, 1 otherwise (which gives back the rim that instanceTargets takes away).
   */
  maxGrowth?: number;
  /**
   * Connectivity of the seeds (default 4): a diagonal one-pixel bridge between the interiors of
   * two touching objects, a typical thresholding artefact, then does not merge them.
   */
  connectivity?: Connectivity;
  /** Seeds smaller than this are noise and do not start an object (default 1: all seeds count). */
  minSeedSize?: number;
  /** Objects smaller than this after growing are dropped (default 0: none). */
  minSize?: number;
  /**
   * Foreground regions that no seed reaches become objects of their own (default true): objects
   * too thin or small to have an interior pixel are otherwise lost. Only with a foreground map.
   */
  keepSeedless?: boolean;
}

/**
 * Objects from a predicted interior map: threshold, connected components of the interior as
 * seeds, then every seed grows into the remaining foreground in breadth-first order (each pixel
 * goes to the seed that reaches it first, i.e. the nearest one along the foreground), foreground
 * regions without a seed become objects themselves (keepSeedless), and objects below minSize are
 * dropped.
 */
export function instancesFromInterior(
  interior: ArrayLike<number>,
  width: number,
  height: number,
  options: FromInteriorOptions = {},
): Components {
  const n = checkSize(interior, width, height);
  const threshold = options.threshold ?? 0.5;
  const foregroundThreshold = options.foregroundThreshold ?? 0.5;
  const { foreground } = options;
  if (foreground) checkSize(foreground, width, height);
  const maxGrowth = options.maxGrowth ?? (foreground ? Infinity : 1);

  const seedMask = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    if (interior[p] > threshold && (!foreground || foreground[p] > foregroundThreshold)) seedMask[p] = 1;
  }
  const seeds = removeSmallObjects(
    connectedComponents(seedMask, width, height, options.connectivity ?? 4),
    options.minSeedSize ?? 1,
  );
  const labels = seeds.labels;

  const canGrow = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    if (labels[p] === 0 && (!foreground || foreground[p] > foregroundThreshold)) canGrow[p] = 1;
  }
  if (maxGrowth > 0) {
    // Multi-source breadth-first search: the queue holds seed pixels first, then each ring in turn.
    const queue = new Int32Array(n);
    const distance = new Int32Array(n);
    let tail = 0;
    for (let p = 0; p < n; p++) if (labels[p] !== 0) queue[tail++] = p;
    for (let head = 0; head < tail; head++) {
      const p = queue[head];
      const d = distance[p] + 1;
      if (d > maxGrowth) continue;
      const x = p % width;
      const y = (p - x) / width;
      const id = labels[p];
      for (let yy = Math.max(0, y - 1); yy <= Math.min(height - 1, y + 1); yy++) {
        for (let xx = Math.max(0, x - 1); xx <= Math.min(width - 1, x + 1); xx++) {
          const q = yy * width + xx;
          if (!canGrow[q]) continue;
          canGrow[q] = 0;
          labels[q] = id;
          distance[q] = d;
          queue[tail++] = q;
        }
      }
    }
  }
  let count = seeds.count;
  if (foreground && (options.keepSeedless ?? true) && maxGrowth === Infinity) {
    // After unlimited growth, what can still grow is exactly the foreground no seed reached.
    const seedless = connectedComponents(canGrow, width, height, 8);
    for (let p = 0; p < n; p++) if (seedless.labels[p] !== 0) labels[p] = count + seedless.labels[p];
    count += seedless.count;
  }
  return removeSmallObjects({ labels, count }, options.minSize ?? 0);
}

function checkSize(values: ArrayLike<number>, width: number, height: number): number {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new RangeError(`invalid size ${width}x${height}`);
  }
  const n = width * height;
  if (values.length !== n) {
    throw new RangeError(`expected ${width}x${height} = ${n} values, got ${values.length}`);
  }
  return n;
}
