/** Data commands of `maskloop`: import images, import existing masks as labels, export labels and proposals. */
import fs from 'node:fs';
import path from 'node:path';
import { importMask, importObjectMasks, listMaskFolder, matchMasks, type MaskEncoding } from '../imaging/masks';
import { EXPORT_FORMATS, exportMasks, type ExportFormat } from '../jobs/workflows/exportMasks';
import { importImages } from '../jobs/workflows/importImages';
import { IMAGE_SPLITS, type ImageSplit } from '../store';
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
    try {
      const result = await importImages(project, { folder: path.resolve(folder), split }, {
        signal,
        onProgress: (p) => report.training(p),
        onMessage: (text, fields) => report.message(text, fields),
      });
      report.done();
      const { runId: _runId, status: _status, message, ...summary } = result;
      console.log(json ? JSON.stringify({ event: 'imported', ...summary }) : message);
      return result.status === 'cancelled' ? EXIT.cancelled : EXIT.ok;
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
    if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw new UsageError('--format must be png, tiff, coco or overlay');
    const project = openFromOptions(values);
    try {
      const result = await exportMasks(project, { out: values.out, format: format as ExportFormat, what: values.what === 'proposals' ? 'proposals' : 'labels' });
      console.log(json ? JSON.stringify({ event: 'exported', ...result }) : `exported ${result.images} image(s) as ${format} to ${result.out}`);
    } finally {
      project.close();
    }
  },
};
