/**
 * What the command line reads from and writes to a project: opening it from --project, decoding
 * its images into the engine's input contract, and turning stored labels into training labels.
 */
import path from 'node:path';
import { UNKNOWN, type LabeledImage } from '../engine/data';
import { instanceLabels, labeled, prepareImage, type PreparedImage } from '../engine/input';
import type { SegmentationTarget } from '../engine/train/finetune';
import { decodeImage } from '../imaging/decode';
import { openProject, type ImageRecord, type ImageSplit, type LabelVersion, type Project } from '../store';
import { UsageError, type CommandContext, type OptionSpec } from './command';

export const PROJECT_OPTION: Record<string, OptionSpec> = {
  project: { type: 'string', short: 'p', default: '.', description: 'project folder', valueName: 'dir' },
};

export function openFromOptions(values: CommandContext['values']): Project {
  const dir = path.resolve(String(values.project ?? '.'));
  return openProject(dir);
}

export async function loadImage(record: ImageRecord): Promise<PreparedImage> {
  return prepareImage(await decodeImage(record.absolutePath));
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

export async function loadLabeled(project: Project, splits: ImageSplit[], target: SegmentationTarget): Promise<LabeledSet> {
  const images: LabeledImage[] = [];
  const records: ImageRecord[] = [];
  for (const { image } of project.labeledImages({ split: splits })) {
    const label = project.latestLabel(image.id);
    if (!label) continue;
    const pixels = await loadImage(image);
    if (label.mask.width !== pixels.width || label.mask.height !== pixels.height) {
      throw new Error(`label of ${image.path} is ${label.mask.width}x${label.mask.height}, the image ${pixels.width}x${pixels.height}`);
    }
    images.push(labeled(pixels, trainingLabels(label, target)));
    records.push(image);
  }
  return { images, records };
}

/** --target: 'semantic' (one foreground class), 'semantic:K' (K classes) or 'instance'. */
export function parseTarget(value: unknown): SegmentationTarget {
  if (value === 'instance') return { kind: 'instance' };
  const m = /^semantic(?::(\d+))?$/.exec(String(value ?? 'semantic'));
  if (!m) throw new UsageError(`--target must be 'semantic', 'semantic:<classes>' or 'instance', got '${value}'`);
  return { kind: 'semantic', classes: m[1] ? Number(m[1]) : 1 };
}

/** `--shard i/N`, else a SLURM array or a Kubernetes indexed Job, else the whole set. */
export function resolveShard(value: unknown, env: NodeJS.ProcessEnv = process.env): { index: number; count: number } {
  if (typeof value === 'string') {
    const m = /^(\d+)\/(\d+)$/.exec(value);
    if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new UsageError(`--shard must be i/N with 0 ≤ i < N, got '${value}'`);
    return { index: Number(m[1]), count: Number(m[2]) };
  }
  if (env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_COUNT !== undefined) {
    const min = Number(env.SLURM_ARRAY_TASK_MIN ?? 0);
    return { index: Number(env.SLURM_ARRAY_TASK_ID) - min, count: Number(env.SLURM_ARRAY_TASK_COUNT) };
  }
  if (env.JOB_COMPLETION_INDEX !== undefined && env.MASKLOOP_SHARD_COUNT !== undefined) {
    return { index: Number(env.JOB_COMPLETION_INDEX), count: Number(env.MASKLOOP_SHARD_COUNT) };
  }
  return { index: 0, count: 1 };
}

/**
 * Deterministic shard membership from the relative path alone, so every machine of an array
 * computes the same split of a folder without talking to the others.
 */
export function inShard(relativePath: string, shard: { index: number; count: number }): boolean {
  if (shard.count === 1) return true;
  let h = 2166136261;
  for (let i = 0; i < relativePath.length; i++) {
    h ^= relativePath.charCodeAt(i);
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h % shard.count === shard.index;
}
