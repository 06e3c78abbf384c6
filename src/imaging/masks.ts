/**
 * Masks from the files people have: binary masks, instance label images (8/16-bit, ids kept as
 * stored), graph-coloured masks (BBBC039: few values, each connected region one object),
 * colour-coded instance masks, and folders with one binary mask per object. Also which mask file
 * belongs to which image.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { decodeImage, ImageDecodeError } from './decode';
import type { Connectivity } from './instances';
import { connectedComponents, labelRegions, relabelSequential } from './instances';
import type { LabelImage, RawImage } from './types';

export type MaskEncoding =
  /** Non-zero = foreground; objects are its connected components. */
  | 'binary'
  /** Each value is an object id, kept as stored (CTC man_seg, Cellpose, StarDist, napari labels). */
  | 'labels'
  /** Few values reused across objects, touching objects differ: each connected region of one value is an object. */
  | 'graph-coloured'
  /** Each distinct RGB colour is an object (black is background). */
  | 'colour-ids';

export interface MaskImportOptions {
  /** Default 'auto' (see maskFromImage). */
  encoding?: MaskEncoding | 'auto';
  /** Connectivity for 'binary' (default 8) and 'graph-coloured' (default 4) objects. */
  connectivity?: Connectivity;
  /** For binary masks: zero is the foreground (ISBI membranes). Default false. */
  invert?: boolean;
  /** Page of a multi-page TIFF mask. */
  page?: number;
}

export interface MaskImport {
  /** Object ids per pixel, 0 = background. */
  labels: LabelImage & { data: Int32Array };
  /** Objects present (distinct non-zero ids). */
  count: number;
  /** Largest id: larger than count when stored ids have gaps. */
  maxId: number;
  encoding: MaskEncoding;
  warnings: string[];
}

/**
 * Labels from a decoded mask image (all channels, as decodeImage returns them).
 *
 * 'auto' decides by content: a colour image whose channels are equal is grey. 8-bit grey with
 * values {0, 1} or {0, 255} is binary; other grey is a label image (ids kept). Colour with the
 * data in red only (BBBC039, whose masks may hold a single value when no nuclei touch) is
 * graph-coloured when some value forms several separate regions, else a label image; other
 * colour images are colour-coded ids.
 */
export function maskFromImage(image: RawImage, options: MaskImportOptions = {}): MaskImport {
  const { width, height } = image;
  const n = width * height;
  const warnings: string[] = [];
  const channelValues = (c: number): Float64Array | Int32Array => {
    const out = image.bitDepth === 32 ? new Float64Array(n) : new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = image.data[i * image.channels + c];
    return out;
  };
  let grey: ArrayLike<number>;
  let colour = false;
  let redOnly = false;
  if (image.channels === 1) {
    grey = image.data;
  } else {
    const sameChannels = channelsEqual(image);
    redOnly = !sameChannels && otherChannelsConstant(image);
    if (sameChannels || redOnly) {
      grey = channelValues(0);
    } else {
      grey = packColours(image);
      colour = true;
    }
  }
  if (image.bitDepth === 32) checkIntegral(grey);

  let encoding = options.encoding ?? 'auto';
  let regions: ReturnType<typeof labelRegions> | undefined;
  if (encoding === 'auto') {
    if (colour) encoding = 'colour-ids';
    else {
      const values = distinctNonZero(grey, 3);
      const only = values.values().next().value;
      // 1 and 255 are how binary masks are stored; a lone other value is an object id worth keeping.
      if (values.size === 0) encoding = 'binary';
      else if (redOnly) {
        // Data in red only: a graph colouring reuses values for separate objects, a label image does not.
        regions = labelRegions(grey, width, height, options.connectivity ?? 4);
        encoding = regions.count > distinctNonZero(grey, Infinity).size ? 'graph-coloured' : 'labels';
      } else if (values.size === 1 && image.bitDepth === 8 && (only === 1 || only === 255)) encoding = 'binary';
      else encoding = 'labels';
    }
  }

  let labels: Int32Array;
  switch (encoding) {
    case 'binary': {
      let fg: ArrayLike<number> = grey;
      if (options.invert) {
        const inverted = new Uint8Array(n);
        for (let i = 0; i < n; i++) inverted[i] = grey[i] === 0 ? 1 : 0;
        fg = inverted;
      }
      labels = connectedComponents(fg, width, height, options.connectivity ?? 8).labels;
      break;
    }
    case 'graph-coloured':
      labels = (regions ?? labelRegions(grey, width, height, options.connectivity ?? 4)).labels;
      break;
    case 'colour-ids':
      labels = relabelSequential(colour ? grey : packColours(image)).labels;
      break;
    default: {
      labels = new Int32Array(n);
      for (let i = 0; i < n; i++) labels[i] = grey[i];
      const split = splitIds(labels, width, height);
      if (split.length > 0) {
        warnings.push(
          `${split.length} id(s) cover separate regions (e.g. id ${split[0]}); if touching objects share ` +
            `values this is a graph-coloured mask: import with encoding 'graph-coloured'`,
        );
      }
    }
  }
  const stats = idStats(labels);
  return { labels: { width, height, data: labels }, count: stats.count, maxId: stats.maxId, encoding, warnings };
}

/** Reads and interprets one mask file. */
export async function importMask(path: string, options: MaskImportOptions = {}): Promise<MaskImport> {
  const image = await decodeImage(path, { page: options.page });
  try {
    return maskFromImage(image, options);
  } catch (error) {
    throw new ImageDecodeError(path, (error as Error).message, { cause: error });
  }
}

/**
 * A folder (or list) of binary masks, one object per file (Kaggle DSB 2018 layout) → one label
 * image, object k+1 from the k-th file in name order. Where masks overlap the earlier object
 * keeps the pixel; the overlap is reported.
 */
export async function importObjectMasks(source: string | string[], options: { invert?: boolean } = {}): Promise<MaskImport & { files: string[] }> {
  const files = Array.isArray(source) ? [...source] : await maskFilesIn(source);
  if (files.length === 0) throw new ImageDecodeError(Array.isArray(source) ? '<no files>' : source, 'no mask files');
  let labels: Int32Array | null = null;
  let width = 0;
  let height = 0;
  let overlap = 0;
  const empty: string[] = [];
  for (let k = 0; k < files.length; k++) {
    const image = await decodeImage(files[k]);
    if (!labels) {
      width = image.width;
      height = image.height;
      labels = new Int32Array(width * height);
    } else if (image.width !== width || image.height !== height) {
      throw new ImageDecodeError(files[k], `is ${image.width}x${image.height}, the first object mask is ${width}x${height}`);
    }
    const id = k + 1;
    let pixels = 0;
    for (let i = 0, j = 0; i < labels.length; i++, j += image.channels) {
      const on = (image.data[j] !== 0) !== (options.invert ?? false);
      if (!on) continue;
      pixels++;
      if (labels[i] === 0) labels[i] = id;
      else overlap++;
    }
    if (pixels === 0) empty.push(basename(files[k]));
  }
  const warnings: string[] = [];
  if (overlap > 0) warnings.push(`${overlap} pixel(s) claimed by more than one object mask; the first object keeps them`);
  if (empty.length > 0) warnings.push(`${empty.length} object mask(s) are empty (e.g. ${empty[0]}); their ids are unused`);
  const stats = idStats(labels!);
  return { labels: { width, height, data: labels! }, count: stats.count, maxId: stats.maxId, encoding: 'binary', warnings, files };
}

const MASK_IMAGE_EXT = /\.(png|tiff?|jpe?g)$/i;

async function maskFilesIn(folder: string): Promise<string[]> {
  const names = (await readdir(folder)).filter((n) => !n.startsWith('.') && MASK_IMAGE_EXT.test(n));
  return names.sort(naturalCompare).map((n) => join(folder, n));
}

/** 'obj2' before 'obj10': numbers compare as numbers. */
export function naturalCompare(a: string, b: string): number {
  const re = /(\d+)|(\D+)/g;
  const pa = a.match(re) ?? [];
  const pb = b.match(re) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === y) continue;
    const nx = /^\d/.test(x) && /^\d/.test(y);
    if (nx && Number(x) !== Number(y)) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length || (a < b ? -1 : a > b ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// Matching masks to images

const IMAGE_EXT = /\.(ome\.)?(tiff?|btf|png|jpe?g)$/i;
/** Suffixes and prefixes that mark a mask's name; the rest of the name is its image's. */
const MASK_SUFFIX = /[_\-. ]?(cp_masks|masks?|labels?|label_image|seg|segmentation|instances?|annotations?|gt|ground_?truth|objects?)$/i;
const MASK_PREFIX = /^(masks?|labels?|seg|gt)[_\-. ]/i;

/** An image's name without its extension. */
export function imageStem(path: string): string {
  return basename(path).replace(IMAGE_EXT, '');
}

/** The image stem a mask name points at: 'a_mask.png' → 'a'; CTC 'man_seg013.tif' → 't013'. */
export function maskStem(path: string): string {
  const stem = imageStem(path);
  const ctc = /^man_seg_?(\d+)$/.exec(stem);
  if (ctc) return `t${ctc[1]}`;
  return stem.replace(MASK_SUFFIX, '').replace(MASK_PREFIX, '');
}

export interface MaskPair {
  image: string;
  /** A mask file, or a folder of per-object masks. */
  mask: string;
  kind: 'file' | 'object-folder';
}

export interface MaskMatch {
  pairs: MaskPair[];
  unmatchedImages: string[];
  unmatchedMasks: string[];
  /** Images with more than one equally good mask: left for the person to choose. */
  ambiguous: { image: string; masks: string[] }[];
}

/**
 * Pairs masks with images by base name: identical stems first ('a.tif' with 'masks/a.png'), then
 * the mask's stem with mask-marking affixes removed ('a_mask.png', 'a_cp_masks.png', CTC
 * 'man_seg01.tif' for 't01.tif'), then either without regard to case. Mask entries that are
 * folders are per-object mask folders. Every mask is used at most once.
 */
export function matchMasks(images: string[], masks: string[], folders: Set<string> = new Set()): MaskMatch {
  const used = new Set<string>();
  const pairs: MaskPair[] = [];
  const ambiguous: MaskMatch['ambiguous'] = [];
  const unmatchedImages: string[] = [];
  const keys: ((p: string) => string)[] = [
    (p) => (folders.has(p) ? basename(p) : imageStem(p)),
    (p) => (folders.has(p) ? basename(p) : maskStem(p)),
    (p) => (folders.has(p) ? basename(p) : maskStem(p)).toLowerCase(),
  ];
  const imageKeys: ((p: string) => string)[] = [imageStem, imageStem, (p) => imageStem(p).toLowerCase()];
  const remaining = new Set(images);
  for (let level = 0; level < keys.length; level++) {
    const index = new Map<string, string[]>();
    for (const m of masks) {
      if (used.has(m)) continue;
      const k = keys[level](m);
      index.set(k, [...(index.get(k) ?? []), m]);
    }
    for (const image of images) {
      if (!remaining.has(image)) continue;
      const candidates = (index.get(imageKeys[level](image)) ?? []).filter((m) => !used.has(m) && m !== image);
      if (candidates.length === 1) {
        used.add(candidates[0]);
        remaining.delete(image);
        pairs.push({ image, mask: candidates[0], kind: folders.has(candidates[0]) ? 'object-folder' : 'file' });
      } else if (candidates.length > 1) {
        // Prefer the mask in a folder whose name says masks, else leave it to the person.
        const inMaskDir = candidates.filter((m) => /mask|label|seg|gt|annot/i.test(basename(dirname(m))));
        if (inMaskDir.length === 1) {
          used.add(inMaskDir[0]);
          remaining.delete(image);
          pairs.push({ image, mask: inMaskDir[0], kind: folders.has(inMaskDir[0]) ? 'object-folder' : 'file' });
        } else {
          remaining.delete(image);
          ambiguous.push({ image, masks: candidates });
        }
      }
    }
  }
  for (const image of images) if (remaining.has(image)) unmatchedImages.push(image);
  const unmatchedMasks = masks.filter((m) => !used.has(m) && !ambiguous.some((a) => a.masks.includes(m)));
  return { pairs, unmatchedImages, unmatchedMasks, ambiguous };
}

/**
 * Lists a mask folder for matchMasks: image files, and sub-folders holding only mask images
 * (per-object masks; a DSB-style 'ID/masks' folder is named after its parent).
 */
export async function listMaskFolder(folder: string): Promise<{ masks: string[]; folders: Set<string> }> {
  const masks: string[] = [];
  const folders = new Set<string>();
  for (const name of (await readdir(folder)).sort()) {
    if (name.startsWith('.')) continue;
    const path = join(folder, name);
    const s = await stat(path);
    if (s.isFile() && MASK_IMAGE_EXT.test(name)) masks.push(path);
    else if (s.isDirectory()) {
      const inner = (await readdir(path)).filter((n) => !n.startsWith('.'));
      if (inner.length > 0 && inner.every((n) => MASK_IMAGE_EXT.test(n))) {
        masks.push(path);
        folders.add(path);
      }
    }
  }
  return { masks, folders };
}

// ---------------------------------------------------------------------------------------------

function channelsEqual(image: RawImage): boolean {
  const { data, channels } = image;
  const colours = Math.min(channels, 3);
  for (let i = 0; i < data.length; i += channels) {
    for (let c = 1; c < colours; c++) if (data[i + c] !== data[i]) return false;
  }
  return true;
}

function otherChannelsConstant(image: RawImage): boolean {
  const { data, channels } = image;
  for (let c = 1; c < channels; c++) {
    const v = data[c];
    for (let i = c; i < data.length; i += channels) if (data[i] !== v) return false;
  }
  return true;
}

/** RGB packed into one integer per pixel (first three channels). */
function packColours(image: RawImage): Float64Array {
  const { data, channels } = image;
  const n = image.width * image.height;
  const out = new Float64Array(n);
  const base = image.bitDepth === 16 ? 65536 : 256;
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (let c = 0; c < Math.min(3, channels); c++) v = v * base + data[i * channels + c];
    out[i] = v;
  }
  return out;
}

function checkIntegral(values: ArrayLike<number>): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(Number.isInteger(v) && v >= 0 && v <= 0x7fffffff)) {
      throw new RangeError(`a float mask must hold non-negative integer ids; found ${v}`);
    }
  }
}

function distinctNonZero(values: ArrayLike<number>, limit: number): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i < values.length && out.size < limit; i++) if (values[i] !== 0) out.add(values[i]);
  return out;
}

function idStats(labels: Int32Array): { count: number; maxId: number } {
  const seen = new Set<number>();
  let maxId = 0;
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (v !== 0) {
      seen.add(v);
      if (v > maxId) maxId = v;
    }
  }
  return { count: seen.size, maxId };
}

/** Ids whose pixels form more than one 8-connected region (at most a few, for the warning). */
function splitIds(labels: Int32Array, width: number, height: number): number[] {
  const regions = labelRegions(labels, width, height, 8);
  const firstRegion = new Map<number, number>();
  const split = new Set<number>();
  for (let i = 0; i < labels.length; i++) {
    const id = labels[i];
    if (id === 0) continue;
    const r = regions.labels[i];
    const seen = firstRegion.get(id);
    if (seen === undefined) firstRegion.set(id, r);
    else if (seen !== r) split.add(id);
  }
  return [...split].slice(0, 5);
}

