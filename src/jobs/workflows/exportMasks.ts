/** Export: labels or proposals as 8/16-bit label images (PNG/TIFF), COCO JSON with RLE masks, or overlay PNGs. */
import fs from 'node:fs';
import path from 'node:path';
import { buildCocoDataset, type CocoEntry } from '../../imaging/coco';
import { decodeImage } from '../../imaging/decode';
import { writeCocoJson, writeLabelImage, writeOverlay } from '../../imaging/export';
import { imageStem } from '../../imaging/masks';
import type { LabelMask, Project } from '../../store';

export const EXPORT_FORMATS = ['png', 'tiff', 'coco', 'overlay'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  out: string;
  format: ExportFormat;
  what: 'labels' | 'proposals';
}

export async function exportMasks(project: Project, options: ExportOptions): Promise<{ images: number; out: string; format: ExportFormat }> {
  const outDir = path.resolve(options.out);
  fs.mkdirSync(outDir, { recursive: true });
  const promoted = project.promotedModel();
  if (options.what === 'proposals' && !promoted) throw new Error('no promoted model, so no proposals to export');
  const coco: CocoEntry[] = [];
  let written = 0;
  for (const image of project.listImages()) {
    let mask: LabelMask | null = null;
    if (options.what === 'proposals') mask = project.getPrediction(image.id, promoted?.id)?.mask ?? null;
    else mask = project.latestLabel(image.id)?.mask ?? null;
    if (!mask) continue;
    const stem = imageStem(image.path).replace(/[\\/]/g, '_');
    // Label images hold 16- or 32-bit ids; the writer still picks 8 bits when the ids fit.
    const labels = { width: mask.width, height: mask.height, data: mask.data instanceof Uint8Array ? Uint16Array.from(mask.data) : mask.data };
    if (options.format === 'coco') coco.push({ image: { id: image.id, file_name: image.path, width: image.width, height: image.height }, labels });
    else if (options.format === 'overlay') await writeOverlay(path.join(outDir, `${stem}-overlay.png`), await decodeImage(image.absolutePath), labels);
    else await writeLabelImage(path.join(outDir, `${stem}.${options.format === 'tiff' ? 'tif' : 'png'}`), labels);
    written++;
  }
  if (options.format === 'coco') await writeCocoJson(path.join(outDir, 'annotations.json'), buildCocoDataset(coco));
  return { images: written, out: outDir, format: options.format };
}
