/**
 * Prelabel: masks from the promoted model for a folder (written as PNGs) or for the project's
 * images (stored as proposals with uncertainty, which drive 'label next'). Resumable: what is done
 * is skipped; masks are written atomically. Shardable by relative path.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initEngine } from '../../engine/backend';
import { propose } from '../../engine/infer/propose';
import { loadSegmentationModel, proposalSettings } from '../../engine/train/finetune';
import { writeLabelImage } from '../../imaging/export';
import { scanFolder } from '../../imaging/import';
import { fileSource } from '../../imaging/region';
import type { Project } from '../../store';
import { inShard } from '../data';
import { NEVER_ABORTED, type WorkHooks, type WorkStatus } from '../hooks';

export interface PrelabelOptions {
  /** A folder to prelabel; null: the project's own images. */
  folder?: string | null;
  /** Where the masks of `folder` go (default <folder>-masks). */
  out?: string | null;
  shard?: { index: number; count: number };
  tile?: number;
  /** Only these project images (without a folder). */
  imageIds?: readonly number[];
}

export interface PrelabelResult {
  runId: number;
  status: WorkStatus;
  modelId: number;
  images: number;
  skipped: number;
  megapixelsPerSecond: number;
  seconds: number;
  /** Project images that received a proposal. */
  imageIds: number[];
  /** Images given no mask, and why (unreadable, another channel count than the model's): the others went on. */
  failed: Array<{ file: string; reason: string }>;
}

/** Fails at once, with the reason, when masks cannot be written into `dir`. */
function assertWritable(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    const probe = path.join(dir, `.maskloop-write-test-${process.pid}`);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (error) {
    throw new Error(`cannot write masks into ${dir}: ${(error as Error).message}`);
  }
}

export async function prelabel(project: Project, options: PrelabelOptions, hooks: WorkHooks = {}): Promise<PrelabelResult> {
  const signal = hooks.signal ?? NEVER_ABORTED;
  const shard = options.shard ?? { index: 0, count: 1 };
  const promoted = project.promotedModel();
  if (!promoted) throw new Error('no promoted model: run maskloop train first');
  await initEngine({ log: Boolean(hooks.logBackend) });
  const { model, meta } = loadSegmentationModel(promoted.absoluteCheckpointPath);
  try {
    const folder = options.folder ? path.resolve(options.folder) : null;
    const outDir = folder ? path.resolve(options.out ?? `${folder}-masks`) : null;
    // grey: a file recorded as one channel (grey saved as RGB) is read as one, like the model's training images.
    type Item = { key: string; file: string; imageId?: number; grey: boolean; channels: number };
    // What cannot be prelabeled is found before the first image is computed, not thousands of
    // images in: an output folder that cannot be written, files that are not images, images with
    // another channel count than the model learned from. The rest goes on.
    const failed: PrelabelResult['failed'] = [];
    const fail = (file: string, reason: string) => {
      failed.push({ file, reason });
      hooks.onMessage?.(`no mask for ${file}: ${reason}`, { file, reason });
    };
    if (outDir) assertWritable(outDir);
    const inChannels = model.config.inChannels;
    let items: Item[] = [];
    if (folder) {
      for await (const e of scanFolder(folder)) {
        if (e.kind === 'rejected') fail(e.relativePath, e.message);
        else if (e.kind === 'image') items.push({ key: path.relative(folder, e.path), file: e.path, grey: e.channels === 1, channels: e.channels });
      }
    } else {
      const wanted = options.imageIds ? new Set(options.imageIds) : null;
      items = project.listImages().filter((im) => !wanted || wanted.has(im.id)).map((im) => ({ key: im.path, file: im.absolutePath, imageId: im.id, grey: im.channels === 1, channels: im.channels }));
    }
    items = items.filter((it) => inShard(it.key, shard)).sort((a, b) => a.key.localeCompare(b.key));
    items = items.filter((it) => {
      if (it.channels === inChannels) return true;
      fail(it.key, `it has ${it.channels} channel(s); the model was trained on ${inChannels}`);
      return false;
    });
    const maskPath = (it: Item) => path.join(outDir as string, it.key.replace(/\.[^./\\]+$/, '') + '.png');
    const done = (it: Item) => (outDir ? fs.existsSync(maskPath(it)) : project.listPredictions(it.imageId as number).some((p) => p.modelId === promoted.id));
    const todo = items.filter((it) => !done(it));
    const run = project.startRun({ kind: 'prelabel', config: { folder, out: outDir, shard: `${shard.index}/${shard.count}`, modelId: promoted.id, ...(options.imageIds ? { imageIds: [...options.imageIds] } : {}) }, total: todo.length });
    hooks.onRun?.(run);
    const t0 = performance.now();
    let megapixels = 0;
    let made = 0;
    const proposed: number[] = [];
    try {
      for (const [i, it] of todo.entries()) {
        if (signal.aborted) break;
        let source;
        let proposal;
        try {
          source = await fileSource(it.file, undefined, { minSpans: meta.minSpans, grey: it.grey });
        } catch (error) {
          // A file that changed or broke since it was listed: reported, and the others go on.
          fail(it.key, (error as Error).message);
          continue;
        }
        try {
          proposal = await propose(model, meta.target, source, { ...proposalSettings(meta), tile: options.tile, keepUncertainty: !outDir });
        } finally {
          source.close();
        }
        const mask = proposal.mask;
        if (outDir) {
          const file = maskPath(it);
          fs.mkdirSync(path.dirname(file), { recursive: true });
          // Written beside its final name and renamed: a crash leaves no half mask that a re-run would skip.
          const tmp = `${file}.tmp-${process.pid}.png`;
          await writeLabelImage(tmp, { width: source.width, height: source.height, data: mask instanceof Int32Array ? mask : Uint16Array.from(mask) });
          fs.renameSync(tmp, file);
        } else {
          const uncertainty = { width: source.width, height: source.height, data: proposal.uncertainty as Float32Array };
          project.addPrediction({ imageId: it.imageId as number, modelId: promoted.id, mask: { width: source.width, height: source.height, data: mask }, uncertainty, uncertaintyScore: proposal.score });
          proposed.push(it.imageId as number);
        }
        megapixels += (source.width * source.height) / 1e6;
        made++;
        project.updateRunProgress(run.id, { step: i + 1 });
        const elapsed = (performance.now() - t0) / 1000;
        hooks.onProgress?.({ phase: 'prelabel', step: i + 1, totalSteps: todo.length, loss: proposal.score, smoothedLoss: proposal.score, imagesPerSecond: (i + 1) / elapsed, etaSeconds: (elapsed / (i + 1)) * (todo.length - i - 1), elapsedSeconds: elapsed });
        // Let a cancel message in between images: propose awaits only promises, never a message.
        await new Promise((resolve) => setImmediate(resolve));
      }
      const seconds = (performance.now() - t0) / 1000;
      const status: WorkStatus = signal.aborted ? 'cancelled' : 'completed';
      const result: PrelabelResult = { runId: run.id, status, modelId: promoted.id, images: made, skipped: items.length - todo.length, megapixelsPerSecond: megapixels / Math.max(seconds, 1e-9), seconds, imageIds: proposed, failed };
      project.finishRun(run.id, { status, message: JSON.stringify({ event: 'prelabeled', images: result.images, skipped: result.skipped, failed: failed.length, megapixelsPerSecond: result.megapixelsPerSecond, seconds }) });
      return result;
    } catch (err) {
      project.finishRun(run.id, { status: 'failed', message: (err as Error).message });
      throw err;
    }
  } finally {
    model.dispose();
  }
}
