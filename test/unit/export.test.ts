import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import {
  buildCocoDataset,
  cocoToLabels,
  decodeRle,
  encodeRle,
  labelsToCocoAnnotations,
  rleCountsFromString,
  rleCountsToString,
  type CocoDataset,
} from '../../src/imaging/coco';
import { decodeImage } from '../../src/imaging/decode';
import { encodeLabelImage, labelColour, labelBitDepth, overlayPng, renderOverlay, writeCocoJson, writeLabelImage } from '../../src/imaging/export';
import { importMask } from '../../src/imaging/masks';
import { syntheticNuclei } from '../../src/imaging/synthetic';
import { parseTiff, bufferSource } from '../../src/imaging/tiff';
import type { LabelImage } from '../../src/imaging/types';

const scratch = mkdtempSync(join(tmpdir(), 'maskloop-export-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const sample = syntheticNuclei({ width: 150, height: 110, seed: 11, objects: 25 });
const { width, height } = sample.image;

function labelsWithMax(max: number): LabelImage {
  const data = new Int32Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = sample.instances[i] ? Math.min(max, sample.instances[i] * Math.floor(max / sample.count)) : 0;
  data[data.length - 1] = max;
  return { width, height, data };
}

describe('label image export', () => {
  it('round-trips ids exactly through PNG and TIFF at 8 and 16 bits (and TIFF at 32)', async () => {
    const cases: [LabelImage, 8 | 16 | 32][] = [
      [labelsWithMax(255), 8],
      [labelsWithMax(65535), 16],
      [labelsWithMax(1_000_000), 32],
    ];
    for (const [labels, depth] of cases) {
      expect(labelBitDepth(labels, 'auto', 'tiff')).toBe(depth);
      const formats = depth === 32 ? (['tiff'] as const) : (['png', 'tiff'] as const);
      for (const format of formats) {
        for (const compression of ['none', 'deflate'] as const) {
          const path = join(scratch, `labels-${depth}-${compression}.${format === 'png' ? 'png' : 'tif'}`);
          await writeLabelImage(path, labels, { compression });
          const back = await importMask(path, { encoding: 'labels' });
          expect(Array.from(back.labels.data), `${format} ${depth}`).toEqual(Array.from(labels.data));
          if (depth !== 32) {
            const auto = await importMask(path);
            expect(auto.encoding).toBe('labels');
            expect(Array.from(auto.labels.data)).toEqual(Array.from(labels.data));
          }
        }
      }
    }
  });

  it('writes plain single-channel integer images: no palette, no alpha, no colour profile', async () => {
    const png8 = await encodeLabelImage(labelsWithMax(200), 'png');
    const png16 = await encodeLabelImage(labelsWithMax(4000), 'png');
    for (const [bytes, depth] of [[png8, 8], [png16, 16]] as const) {
      // IHDR: bit depth at byte 24, colour type at byte 25 (0 = greyscale; 3 would be a palette).
      expect(bytes[24]).toBe(depth);
      expect(bytes[25]).toBe(0);
      expect(bytes.includes(Buffer.from('PLTE'))).toBe(false);
      expect(bytes.includes(Buffer.from('iCCP'))).toBe(false);
      const meta = await sharp(bytes).metadata();
      expect(meta).toMatchObject({ channels: 1, isPalette: false, hasAlpha: false, depth: depth === 8 ? 'uchar' : 'ushort' });
    }
    const tiff = await encodeLabelImage(labelsWithMax(4000), 'tiff');
    const page = parseTiff(bufferSource(tiff)).pages[0];
    expect(page).toMatchObject({ samplesPerPixel: 1, bitsPerSample: [16], photometric: 1, sampleFormat: 1, compression: 8 });
    expect(await sharp(tiff).metadata()).toMatchObject({ channels: 1, depth: 'ushort' });
  });

  it('refuses ids that do not fit', async () => {
    await expect(encodeLabelImage(labelsWithMax(300), 'png', { bitDepth: 8 })).rejects.toThrow(/does not fit in 8 bits/);
    await expect(encodeLabelImage(labelsWithMax(70000), 'png')).rejects.toThrow(/PNG holds at most 16 bits/);
    await expect(writeLabelImage(join(scratch, 'x.bmp'), labelsWithMax(3))).rejects.toThrow(/format/);
  });
});

describe('COCO RLE', () => {
  it('encodes column-major runs starting with zeros, as pycocotools does', () => {
    // 3 rows x 4 columns; column-major order visits (0,0),(1,0),(2,0),(0,1),...
    const mask = [
      0, 1, 1, 0,
      0, 1, 0, 0,
      1, 1, 0, 1,
    ];
    expect(encodeRle(mask, 4, 3)).toEqual({ size: [3, 4], counts: [2, 5, 4, 1] });
    expect(encodeRle([1, 1, 1, 1], 2, 2).counts).toEqual([0, 4]);
    expect(encodeRle([0, 0, 0, 0], 2, 2).counts).toEqual([4]);
    expect(Array.from(decodeRle({ size: [3, 4], counts: [2, 5, 4, 1] }))).toEqual(mask);
  });

  it('reads and writes the compressed string form', () => {
    expect(rleCountsToString([0, 5])).toBe('05');
    expect(rleCountsToString([3, 40, 2, 7])).toBe('3X12oN');
    expect(rleCountsFromString('3X12oN')).toEqual([3, 40, 2, 7]);
    const counts = [123456, 1, 987654, 3, 0, 70000, 5, 2 ** 30];
    expect(rleCountsFromString(rleCountsToString(counts))).toEqual(counts);
  });

  it('round-trips instance labels through COCO annotations exactly, with bbox and area', async () => {
    const labels: LabelImage = { width, height, data: sample.instances };
    for (const compressed of [false, true]) {
      const dataset = buildCocoDataset([{ image: { id: 7, file_name: 'a.tif', width, height }, labels }], { compressed });
      expect(dataset.annotations.length).toBe(sample.count);
      const json = JSON.parse(JSON.stringify(dataset)) as CocoDataset;
      const back = cocoToLabels(json, 7);
      expect(Array.from(back.data)).toEqual(Array.from(sample.instances));
      for (const a of json.annotations) {
        const mask = decodeRle(a.segmentation);
        const id = a.label_id!;
        let area = 0;
        let x0 = Infinity;
        let y0 = Infinity;
        let x1 = -1;
        let y1 = -1;
        let wrong = 0;
        for (let i = 0; i < mask.length; i++) {
          if (mask[i] !== (sample.instances[i] === id ? 1 : 0)) wrong++;
          if (!mask[i]) continue;
          area++;
          const x = i % width;
          const y = (i - x) / width;
          x0 = Math.min(x0, x);
          x1 = Math.max(x1, x);
          y0 = Math.min(y0, y);
          y1 = Math.max(y1, y);
        }
        expect(wrong).toBe(0);
        expect(a.area).toBe(area);
        expect(a.bbox).toEqual([x0, y0, x1 - x0 + 1, y1 - y0 + 1]);
        expect(a).toMatchObject({ image_id: 7, category_id: 1, iscrowd: 0 });
        if (!compressed) expect((a.segmentation.counts as number[]).reduce((s, c) => s + c, 0)).toBe(width * height);
        // Each object's own RLE equals the single-mask encoder's.
        if (!compressed) expect(a.segmentation).toEqual(encodeRle(mask, width, height));
      }
    }
  });

  it('numbers annotations uniquely across images and writes valid JSON', async () => {
    const other = syntheticNuclei({ width: 64, height: 48, seed: 2, objects: 5 });
    const dataset = buildCocoDataset(
      [
        { image: { id: 1, file_name: 'a.tif', width, height }, labels: { width, height, data: sample.instances } },
        { image: { id: 2, file_name: 'b.tif', width: 64, height: 48 }, labels: { width: 64, height: 48, data: other.instances } },
      ],
      { categories: [{ id: 1, name: 'nucleus' }] },
    );
    const ids = dataset.annotations.map((a) => a.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids[0]).toBe(1);
    const path = join(scratch, 'coco.json');
    await writeCocoJson(path, dataset);
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as CocoDataset;
    expect(parsed.categories).toEqual([{ id: 1, name: 'nucleus' }]);
    expect(Array.from(cocoToLabels(parsed, 2).data)).toEqual(Array.from(other.instances));
    expect(labelsToCocoAnnotations({ width: 2, height: 2, data: new Int32Array(4) }, { imageId: 1 })).toEqual([]);
  });
});

describe('overlay', () => {
  it('fills objects, outlines them at full colour and leaves the background grey', async () => {
    const labels: LabelImage = { width, height, data: sample.instances };
    const rgb = renderOverlay(sample.image, labels, { fillOpacity: 0.4 });
    let outline = -1;
    let interior = -1;
    let background = -1;
    for (let y = 1; y < height - 1 && (outline < 0 || interior < 0 || background < 0); y++) {
      for (let x = 1; x < width - 1; x++) {
        const p = y * width + x;
        const id = sample.instances[p];
        const around = [p - 1, p + 1, p - width, p + width].map((q) => sample.instances[q]);
        if (id === 0 && around.every((v) => v === 0)) background = p;
        else if (id !== 0 && around.some((v) => v !== id)) outline = p;
        else if (id !== 0) interior = p;
      }
    }
    const px = (p: number) => Array.from(rgb.subarray(p * 3, p * 3 + 3));
    expect(px(outline)).toEqual(labelColour(sample.instances[outline]));
    const bg = px(background);
    expect(bg[0]).toBe(bg[1]);
    expect(bg[1]).toBe(bg[2]);
    const inner = px(interior);
    expect(inner).not.toEqual(labelColour(sample.instances[interior]));
    expect(new Set(inner).size).toBeGreaterThan(1);

    const png = await overlayPng(sample.image, labels);
    const decoded = await decodeImage(png);
    expect(decoded).toMatchObject({ width, height, channels: 3, bitDepth: 8 });
  });
});
