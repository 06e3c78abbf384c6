/** Data commands of `maskloop`: import images, import existing masks as labels, export labels and proposals. */
import fs from 'node:fs';
import path from 'node:path';
import { decodeImage } from '../imaging/decode';
import { buildCocoDataset, type CocoEntry } from '../imaging/coco';
import { writeCocoJson, writeLabelImage, writeOverlay } from '../imaging/export';
import { importFolder } from '../imaging/import';
import { importMask, importObjectMasks, imageStem, listMaskFolder, matchMasks, type MaskEncoding } from '../imaging/masks';
import { IMAGE_SPLITS, type ImageSplit, type LabelMask } from '../store';
import { EXIT, UsageError, type Command } from './command';
import { createReporter } from './progress';
import { PROJECT_OPTION, openFromOptions } from './projectData';

function splitOption(value: unknown): ImageSplit {
  const split = String(value ?? 'unassigned');
  if (!(IMAGE_SPLITS as readonly string[]).includes(split)) throw new UsageError(`--split must be one of ${IMAGE_SPLITS.join(', ')}`);
  return split as ImageSplit;
}

export const importCommand: Command = {
  name: 'import',
  summary: 'add the images of a folder (recursively) to the project, by reference; unreadable files are listed with reasons',
  usage: 'import <folder> [--split train|val|test|unassigned] [--project <dir>]',
  options: { ...PROJECT_OPTION, split: { type: 'string', default: 'unassigned', description: 'split the new images go to', valueName: 'split' } },
  async run({ values, positionals, json, signal }) {
    const folder = positionals[0];
    if (!folder) throw new UsageError('import needs a folder');
    if (!fs.statSync(folder, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${folder} is not a folder`);
    const split = splitOption(values.split);
    const project = openFromOptions(values);
    const report = createReporter({ json });
    const run = project.startRun({ kind: 'import', config: { folder: path.resolve(folder), split } });
    let added = 0;
    let seen = 0;
    const t0 = performance.now();
    try {
      const summary = await importFolder(
        path.resolve(folder),
        async (entry) => {
          seen++;
          if (entry.kind === 'rejected') {
            report.message(`skipped ${entry.relativePath}: ${entry.message}`, { event: 'rejected', path: entry.path, reason: entry.reason, message: entry.message });
          } else if (entry.kind === 'image') {
            const result = await project.addImage({
              path: entry.path, width: entry.width, height: entry.height, channels: entry.channels, bitDepth: entry.bitDepth,
              pages: entry.pages, format: entry.format, split, fingerprint: { contentHash: entry.sha256, byteSize: entry.size, mtimeMs: entry.mtimeMs },
            });
            if (result.added) added++;
          }
          if (seen % 10 === 0) project.updateRunProgress(run.id, { step: seen });
          const elapsed = (performance.now() - t0) / 1000;
          report.training({ phase: 'import', step: seen, totalSteps: Math.max(seen, 1), loss: 0, smoothedLoss: 0, imagesPerSecond: seen / elapsed, etaSeconds: NaN, elapsedSeconds: elapsed });
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
      report.done();
      const message = `${added} image(s) added, ${summary.skipped} already present, ${summary.rejected} rejected, ${(summary.images / Math.max(summary.seconds, 1e-9)).toFixed(1)} images/s`;
      project.finishRun(run.id, { status: signal.aborted ? 'cancelled' : 'completed', message });
      console.log(json ? JSON.stringify({ event: 'imported', added, ...summary }) : message);
      return signal.aborted ? EXIT.cancelled : EXIT.ok;
    } catch (err) {
      project.finishRun(run.id, { status: 'failed', message: (err as Error).message });
      throw err;
    } finally {
      project.close();
    }
  },
};

export const labelsCommand: Command = {
  name: 'labels',
  summary: 'labels import <mask-folder>: existing masks (binary, instance label images, per-object masks, graph-coloured) as labels',
  usage: 'labels import <mask-folder> [--encoding auto|binary|labels|graph-coloured|colour-ids] [--invert] [--target semantic|instance] [--project <dir>]',
  options: {
    ...PROJECT_OPTION,
    encoding: { type: 'string', default: 'auto', description: 'how the masks encode objects', valueName: 'encoding' },
    invert: { type: 'boolean', description: 'binary masks whose zero is the foreground (e.g. ISBI membranes)' },
    target: { type: 'string', default: 'instance', description: "'instance' keeps object ids; 'semantic' stores foreground = 1", valueName: 'kind' },
  },
  async run({ values, positionals, json }) {
    const [action, folder] = positionals;
    if (action !== 'import' || !folder) throw new UsageError('usage: maskloop labels import <mask-folder>');
    const encoding = String(values.encoding) as MaskEncoding | 'auto';
    const project = openFromOptions(values);
    try {
      const images = project.listImages();
      const { masks, folders } = await listMaskFolder(path.resolve(folder));
      const byPath = new Map(images.map((im) => [im.absolutePath, im]));
      const match = matchMasks([...byPath.keys()], masks, folders);
      let imported = 0;
      for (const pair of match.pairs) {
        const image = byPath.get(pair.image);
        if (!image) continue;
        const mask = pair.kind === 'object-folder' ? await importObjectMasks(pair.mask, { invert: Boolean(values.invert) }) : await importMask(pair.mask, { encoding, invert: Boolean(values.invert) });
        if (mask.labels.width !== image.width || mask.labels.height !== image.height) {
          console.error(`maskloop: ${pair.mask} is ${mask.labels.width}x${mask.labels.height}, its image ${image.width}x${image.height}: skipped`);
          continue;
        }
        const data = values.target === 'semantic' ? Uint8Array.from(mask.labels.data, (v) => (v > 0 ? 1 : 0)) : mask.maxId <= 65535 ? Uint16Array.from(mask.labels.data) : mask.labels.data;
        project.addLabelVersion({ imageId: image.id, mask: { width: image.width, height: image.height, data }, source: 'imported', author: `import:${path.basename(pair.mask)}` });
        imported++;
      }
      const summary = { event: 'labels-imported', imported, unmatchedMasks: match.unmatchedMasks.length, ambiguous: match.ambiguous.length };
      console.log(json ? JSON.stringify(summary) : `${imported} label(s) imported; ${summary.unmatchedMasks} mask(s) matched no image; ${summary.ambiguous} ambiguous`);
    } finally {
      project.close();
    }
  },
};

export const exportCommand: Command = {
  name: 'export',
  summary: 'write labels or proposals as 8/16-bit label images (PNG/TIFF), COCO JSON with RLE masks, or overlay PNGs',
  usage: 'export --out <dir> [--format png|tiff|coco|overlay] [--what labels|proposals] [--project <dir>]',
  options: {
    ...PROJECT_OPTION,
    out: { type: 'string', description: 'output folder', valueName: 'dir' },
    format: { type: 'string', default: 'png', description: 'png, tiff, coco or overlay', valueName: 'format' },
    what: { type: 'string', default: 'labels', description: "'labels' (latest version) or 'proposals' (promoted model's)", valueName: 'what' },
  },
  async run({ values, json }) {
    if (typeof values.out !== 'string') throw new UsageError('export needs --out <dir>');
    const format = String(values.format);
    if (!['png', 'tiff', 'coco', 'overlay'].includes(format)) throw new UsageError('--format must be png, tiff, coco or overlay');
    const outDir = path.resolve(values.out);
    fs.mkdirSync(outDir, { recursive: true });
    const project = openFromOptions(values);
    try {
      const promoted = project.promotedModel();
      if (values.what === 'proposals' && !promoted) throw new Error('no promoted model, so no proposals to export');
      const coco: CocoEntry[] = [];
      let written = 0;
      for (const image of project.listImages()) {
        let mask: LabelMask | null = null;
        if (values.what === 'proposals') mask = project.getPrediction(image.id, promoted?.id)?.mask ?? null;
        else mask = project.latestLabel(image.id)?.mask ?? null;
        if (!mask) continue;
        const stem = imageStem(image.path).replace(/[\\/]/g, '_');
        // Label images hold 16- or 32-bit ids; the writer still picks 8 bits when the ids fit.
        const labels = { width: mask.width, height: mask.height, data: mask.data instanceof Uint8Array ? Uint16Array.from(mask.data) : mask.data };
        if (format === 'coco') coco.push({ image: { id: image.id, file_name: image.path, width: image.width, height: image.height }, labels });
        else if (format === 'overlay') await writeOverlay(path.join(outDir, `${stem}-overlay.png`), await decodeImage(image.absolutePath), labels);
        else await writeLabelImage(path.join(outDir, `${stem}.${format === 'tiff' ? 'tif' : 'png'}`), labels);
        written++;
      }
      if (format === 'coco') await writeCocoJson(path.join(outDir, 'annotations.json'), buildCocoDataset(coco));
      console.log(json ? JSON.stringify({ event: 'exported', images: written, format, out: outDir }) : `exported ${written} image(s) as ${format} to ${outDir}`);
    } finally {
      project.close();
    }
  },
};
