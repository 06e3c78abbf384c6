/**
 * What the engine workflows read from a project: its images decoded into the engine's input
 * contract, and stored labels turned into training labels. Shared by the command line and the
 * app's job process, so both train on exactly the same data.
 */
import fs from 'node:fs';
import { fnv1a32 } from '../shared/hash';
import type { Initialisation } from '../engine/train/finetune';
import { SEMI } from '../engine/train/semi';
import { loadPretextWeights } from '../engine/train/pretrain';
import { evenlySpread, UNKNOWN, type LabeledImage } from '../engine/data';
import { instanceLabels, labeled, prepareImage, type PreparedImage } from '../engine/input';
import type { SegmentationTarget } from '../engine/target';
import { decodeImage } from '../imaging/decode';
import { spanFloor, type ChannelRange } from '../imaging/normalize';
import { fileRanges, readRegion } from '../imaging/region';
import type { ImageRecord, ImageSplit, LabelVersion, Project } from '../store';

/** minSpans: the project's window floor (projectSpanFloor), so that empty fields are not stretched into noise. */
export async function loadImage(record: ImageRecord, minSpans?: readonly number[]): Promise<PreparedImage> {
  // A file recorded as one channel is read as one (grey saved as RGB: see importImages).
  return prepareImage(await decodeImage(record.absolutePath, { grey: record.channels === 1 }), { minSpans });
}

/**
 * The window (x, y, w, h) of a project image, normalised with the whole image's intensity window
 * (`ranges`, from fileRanges) so that its regions look alike wherever they are cut.
 */
export async function loadImageRegion(record: ImageRecord, x: number, y: number, w: number, h: number, ranges: ChannelRange[]): Promise<PreparedImage> {
  return prepareImage(await readRegion(record.absolutePath, x, y, w, h, { grey: record.channels === 1 }), { ranges });
}

/** The percentile window of a whole project image, read without holding it (fileRanges). */
export function imageRanges(record: ImageRecord, minSpans?: readonly number[]): Promise<ChannelRange[]> {
  return fileRanges(record.absolutePath, { grey: record.channels === 1, minSpans });
}

/** Images whose windows set a project's floor: enough for a stable 10th percentile, few enough to read in seconds. */
const SPAN_FLOOR_SAMPLE = 64;

/**
 * The project's window floor (spanFloor) from the percentile windows of up to 64 of its images,
 * spread over the list. Files that cannot be read are left out: the image's own load reports them.
 */
export async function projectSpanFloor(project: Project): Promise<number[]> {
  const records = project.listImages();
  const stride = Math.max(1, Math.ceil(records.length / SPAN_FLOOR_SAMPLE));
  const windows: ChannelRange[][] = [];
  for (let i = 0; i < records.length; i += stride) {
    try {
      windows.push(await fileRanges(records[i].absolutePath, { grey: records[i].channels === 1 }));
    } catch {
      // unreadable: not part of the floor
    }
  }
  return spanFloor(windows);
}

/**
 * Stored labels hold class ids (semantic) or object ids (instance) per pixel, with a separate
 * unknown mask; the engine wants class labels with UNKNOWN in place.
 */
export function trainingLabels(label: LabelVersion, target: SegmentationTarget): Uint8Array {
  const { width, height, data } = label.mask;
  const unknown = label.unknown ?? undefined;
  if (target.kind === 'instance') return instanceLabels(data, width, height, unknown);
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) {
    if (unknown && unknown[i]) out[i] = UNKNOWN;
    // One foreground class: any object id counts, so instance labels train a binary model too.
    else if (target.classes === 1) out[i] = data[i] > 0 ? 1 : 0;
    else if (data[i] > target.classes) throw new Error(`label value ${data[i]} exceeds the project's ${target.classes} class(es)`);
    else out[i] = data[i];
  }
  return out;
}

export interface LabeledSet {
  images: LabeledImage[];
  records: ImageRecord[];
}

export async function loadLabeled(project: Project, splits: ImageSplit[], target: SegmentationTarget, minSpans?: readonly number[]): Promise<LabeledSet> {
  const images: LabeledImage[] = [];
  const records: ImageRecord[] = [];
  for (const { image } of project.labeledImages({ split: splits })) {
    const label = project.latestLabel(image.id);
    if (!label) continue;
    const pixels = await loadImage(image, minSpans);
    if (label.mask.width !== pixels.width || label.mask.height !== pixels.height) {
      throw new Error(`label of ${image.path} is ${label.mask.width}x${label.mask.height}, the image ${pixels.width}x${pixels.height}`);
    }
    images.push(labeled(pixels, trainingLabels(label, target)));
    records.push(image);
  }
  return { images, records };
}

/**
 * Up to `limits.images` of the project's images without a label in the train and unassigned
 * splits (val and test images are never trained on), spread over the project, and no more than
 * `limits.pixels` pixels of them, for consistency training. Files that cannot be read are left
 * out: they are extra evidence, not the labels being trained on.
 */
export async function loadUnlabeled(project: Project, limits: { images: number; pixels: number }, minSpans?: readonly number[]): Promise<PreparedImage[]> {
  const records = evenlySpread(project.listImages({ status: ['unlabeled', 'proposed'], split: ['train', 'unassigned'] }), limits.images);
  const images: PreparedImage[] = [];
  let pixels = 0;
  for (const record of records) {
    if (pixels + record.width * record.height > limits.pixels) continue;
    try {
      images.push(await loadImage(record, minSpans));
      pixels += record.width * record.height;
    } catch {
      // unreadable now: left out of the pool
    }
  }
  return images;
}

/**
 * Deterministic shard membership from the relative path alone, so every machine of an array
 * computes the same split of a folder without talking to the others.
 */
export function inShard(relativePath: string, shard: { index: number; count: number }): boolean {
  if (shard.count === 1) return true;
  return fnv1a32(relativePath) % shard.count === shard.index;
}

/**
 * The initialisations a first model chooses among: scratch; scratch with consistency training
 * (SEMI) where there are unlabeled images to learn from; then the latest pretext checkpoint of
 * each task combination. The caller disposes their weights.
 */
export function firstModelCandidates(project: Project, options: { semiSupervised: boolean }): Initialisation[] {
  const candidates: Initialisation[] = [{ name: 'scratch' }, ...(options.semiSupervised ? [{ name: `scratch${SEMI}` }] : [])];
  const seen = new Set<string>();
  for (const m of project.listModels({ kind: 'pretext' }).sort((a, b) => b.createdAt - a.createdAt)) {
    if (!m.pretextInit || seen.has(m.pretextInit) || !fs.existsSync(m.absoluteCheckpointPath)) continue;
    seen.add(m.pretextInit);
    const { meta, weights } = loadPretextWeights(m.absoluteCheckpointPath);
    candidates.push({ name: m.pretextInit, weights, trained: meta.trained });
  }
  return candidates;
}
