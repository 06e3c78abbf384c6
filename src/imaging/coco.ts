/**
 * COCO instance annotations with RLE masks, as pycocotools reads and writes them: runs over the
 * pixels in column-major (Fortran) order, starting with a run of zeros (possibly empty), summing
 * to height * width; `size` is [height, width]. The uncompressed form keeps `counts` as a list;
 * the compressed form is pycocotools' LEB128-like string.
 */
import type { LabelImage } from './types';

export interface CocoRle {
  /** [height, width], pycocotools' order. */
  size: [number, number];
  counts: number[] | string;
}

export interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  segmentation: CocoRle;
  /** Pixel count of the mask. */
  area: number;
  /** [x, y, width, height] of the mask's pixels, as pycocotools' toBbox computes it. */
  bbox: [number, number, number, number];
  /** 0: a single object. (RLE with iscrowd 0 is valid; pycocotools converts either form.) */
  iscrowd: 0 | 1;
  /** The label id the object had in its label image, so decoding can restore it. */
  label_id?: number;
}

export interface CocoDataset {
  info?: Record<string, unknown>;
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
}

/** RLE of one binary mask given row-major (non-zero = on). */
export function encodeRle(mask: ArrayLike<number>, width: number, height: number): CocoRle {
  if (mask.length !== width * height) throw new RangeError(`mask has ${mask.length} pixels for ${width}x${height}`);
  const counts: number[] = [];
  let value = 0;
  let run = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const on = mask[y * width + x] !== 0 ? 1 : 0;
      if (on !== value) {
        counts.push(run);
        run = 0;
        value = on;
      }
      run++;
    }
  }
  counts.push(run);
  return { size: [height, width], counts };
}

/** The mask of an RLE (uncompressed or compressed), row-major, 1 = on. */
export function decodeRle(rle: CocoRle): Uint8Array {
  const [height, width] = rle.size;
  const counts = typeof rle.counts === 'string' ? rleCountsFromString(rle.counts) : rle.counts;
  const out = new Uint8Array(width * height);
  let p = 0;
  const total = width * height;
  for (let k = 0; k < counts.length; k++) {
    const end = p + counts[k];
    if (!(counts[k] >= 0) || end > total) throw new RangeError(`RLE runs exceed ${height}x${width} pixels`);
    if (k % 2 === 1) {
      for (let q = p; q < end; q++) {
        const x = Math.floor(q / height);
        out[(q - x * height) * width + x] = 1;
      }
    }
    p = end;
  }
  if (p !== total) throw new RangeError(`RLE covers ${p} of ${total} pixels`);
  return out;
}

/** pycocotools' rleToString: differences of runs two apart, 5 bits per character from '0'. */
export function rleCountsToString(counts: number[]): string {
  let s = '';
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = true;
    while (more) {
      let c = x & 0x1f;
      // Arithmetic shift that stays exact beyond 32 bits.
      x = Math.floor(x / 32);
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

export function rleCountsFromString(s: string): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    let c = 0;
    while (more) {
      if (p >= s.length) throw new RangeError('compressed RLE string ends inside a number');
      c = s.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
    }
    if (c & 0x10) x -= 2 ** (5 * k);
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

export interface LabelsToCocoOptions {
  imageId: number;
  /** Id of the first annotation (default 1); the rest follow. */
  firstAnnotationId?: number;
  /** Category of an object id (default: 1 for all). */
  categoryOf?: (labelId: number) => number;
  /** Write counts as pycocotools' compressed string instead of a list (default false). */
  compressed?: boolean;
}

/**
 * One annotation per object id of a label image, in increasing id order, all masks from one
 * column-major pass (each object keeps its own open run), so cost is one pass plus the output.
 */
export function labelsToCocoAnnotations(labels: LabelImage, options: LabelsToCocoOptions): CocoAnnotation[] {
  const { width, height, data } = labels;
  interface Obj {
    counts: number[];
    /** Column-major position just after this object's last run. */
    end: number;
    area: number;
    x0: number;
    x1: number;
    y0: number;
    y1: number;
  }
  const objects = new Map<number, Obj>();
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const id = data[y * width + x];
      if (id === 0) continue;
      const p = x * height + y;
      let o = objects.get(id);
      if (!o) {
        o = { counts: [p, 0], end: p, area: 0, x0: x, x1: x, y0: y, y1: y };
        objects.set(id, o);
      }
      if (p !== o.end) o.counts.push(p - o.end, 0);
      o.counts[o.counts.length - 1]++;
      o.end = p + 1;
      o.area++;
      if (x > o.x1) o.x1 = x;
      if (y < o.y0) o.y0 = y;
      if (y > o.y1) o.y1 = y;
    }
  }
  const total = width * height;
  const ids = [...objects.keys()].sort((a, b) => a - b);
  let next = options.firstAnnotationId ?? 1;
  return ids.map((id) => {
    const o = objects.get(id)!;
    if (o.end < total) o.counts.push(total - o.end);
    return {
      id: next++,
      image_id: options.imageId,
      category_id: options.categoryOf ? options.categoryOf(id) : 1,
      segmentation: { size: [height, width], counts: options.compressed ? rleCountsToString(o.counts) : o.counts },
      area: o.area,
      bbox: [o.x0, o.y0, o.x1 - o.x0 + 1, o.y1 - o.y0 + 1],
      iscrowd: 0,
      label_id: id,
    };
  });
}

export interface CocoEntry {
  image: CocoImage;
  labels: LabelImage;
}

/** A COCO dataset of label images; annotation ids are unique across the whole dataset. */
export function buildCocoDataset(
  entries: CocoEntry[],
  options: { categories?: CocoCategory[]; categoryOf?: (imageId: number, labelId: number) => number; compressed?: boolean; info?: Record<string, unknown> } = {},
): CocoDataset {
  const annotations: CocoAnnotation[] = [];
  for (const { image, labels } of entries) {
    if (labels.width !== image.width || labels.height !== image.height) {
      throw new RangeError(`${image.file_name}: labels are ${labels.width}x${labels.height}, the image ${image.width}x${image.height}`);
    }
    const categoryOf = options.categoryOf;
    annotations.push(
      ...labelsToCocoAnnotations(labels, {
        imageId: image.id,
        firstAnnotationId: annotations.length + 1,
        categoryOf: categoryOf ? (id) => categoryOf(image.id, id) : undefined,
        compressed: options.compressed,
      }),
    );
  }
  return {
    ...(options.info ? { info: options.info } : {}),
    images: entries.map((e) => e.image),
    annotations,
    categories: options.categories ?? [{ id: 1, name: 'object', supercategory: 'object' }],
  };
}

/**
 * The label image of one COCO image's annotations: each annotation's mask painted with its
 * `label_id` when present, else its position + 1; later annotations overwrite earlier ones.
 */
export function cocoToLabels(dataset: CocoDataset, imageId: number): LabelImage & { data: Int32Array } {
  const image = dataset.images.find((i) => i.id === imageId);
  if (!image) throw new RangeError(`no image ${imageId} in the COCO dataset`);
  const out = new Int32Array(image.width * image.height);
  const annotations = dataset.annotations.filter((a) => a.image_id === imageId);
  annotations.forEach((a, k) => {
    const seg = a.segmentation;
    if (!seg || Array.isArray(seg) || !('counts' in seg)) {
      throw new RangeError(`annotation ${a.id} has no RLE segmentation (polygons are not read)`);
    }
    const mask = decodeRle(seg);
    const id = a.label_id ?? k + 1;
    for (let i = 0; i < mask.length; i++) if (mask[i]) out[i] = id;
  });
  return { width: image.width, height: image.height, data: out };
}
