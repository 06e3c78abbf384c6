/**
 * Export: labels or proposals as 8/16-bit label images (PNG/TIFF), COCO JSON with RLE masks, or
 * overlay PNGs. Nothing the annotator stored is dropped on the way out:
 * - a mask of class ids (uint8) stays class ids, a mask of objects (uint16/int32) stays object ids;
 * - pixels left unknown (the unknown brush: not labeled, neither object nor background) go to a
 *   separate `<stem>_unknown.png|tif` (255 = unknown) beside the label image, and to one COCO
 *   annotation per image in the category 'unknown' with iscrowd 1, which COCO evaluation and the
 *   common training loaders ignore rather than learn as background;
 * - COCO has one annotation per object: per object id, or per connected region of one class in a
 *   class mask, in the category named after the project's class;
 * - COCO `file_name`s are relative to the folder of the JSON, so the export folder can be moved
 *   with the images beside it.
 * The folder gets a README.txt that says what the values mean.
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildCocoDataset, labelsToCocoAnnotations, type CocoAnnotation, type CocoCategory, type CocoEntry } from '../../imaging/coco';
import { decodeImage } from '../../imaging/decode';
import { writeCocoJson, writeLabelImage, writeOverlay } from '../../imaging/export';
import { labelRegions } from '../../imaging/instances';
import { imageStem } from '../../imaging/masks';
import type { LabelImage } from '../../imaging/types';
import type { LabelMask, Project } from '../../store';

export const EXPORT_FORMATS = ['png', 'tiff', 'coco', 'overlay'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  out: string;
  format: ExportFormat;
  what: 'labels' | 'proposals';
}

/** The name of the COCO category and of the separate mask for unknown pixels. */
export const UNKNOWN_NAME = 'unknown';

/** A stored mask as export sees it: class ids, or object ids that all belong to the first class. */
function exportedLabels(mask: LabelMask): { labels: LabelImage; objects: boolean } {
  // Label images hold 16- or 32-bit ids; the writer still picks 8 bits when the ids fit.
  const { data } = mask;
  return { labels: { width: mask.width, height: mask.height, data: data instanceof Uint8Array ? Uint16Array.from(data) : data }, objects: !(data instanceof Uint8Array) };
}

/** One annotation per object: object ids as they are, a class mask split into connected regions of one class. */
function cocoObjects(labels: LabelImage, objects: boolean): { labels: LabelImage; classOf: (id: number) => number } {
  if (objects) return { labels, classOf: () => 1 };
  const regions = labelRegions(labels.data, labels.width, labels.height, 4);
  const classOfRegion = new Int32Array(regions.count + 1);
  for (let i = 0; i < regions.labels.length; i++) if (regions.labels[i]) classOfRegion[regions.labels[i]] = labels.data[i];
  return { labels: { width: labels.width, height: labels.height, data: regions.labels }, classOf: (id) => classOfRegion[id] };
}

function readme(options: ExportOptions, classNames: string[], anyObjects: boolean, unknownImages: number): string {
  const classes = classNames.map((name, i) => `  ${i + 1} = ${name}`).join('\n');
  const lines = [
    `maskloop export: ${options.what}, format ${options.format}, ${new Date().toISOString()}`,
    '',
    options.format === 'coco'
      ? 'annotations.json: COCO instances with RLE masks; one annotation per object, category = class; file_name is relative to this folder.'
      : 'One label image per image, single channel, values are ids (no colour map):',
    options.format === 'coco' ? '' : '  0 = background',
    options.format === 'coco' ? '' : `  class masks: the class id\n${classes}`,
    options.format === 'coco' || !anyObjects ? '' : `  object masks: the object id (1, 2, 3, ...), every object of class 1 (${classNames[0]})`,
    unknownImages
      ? options.format === 'coco'
        ? `Pixels left unlabeled in ${unknownImages} image(s) are one annotation per image in category '${UNKNOWN_NAME}' with iscrowd 1: ignore them when training or scoring.`
        : `Pixels left unlabeled in ${unknownImages} image(s) are 255 in <name>_${UNKNOWN_NAME}.${options.format === 'tiff' ? 'tif' : 'png'} (0 elsewhere) and 0 in the label image: ignore them when training or scoring.`
      : 'Every pixel is labeled (no unknown pixels).',
    options.format === 'png' ? 'Viewers show small ids as near black: in Fiji use Image > Adjust > Brightness/Contrast > Auto, or export TIFF (opens with its display range set).' : '',
  ];
  return `${lines.filter((l) => l !== '').join('\n')}\n`;
}

export async function exportMasks(project: Project, options: ExportOptions): Promise<{ images: number; out: string; format: ExportFormat }> {
  const outDir = path.resolve(options.out);
  fs.mkdirSync(outDir, { recursive: true });
  const promoted = project.promotedModel();
  if (options.what === 'proposals' && !promoted) throw new Error('no promoted model, so no proposals to export');
  const classNames = project.getSetting('classNames');
  const coco: CocoEntry[] = [];
  const unknownAnnotations: Omit<CocoAnnotation, 'id'>[] = [];
  const classOfObject = new Map<number, (id: number) => number>();
  let maxClass = classNames.length;
  let anyObjects = false;
  let unknownImages = 0;
  let written = 0;
  for (const image of project.listImages()) {
    let mask: LabelMask | null = null;
    let unknown: Uint8Array | null = null;
    if (options.what === 'proposals') mask = project.getPrediction(image.id, promoted?.id)?.mask ?? null;
    else {
      const label = project.latestLabel(image.id);
      mask = label?.mask ?? null;
      unknown = label?.unknown ?? null;
    }
    if (!mask) continue;
    const { labels, objects } = exportedLabels(mask);
    anyObjects ||= objects;
    if (unknown) unknownImages++;
    const stem = imageStem(image.path).replace(/[\\/]/g, '_');
    if (options.format === 'coco') {
      const { labels: objectLabels, classOf } = cocoObjects(labels, objects);
      if (!objects) for (const id of labels.data) if (id > maxClass) maxClass = id;
      classOfObject.set(image.id, classOf);
      coco.push({ image: { id: image.id, file_name: path.relative(outDir, image.absolutePath).split(path.sep).join('/'), width: image.width, height: image.height }, labels: objectLabels });
      if (unknown) {
        // One region per image: its category is known once every class has been seen.
        for (const { id: _id, label_id: _labelId, ...region } of labelsToCocoAnnotations({ width: image.width, height: image.height, data: Uint16Array.from(unknown, (v) => (v ? 1 : 0)) }, { imageId: image.id })) {
          unknownAnnotations.push({ ...region, iscrowd: 1 });
        }
      }
    } else if (options.format === 'overlay') {
      await writeOverlay(path.join(outDir, `${stem}-overlay.png`), await decodeImage(image.absolutePath), labels);
    } else {
      const extension = options.format === 'tiff' ? 'tif' : 'png';
      await writeLabelImage(path.join(outDir, `${stem}.${extension}`), labels);
      if (unknown) {
        const flags = Uint16Array.from(unknown, (v) => (v ? 255 : 0));
        await writeLabelImage(path.join(outDir, `${stem}_${UNKNOWN_NAME}.${extension}`), { width: image.width, height: image.height, data: flags });
      }
    }
    written++;
  }
  if (options.format === 'coco') {
    const names = Array.from({ length: maxClass }, (_, i) => classNames[i] ?? `class ${i + 1}`);
    const categories: CocoCategory[] = names.map((name, i) => ({ id: i + 1, name, supercategory: 'object' }));
    const unknownCategory = maxClass + 1;
    if (unknownAnnotations.length) categories.push({ id: unknownCategory, name: UNKNOWN_NAME, supercategory: UNKNOWN_NAME });
    const dataset = buildCocoDataset(coco, { categories, categoryOf: (imageId, id) => classOfObject.get(imageId)!(id), info: { description: `maskloop ${options.what}` } });
    for (const a of unknownAnnotations) dataset.annotations.push({ ...a, id: dataset.annotations.length + 1, category_id: unknownCategory });
    await writeCocoJson(path.join(outDir, 'annotations.json'), dataset);
  }
  fs.writeFileSync(path.join(outDir, 'README.txt'), readme(options, classNames, anyObjects, unknownImages));
  return { images: written, out: outDir, format: options.format };
}
