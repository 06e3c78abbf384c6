/** A folder of images with a folder of masks as an evaluation set: pairing, encodings, the split. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFolderDataset, nameHash } from '../../src/imaging/folderDataset';
import { syntheticNuclei } from '../../src/imaging/synthetic';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-folderset-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const SIZE = 48;

async function writeSet(name: string, count: number, mask: (ids: Int32Array) => { data: Uint8Array | Uint16Array; channels: 1 | 3; depth?: 'ushort' }, maskName = (i: number) => `img${i}_mask.png`) {
  const images = path.join(root, name, 'images');
  const masks = path.join(root, name, 'masks');
  fs.mkdirSync(images, { recursive: true });
  fs.mkdirSync(masks, { recursive: true });
  const truths: Int32Array[] = [];
  for (let i = 0; i < count; i++) {
    const s = syntheticNuclei({ width: SIZE, height: SIZE, bitDepth: 8, seed: 100 + i, touchingFraction: 0.8 });
    await sharp(Uint8Array.from(s.image.data as Uint8Array), { raw: { width: SIZE, height: SIZE, channels: 1 } }).toColourspace('b-w').tiff().toFile(path.join(images, `img${i}.tif`));
    const m = mask(s.instances);
    // A typed array keeps its depth (a Buffer would be read as 8-bit).
    const img = sharp(m.data, { raw: { width: SIZE, height: SIZE, channels: m.channels } });
    await (m.depth ? img.toColourspace('grey16') : m.channels === 1 ? img.toColourspace('b-w') : img).png().toFile(path.join(masks, maskName(i)));
    truths.push(s.instances);
  }
  return { images, masks, truths };
}

describe('loadFolderDataset', () => {
  it('reads label images as objects, pairs masks by name, and splits by a hash of the names', async () => {
    const set = await writeSet('labels', 8, (ids) => ({ data: Uint16Array.from(ids, (v) => (v ? 1000 + v : 0)), channels: 1, depth: 'ushort' }));
    // An image without a mask is unlabeled, for pretraining.
    fs.copyFileSync(path.join(set.images, 'img0.tif'), path.join(set.images, 'extra.tif'));
    const ds = await loadFolderDataset({ images: set.images, masks: set.masks, encoding: 'labels', split: [0.5, 0.25, 0.25] });
    const all = [...ds.splits.train, ...ds.splits.val, ...ds.splits.test];
    expect(all.map((s) => s.name).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `img${i}.tif`));
    expect(ds.unlabeled.map((u) => u.name)).toEqual(['extra.tif']);
    for (const s of ds.splits.train) expect(nameHash(s.name)).toBeLessThan(0.5);
    for (const s of all) {
      const truth = set.truths[Number(s.name.slice(3, 4))];
      expect(s.instanceCount).toBe(new Set(truth.filter((v) => v > 0)).size);
      expect(Array.from(s.foreground)).toEqual(Array.from(truth, (v) => (v > 0 ? 1 : 0)));
    }
    expect(ds.polarity).toBe('bright');
    // The same folder splits the same way every time.
    const again = await loadFolderDataset({ images: set.images, masks: set.masks, encoding: 'labels', split: [0.5, 0.25, 0.25] });
    expect(again.splits.test.map((s) => s.name)).toEqual(ds.splits.test.map((s) => s.name));
  });

  it('reads graph-coloured RGB masks as 4-connected regions of one colour, and binary masks by their rule', async () => {
    const palette = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [255, 255, 0]];
    const set = await writeSet('colours', 3, (ids) => {
      const data = new Uint8Array(ids.length * 3);
      ids.forEach((v, i) => data.set(palette[v === 0 ? 0 : 1 + (v % 3)], i * 3));
      return { data, channels: 3 };
    }, (i) => `img${i}.png`);
    const coloured = await loadFolderDataset({ images: set.images, masks: set.masks, encoding: 'colours' });
    const one = [...coloured.splits.train, ...coloured.splits.val, ...coloured.splits.test][0];
    // Red and yellow share their red channel: read by colour, touching objects stay apart.
    expect(one.instanceCount).toBeGreaterThan(1);
    const inverted = await loadFolderDataset({ images: set.images, masks: set.masks, encoding: 'binary', foreground: 'zero' });
    const first = [...inverted.splits.train, ...inverted.splits.val, ...inverted.splits.test].find((s) => s.name === one.name)!;
    expect(first.instances).toBeUndefined();
    expect(Array.from(first.foreground)).toEqual(Array.from(one.foreground, (v) => 1 - v));
  });

  it('refuses a folder with too few pairs or a bad split, with the reason', async () => {
    const empty = path.join(root, 'empty');
    fs.mkdirSync(empty);
    await expect(loadFolderDataset({ images: empty, masks: empty, encoding: 'binary' })).rejects.toThrow(/0 image\(s\) have a mask/);
    await expect(loadFolderDataset({ images: empty, masks: empty, encoding: 'binary', split: [0.5, 0.5, 0.5] })).rejects.toThrow(/sum to 1/);
    await expect(loadFolderDataset({ images: path.join(root, 'missing'), masks: empty, encoding: 'binary' })).rejects.toThrow(/cannot list/);
  });
});
