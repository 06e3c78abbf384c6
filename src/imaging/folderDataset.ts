/**
 * Any lab's data as an evaluation set: a folder of images and a folder of masks, paired by file
 * name, split deterministically, read the way the shared sets are (datasets.ts) so every
 * evaluation runs on it unchanged.
 */
import { readdir } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { fnv1a32 } from '../shared/hash';
import { decodeImage } from './decode';
import { DatasetError, mapConcurrent, type Dataset, type LabeledImage, type UnlabeledImage } from './datasets';
import { labelRegions, relabelSequential } from './instances';
import type { RawImage } from './types';

/**
 * How a mask folder encodes the truth. 'binary': foreground by FolderDatasetOptions.foreground, no
 * objects. 'labels': each object its own value (a label image; CTC, Cellpose, StarDist). 'colours':
 * graph-coloured, touching objects differ in value and a value is reused elsewhere (BBBC039): an
 * object is a 4-connected region of one value. RGB masks are read as one value per colour.
 */
export const MASK_ENCODINGS = ['binary', 'labels', 'colours'] as const;
export type MaskEncoding = (typeof MASK_ENCODINGS)[number];

/** Which mask values are foreground: 'nonzero' (most masks), or 'zero' (structures drawn black, as ISBI's membranes). */
export const FOREGROUND_RULES = ['nonzero', 'zero'] as const;
export type ForegroundRule = (typeof FOREGROUND_RULES)[number];

export interface FolderDatasetOptions {
  images: string;
  masks: string;
  /** Images without labels for pretraining; images of `images` without a mask join them. */
  unlabeled?: string;
  encoding: MaskEncoding;
  foreground?: ForegroundRule;
  /** Shares of train, val and test (default DEFAULT_SPLIT), assigned by a hash of each file name. */
  split?: readonly [number, number, number];
  /** The set's name in reports (default the images folder's parent and name). */
  name?: string;
  concurrency?: number;
}

export const DEFAULT_SPLIT = [0.6, 0.2, 0.2] as const;

const IMAGE_FILE = /\.(png|tiff?|jpe?g)$/i;

/** Mask names a labeling tool commonly gives: the image's own name, or it with one of these. */
const MASK_SUFFIXES = ['', '_mask', '_masks', '-mask', '_label', '_labels', '_seg', '_gt', '_cp_masks'];

export async function loadFolderDataset(options: FolderDatasetOptions): Promise<Dataset> {
  const imagesDir = resolve(options.images);
  const masksDir = resolve(options.masks);
  const split = options.split ?? DEFAULT_SPLIT;
  if (split.length !== 3 || split.some((s) => !(s >= 0)) || !(split[0] > 0) || Math.abs(split[0] + split[1] + split[2] - 1) > 1e-6) {
    throw new DatasetError(`the split needs three shares (train, val, test) that sum to 1 with some train, got ${split.join(', ')}`);
  }
  const images = await imageFiles(imagesDir);
  const masksByStem = new Map((await imageFiles(masksDir)).map((f) => [stem(f), f]));
  const pairs: Array<{ name: string; image: string; mask: string }> = [];
  const withoutMask: string[] = [];
  for (const file of images) {
    const mask = MASK_SUFFIXES.map((s) => masksByStem.get(stem(file) + s)).find(Boolean);
    if (mask) pairs.push({ name: file, image: join(imagesDir, file), mask: join(masksDir, mask) });
    else withoutMask.push(join(imagesDir, file));
  }
  if (pairs.length < 3) throw new DatasetError(`${imagesDir}: ${pairs.length} image(s) have a mask in ${masksDir} (paired by file name); an evaluation needs at least 3`);

  const splits: Record<string, LabeledImage[]> = { train: [], val: [], test: [] };
  const loaded = await mapConcurrent(pairs, options.concurrency ?? 4, (p) => loadPair(p, options.encoding, options.foreground ?? 'nonzero'));
  for (const sample of loaded) {
    const u = nameHash(sample.name);
    splits[u < split[0] ? 'train' : u < split[0] + split[1] ? 'val' : 'test'].push(sample);
  }
  // A small folder may hash no image into a split that asked for some: take one from train.
  for (const name of ['test', 'val'] as const) {
    const share = name === 'test' ? split[2] : split[1];
    if (share > 0 && splits[name].length === 0 && splits.train.length > 1) splits[name].push(splits.train.pop() as LabeledImage);
  }
  const unlabeledFiles = [...withoutMask, ...(options.unlabeled ? (await imageFiles(resolve(options.unlabeled))).map((f) => join(resolve(options.unlabeled as string), f)) : [])];
  const unlabeled: UnlabeledImage[] = await mapConcurrent(unlabeledFiles, options.concurrency ?? 4, async (file) => ({ name: basename(file), image: await decodeImage(file) }));
  return {
    name: options.name ?? `${basename(resolve(imagesDir, '..'))}-${basename(imagesDir)}`,
    root: imagesDir,
    polarity: polarityOf(splits.train),
    splits,
    unlabeled,
  };
}

async function imageFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((f) => IMAGE_FILE.test(f) && !f.startsWith('.')).sort();
  } catch (error) {
    throw new DatasetError(`cannot list ${dir}: ${(error as Error).message}`, { cause: error });
  }
}

function stem(file: string): string {
  return basename(file, extname(file));
}

/** A file name's place in [0, 1): FNV-1a, so the split is fixed by the names alone and stable as files are added. */
export function nameHash(name: string): number {
  return fnv1a32(name) / 2 ** 32;
}

/** One value per mask pixel: the stored value, or the colour packed into one number for RGB masks. */
function maskValues(mask: RawImage): Float64Array {
  const n = mask.width * mask.height;
  // Three 16-bit channels need 48 bits: exact in a double, not in 32-bit integers.
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (let c = 0; c < Math.min(mask.channels, 3); c++) v = v * 65536 + mask.data[i * mask.channels + c];
    out[i] = v;
  }
  return out;
}

async function loadPair(pair: { name: string; image: string; mask: string }, encoding: MaskEncoding, rule: ForegroundRule): Promise<LabeledImage> {
  const [image, mask] = await Promise.all([decodeImage(pair.image), decodeImage(pair.mask)]);
  if (image.width !== mask.width || image.height !== mask.height) {
    throw new DatasetError(`${pair.name}: the image is ${image.width}x${image.height} but its mask ${basename(pair.mask)} is ${mask.width}x${mask.height}`);
  }
  const values = maskValues(mask);
  const foreground = Uint8Array.from(values, (v) => ((rule === 'zero' ? v === 0 : v !== 0) ? 1 : 0));
  const sample: LabeledImage = { name: pair.name, image, foreground };
  if (encoding !== 'binary') {
    const objects = encoding === 'labels' ? relabelSequential(values) : labelRegions(values, mask.width, mask.height, 4);
    sample.instances = objects.labels;
    sample.instanceCount = objects.count;
  }
  return sample;
}

/** Whether the foreground is brighter than the background on average over the images (for the Otsu baseline). */
function polarityOf(images: LabeledImage[]): 'bright' | 'dark' {
  let difference = 0;
  for (const { image, foreground } of images) {
    const sums = [0, 0];
    const counts = [0, 0];
    for (let i = 0; i < foreground.length; i++) {
      let v = 0;
      for (let c = 0; c < image.channels; c++) v += image.data[i * image.channels + c];
      sums[foreground[i]] += v;
      counts[foreground[i]]++;
    }
    if (counts[0] && counts[1]) difference += sums[1] / counts[1] - sums[0] / counts[0];
  }
  return difference >= 0 ? 'bright' : 'dark';
}
