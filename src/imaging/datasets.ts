/**
 * The real microscopy sets in ../shared/data (see its README and manifest.json), read in place for
 * tests and benchmarks; nothing from them belongs in the repository. Each set's mask encoding and
 * its scored foreground are written down here once, checked against the manifest's wording.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeImage, decodeMask } from './decode';
import { labelRegions, relabelSequential } from './instances';
import type { RawImage } from './types';

export type DatasetName = 'isbi2012-em' | 'bbbc039-nuclei' | 'pfc-brightfield' | 'ctc-samples';

export const DATASET_NAMES: readonly DatasetName[] = ['isbi2012-em', 'bbbc039-nuclei', 'pfc-brightfield', 'ctc-samples'];

/** One entry of manifest.json, as far as this code relies on it. */
export interface ManifestEntry {
  modality: string;
  task: string;
  images: string;
  masks: string;
  unlabeled?: string;
  /** Split name to file names; ctc-samples has a sentence instead (no split). */
  split: Record<string, string[]> | string;
  foreground: string;
  source: string;
  license: string;
}

export interface LabeledImage {
  name: string;
  image: RawImage;
  /** 1 on the scored foreground class (the manifest's "foreground" rule), 0 elsewhere. */
  foreground: Uint8Array;
  /** Object ids 1..instanceCount, for sets with instance labels (bbbc039-nuclei, ctc-samples). */
  instances?: Int32Array;
  instanceCount?: number;
}

export interface UnlabeledImage {
  name: string;
  image: RawImage;
}

export interface Dataset {
  /** A shared set's name, or a folder set's (folderDataset.ts). */
  name: string;
  root: string;
  /** The shared set's manifest entry; absent for a folder set. */
  manifest?: ManifestEntry;
  /** Which side of an intensity threshold the foreground lies on, for the Otsu baseline. */
  polarity: 'bright' | 'dark';
  splits: Record<string, LabeledImage[]>;
  unlabeled: UnlabeledImage[];
}

export interface LoadDatasetOptions {
  /** Folder holding manifest.json; default $MASKLOOP_DATA, else ../shared/data next to the repository. */
  root?: string;
  /** Splits to load; default all of the set's splits (ctc-samples has one, "all"). */
  splits?: string[];
  /** At most this many images per split (and of the unlabeled images), in manifest order. */
  maxImages?: number;
  /** Load the unlabeled images too, where the set has them (default true). */
  unlabeled?: boolean;
  /** Images decoded at once (default 4). */
  concurrency?: number;
}

export class DatasetError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatasetError';
  }
}

interface Pair {
  name: string;
  imagePath: string;
  maskPath: string;
}

interface DatasetSpec {
  polarity: 'bright' | 'dark';
  /** The manifest's "foreground" text this code implements; a different text means the encoding moved. */
  foregroundRule: RegExp;
  foreground(mask: RawImage): Uint8Array;
  instances?(mask: RawImage): { labels: Int32Array; count: number };
  pairs(dir: string, entry: ManifestEntry, split: string): Promise<Pair[]>;
}

const SPECS: Record<DatasetName, DatasetSpec> = {
  'isbi2012-em': {
    polarity: 'dark',
    foregroundRule: /^mask == 0/,
    foreground: (mask) => mapMask(mask, (v) => v === 0),
    pairs: async (dir, entry, split) =>
      splitFiles(entry, split).map((file) => ({
        name: file,
        imagePath: join(dir, 'images', file),
        maskPath: join(dir, 'masks', file),
      })),
  },
  'bbbc039-nuclei': {
    polarity: 'bright',
    foregroundRule: /^red channel > 0/,
    foreground: (mask) => mapMask(mask, (v) => v > 0),
    // Graph colouring: touching nuclei differ in value, so a nucleus is a 4-connected region of one
    // value (8-connectivity would merge same-coloured nuclei that meet only at a corner).
    instances: (mask) => labelRegions(mask.data, mask.width, mask.height, 4),
    pairs: async (dir, entry, split) =>
      splitFiles(entry, split).map((file) => ({
        name: file,
        imagePath: join(dir, 'images', file),
        maskPath: join(dir, 'masks', file.replace(/\.tiff?$/i, '.png')),
      })),
  },
  'pfc-brightfield': {
    polarity: 'dark',
    foregroundRule: /^mask > 0/,
    foreground: (mask) => mapMask(mask, (v) => v > 0),
    pairs: async (dir, entry, split) =>
      splitFiles(entry, split).map((file) => ({
        name: file,
        imagePath: join(dir, 'images', file),
        maskPath: join(dir, 'masks', file.replace(/\.jpe?g$/i, '.png')),
      })),
  },
  'ctc-samples': {
    polarity: 'bright',
    foregroundRule: /^label > 0/,
    foreground: (mask) => mapMask(mask, (v) => v > 0),
    // CTC label images number each object; renumbering only removes gaps.
    instances: (mask) => relabelSequential(mask.data),
    pairs: async (dir, _entry, split) => {
      if (split !== 'all') throw new DatasetError(`ctc-samples has no split "${split}"; it has one: "all"`);
      const pairs: Pair[] = [];
      for (const sequence of (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory())) {
        const images = (await readdir(join(dir, sequence.name, 'images'))).filter((f) => /^t\d+\.tif$/.test(f)).sort();
        for (const file of images) {
          const maskPath = join(dir, sequence.name, 'masks', `man_seg${file.slice(1)}`);
          if (!existsSync(maskPath)) continue;
          pairs.push({ name: `${sequence.name}/${file}`, imagePath: join(dir, sequence.name, 'images', file), maskPath });
        }
      }
      return pairs.sort((a, b) => a.name.localeCompare(b.name));
    },
  },
};

/** Where the data lives unless told otherwise. */
export function defaultDataRoot(): string {
  if (process.env.MASKLOOP_DATA) return resolve(process.env.MASKLOOP_DATA);
  const repositoryRoot = fileURLToPath(new URL('../../', import.meta.url));
  return resolve(repositoryRoot, '..', 'shared', 'data');
}

export function readManifest(root: string = defaultDataRoot()): Record<string, ManifestEntry> {
  const path = join(root, 'manifest.json');
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, ManifestEntry>;
  } catch (error) {
    throw new DatasetError(`cannot read the data manifest ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** Why the set cannot be loaded, or null when it can: for tests that skip with a clear message. */
export function datasetUnavailableReason(name: string, root: string = defaultDataRoot()): string | null {
  if (!existsSync(join(root, 'manifest.json'))) return `no data manifest at ${join(root, 'manifest.json')}`;
  let manifest: Record<string, ManifestEntry>;
  try {
    manifest = readManifest(root);
  } catch (error) {
    return (error as Error).message;
  }
  if (!(name in manifest)) return `${name} is not in ${join(root, 'manifest.json')}`;
  if (!(name in SPECS)) return `${name} has no reader in maskloop (known: ${DATASET_NAMES.join(', ')})`;
  if (!existsSync(join(root, name))) return `the folder ${join(root, name)} is missing`;
  return null;
}

/** Split names of a set as loadDataset reads them. */
export function datasetSplits(entry: ManifestEntry): string[] {
  return typeof entry.split === 'string' ? ['all'] : Object.keys(entry.split);
}

/** A set of ../shared/data, with its manifest entry. */
export type SharedDataset = Dataset & { name: DatasetName; manifest: ManifestEntry };

export async function loadDataset(name: DatasetName, options: LoadDatasetOptions = {}): Promise<SharedDataset> {
  const root = options.root ?? defaultDataRoot();
  const reason = datasetUnavailableReason(name, root);
  if (reason) throw new DatasetError(`dataset ${name} is not available: ${reason}`);
  const manifest = readManifest(root)[name];
  const spec = SPECS[name];
  if (!spec.foregroundRule.test(manifest.foreground)) {
    throw new DatasetError(
      `${name}: the manifest now says foreground is "${manifest.foreground}", ` +
        `but this reader implements ${spec.foregroundRule}; update datasets.ts`,
    );
  }
  const dir = join(root, name);
  const available = datasetSplits(manifest);
  const splits = options.splits ?? available;
  const concurrency = options.concurrency ?? 4;
  const limit = (items: Pair[]) => (options.maxImages === undefined ? items : items.slice(0, options.maxImages));

  const loaded: Record<string, LabeledImage[]> = {};
  for (const split of splits) {
    if (!available.includes(split)) {
      throw new DatasetError(`${name} has no split "${split}" (it has: ${available.join(', ')})`);
    }
    const pairs = limit(await spec.pairs(dir, manifest, split));
    loaded[split] = await mapConcurrent(pairs, concurrency, (pair) => loadPair(name, spec, pair));
  }

  let unlabeled: UnlabeledImage[] = [];
  if ((options.unlabeled ?? true) && manifest.unlabeled) {
    const folder = join(dir, 'unlabeled');
    const files = (await readdir(folder)).filter((f) => /\.(png|tiff?|jpe?g)$/i.test(f)).sort();
    const chosen = options.maxImages === undefined ? files : files.slice(0, options.maxImages);
    unlabeled = await mapConcurrent(chosen, concurrency, async (file) => ({
      name: file,
      image: await decodeImage(join(folder, file)),
    }));
  }
  return { name, root, manifest, polarity: spec.polarity, splits: loaded, unlabeled };
}

async function loadPair(name: string, spec: DatasetSpec, pair: Pair): Promise<LabeledImage> {
  const [image, mask] = await Promise.all([decodeImage(pair.imagePath), decodeMask(pair.maskPath)]);
  if (image.width !== mask.width || image.height !== mask.height) {
    throw new DatasetError(
      `${name}/${pair.name}: image is ${image.width}x${image.height} but its mask ` +
        `${basename(pair.maskPath)} is ${mask.width}x${mask.height}`,
    );
  }
  const sample: LabeledImage = { name: pair.name, image, foreground: spec.foreground(mask) };
  if (spec.instances) {
    const { labels, count } = spec.instances(mask);
    sample.instances = labels;
    sample.instanceCount = count;
  }
  return sample;
}

function splitFiles(entry: ManifestEntry, split: string): string[] {
  if (typeof entry.split === 'string' || !entry.split[split]) {
    throw new DatasetError(`no split "${split}" in the manifest entry`);
  }
  return entry.split[split];
}

function mapMask(mask: RawImage, isForeground: (value: number) => boolean): Uint8Array {
  const out = new Uint8Array(mask.width * mask.height);
  for (let i = 0; i < out.length; i++) out[i] = isForeground(mask.data[i]) ? 1 : 0;
  return out;
}

/** `work` over the items, at most `concurrency` at a time, results in the items' order. */
export async function mapConcurrent<T, R>(items: T[], concurrency: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  return results;
}
