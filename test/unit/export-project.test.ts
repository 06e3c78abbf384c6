/**
 * Export of a project's labels, read back in every format: class masks and object masks keep
 * their ids, unknown pixels come out as their own mask (PNG/TIFF) or an ignored COCO region, COCO
 * has one annotation per object under the class's name with file names relative to the JSON.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cocoToLabels, decodeRle, type CocoDataset } from '../../src/imaging/coco';
import { decodeImage } from '../../src/imaging/decode';
import { bufferSource, parseTiff } from '../../src/imaging/tiff';
import { exportMasks } from '../../src/jobs/workflows/exportMasks';
import { createProject, type Project } from '../../src/store';

const W = 40;
const H = 30;
const scratch = mkdtempSync(path.join(tmpdir(), 'maskloop-export-project-'));
let project: Project;
const classMask = new Uint8Array(W * H);
const unknown = new Uint8Array(W * H);
const objectMask = new Int32Array(W * H);
let classImage = 0;
let objectImage = 0;

/** Two separate nuclei (class 1), one debris blob (class 2), a strip left unknown. */
function fillClassMask() {
  for (let y = 2; y < 8; y++) for (let x = 2; x < 8; x++) classMask[y * W + x] = 1;
  for (let y = 2; y < 8; y++) for (let x = 20; x < 26; x++) classMask[y * W + x] = 1;
  for (let y = 15; y < 20; y++) for (let x = 10; x < 14; x++) classMask[y * W + x] = 2;
  for (let x = 0; x < W; x++) unknown[28 * W + x] = 1;
}

beforeAll(async () => {
  fillClassMask();
  for (let y = 5; y < 10; y++) for (let x = 5; x < 10; x++) objectMask[y * W + x] = 3;
  for (let y = 5; y < 10; y++) for (let x = 10; x < 15; x++) objectMask[y * W + x] = 700;
  const dir = path.join(scratch, 'project');
  project = createProject(dir, { name: 'export' });
  project.setSetting('classNames', ['nucleus', 'debris']);
  const images = path.join(scratch, 'images');
  const ids: number[] = [];
  for (const name of ['a.png', 'b.png']) {
    const file = path.join(images, name);
    mkdirSync(images, { recursive: true });
    await sharp(new Uint8Array(W * H).fill(90), { raw: { width: W, height: H, channels: 1 } }).png().toFile(file);
    ids.push((await project.addImage({ path: file, width: W, height: H, channels: 1, bitDepth: 8, format: 'png' })).image.id);
  }
  [classImage, objectImage] = ids;
  project.addLabelVersion({ imageId: classImage, mask: { width: W, height: H, data: classMask }, unknown, source: 'manual' });
  project.addLabelVersion({ imageId: objectImage, mask: { width: W, height: H, data: objectMask }, source: 'manual' });
});

afterAll(() => {
  project?.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe('exporting a project', () => {
  it('PNG and TIFF keep the ids and write unknown pixels to their own mask', async () => {
    for (const format of ['png', 'tiff'] as const) {
      const out = path.join(scratch, `out-${format}`);
      expect((await exportMasks(project, { out, format, what: 'labels' })).images).toBe(2);
      const ext = format === 'png' ? 'png' : 'tif';
      const labels = await decodeImage(path.join(out, `a.${ext}`));
      expect(Array.from(labels.data)).toEqual(Array.from(classMask));
      const flags = await decodeImage(path.join(out, `a_unknown.${ext}`));
      expect(Array.from(flags.data)).toEqual(Array.from(unknown, (v) => v * 255));
      const objects = await decodeImage(path.join(out, `b.${ext}`));
      expect(Array.from(objects.data)).toEqual(Array.from(objectMask));
      const readme = readFileSync(path.join(out, 'README.txt'), 'utf8');
      expect(readme).toContain('2 = debris');
      expect(readme).toContain(`_unknown.${ext}`);
    }
    // Fiji opens the TIFF with its display range set to the ids, not black.
    const tiff = parseTiff(bufferSource(readFileSync(path.join(scratch, 'out-tiff', 'a.tif'))));
    expect(tiff.pages[0].description).toMatch(/^ImageJ=.*\nmin=0\nmax=2\n/s);
  });

  it('COCO: one annotation per object under its class name, unknown as an ignored region, file names relative to the JSON', async () => {
    const out = path.join(scratch, 'out-coco');
    await exportMasks(project, { out, format: 'coco', what: 'labels' });
    const dataset = JSON.parse(readFileSync(path.join(out, 'annotations.json'), 'utf8')) as CocoDataset;
    expect(dataset.categories.map((c) => [c.id, c.name])).toEqual([[1, 'nucleus'], [2, 'debris'], [3, 'unknown']]);
    for (const image of dataset.images) {
      expect(path.isAbsolute(image.file_name)).toBe(false);
      expect(readFileSync(path.resolve(out, image.file_name)).length).toBeGreaterThan(0);
    }
    const ofClassImage = dataset.annotations.filter((a) => a.image_id === classImage);
    // Two nuclei, one debris, one unknown region.
    expect(ofClassImage.map((a) => [a.category_id, a.iscrowd, a.area])).toEqual([[1, 0, 36], [1, 0, 36], [2, 0, 20], [3, 1, W]]);
    expect(ofClassImage[0].bbox).toEqual([2, 2, 6, 6]);
    expect(Array.from(decodeRle(ofClassImage[3].segmentation))).toEqual(Array.from(unknown));
    const objects = dataset.annotations.filter((a) => a.image_id === objectImage);
    expect(objects.map((a) => [a.category_id, a.label_id, a.area])).toEqual([[1, 3, 25], [1, 700, 25]]);
    expect(Array.from(cocoToLabels({ ...dataset, annotations: objects }, objectImage).data)).toEqual(Array.from(objectMask));
  });
});
