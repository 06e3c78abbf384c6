/** Import: the images of a folder (recursively) into the project, by reference; unreadable files reported with reasons. */
import path from 'node:path';
import { importFolder, type ScanSummary } from '../../imaging/import';
import type { ImageSplit, Project } from '../../store';
import { NEVER_ABORTED, type WorkHooks, type WorkStatus } from '../hooks';

export interface ImportOptions {
  folder: string;
  split: ImageSplit;
}

export interface ImportResult extends ScanSummary {
  runId: number;
  status: WorkStatus;
  added: number;
  message: string;
}

export async function importImages(project: Project, options: ImportOptions, hooks: WorkHooks = {}): Promise<ImportResult> {
  const signal = hooks.signal ?? NEVER_ABORTED;
  const folder = path.resolve(options.folder);
  const run = project.startRun({ kind: 'import', config: { folder, split: options.split } });
  hooks.onRun?.(run);
  let added = 0;
  let seen = 0;
  let mismatched = 0;
  // One channel count per project, set by its first image: the network's input has one width. A
  // file that differs is refused here, with the reason, not minutes into a pretraining.
  let projectChannels: number | null = project.listImages({ limit: 1 })[0]?.channels ?? null;
  const t0 = performance.now();
  try {
    const summary = await importFolder(
      folder,
      async (entry) => {
        seen++;
        if (entry.kind === 'rejected') {
          hooks.onMessage?.(`skipped ${entry.relativePath}: ${entry.message}`, { event: 'rejected', path: entry.path, reason: entry.reason, message: entry.message });
        } else if (entry.kind === 'image' && projectChannels !== null && entry.channels !== projectChannels) {
          mismatched++;
          const message = `it has ${entry.channels} channel(s) and this project's images have ${projectChannels} (set by its first image): import it into a project of its own`;
          hooks.onMessage?.(`skipped ${entry.relativePath}: ${message}`, { event: 'rejected', path: entry.path, reason: 'unsupported', message });
        } else if (entry.kind === 'image') {
          projectChannels ??= entry.channels;
          const result = await project.addImage({
            path: entry.path, width: entry.width, height: entry.height, channels: entry.channels, bitDepth: entry.bitDepth,
            pages: entry.pages, format: entry.format, split: options.split, fingerprint: { contentHash: entry.sha256, byteSize: entry.size, mtimeMs: entry.mtimeMs },
          });
          if (result.added) added++;
        }
        if (seen % 10 === 0) project.updateRunProgress(run.id, { step: seen });
        const elapsed = (performance.now() - t0) / 1000;
        // The total is unknown while the folder is walked: the step count is all there is.
        hooks.onProgress?.({ phase: 'import', step: seen, totalSteps: Math.max(seen, 1), loss: 0, smoothedLoss: 0, imagesPerSecond: seen / elapsed, etaSeconds: NaN, elapsedSeconds: elapsed });
      },
      {
        signal,
        // Resuming: a file already in the project with the same size and mtime is not read again.
        skip: (file) => {
          const known = project.findImageByPath(file.path);
          return known !== null && known.byteSize === file.size && known.mtimeMs === file.mtimeMs;
        },
      },
    );
    const message = `${added} image(s) added, ${summary.skipped} already present, ${summary.rejected + mismatched} rejected${mismatched ? ` (${mismatched} for their channel count)` : ''}, ${(summary.images / Math.max(summary.seconds, 1e-9)).toFixed(1)} images/s`;
    const status: WorkStatus = signal.aborted ? 'cancelled' : 'completed';
    project.updateRunProgress(run.id, { step: seen, total: seen });
    project.finishRun(run.id, { status, message });
    return { ...summary, rejected: summary.rejected + mismatched, runId: run.id, status, added, message };
  } catch (err) {
    project.finishRun(run.id, { status: 'failed', message: (err as Error).message });
    throw err;
  }
}
