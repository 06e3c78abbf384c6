import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { connectedComponents } from '../../src/imaging/instances';
import {
  importMask,
  importObjectMasks,
  listMaskFolder,
  maskFromImage,
  maskStem,
  matchMasks,
  naturalCompare,
} from '../../src/imaging/masks';
import { syntheticNuclei } from '../../src/imaging/synthetic';
import { encodeTiff } from '../../src/imaging/tiff';
import type { RawImage } from '../../src/imaging/types';

const scratch = mkdtempSync(join(tmpdir(), 'maskloop-import-masks-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function write(name: string, bytes: Buffer): string {
  const path = join(scratch, name);
  writeFileSync(path, bytes);
  return path;
}

/** Same objects, whatever the numbering: a bijection between ids. */
function sameObjects(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  const ab = new Map<number, number>();
  const ba = new Map<number, number>();
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if ((x === 0) !== (y === 0)) return false;
    if (x === 0) continue;
    if ((ab.get(x) ?? y) !== y || (ba.get(y) ?? x) !== x) return false;
    ab.set(x, y);
    ba.set(y, x);
  }
  return true;
}

/** A graph colouring of a label image: neighbouring objects get different values in 1..4. */
function graphColour(labels: Int32Array, width: number, height: number): Uint8Array {
  const neighbours = new Map<number, Set<number>>();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const a = labels[y * width + x];
      if (!a) continue;
      for (const [dx, dy] of [[1, 0], [0, 1], [1, 1], [-1, 1]]) {
        const xx = x + dx;
        const yy = y + dy;
        if (xx < 0 || xx >= width || yy >= height) continue;
        const b = labels[yy * width + xx];
        if (b && b !== a) {
          if (!neighbours.has(a)) neighbours.set(a, new Set());
          if (!neighbours.has(b)) neighbours.set(b, new Set());
          neighbours.get(a)!.add(b);
          neighbours.get(b)!.add(a);
        }
      }
    }
  }
  const colour = new Map<number, number>();
  const ids = [...new Set(labels)].filter((v) => v !== 0).sort((p, q) => p - q);
  for (const id of ids) {
    const used = new Set([...(neighbours.get(id) ?? [])].map((n) => colour.get(n)));
    let c = 1;
    while (used.has(c)) c++;
    colour.set(id, c);
  }
  return Uint8Array.from(labels, (id) => (id ? colour.get(id)! : 0));
}

describe('mask import', () => {
  const sample = syntheticNuclei({ width: 160, height: 120, seed: 3, objects: 30, touchingFraction: 0.6 });
  const { width, height } = sample.image;

  it('reads 16-bit label TIFF and PNG ids exactly, gaps and large ids included', async () => {
    const labels = new Uint16Array(width * height);
    for (let i = 0; i < labels.length; i++) labels[i] = sample.instances[i] ? sample.instances[i] * 997 + 300 : 0;
    labels[5] = 65535;
    const tiff = write('labels16.tif', encodeTiff([{ width, height, channels: 1, bitDepth: 16, data: labels }], { compression: 'deflate' }));
    const png = write('labels16.png', await sharp(labels, { raw: { width, height, channels: 1 } }).toColourspace('grey16').png().toBuffer());
    const lzw = write('labels16-lzw.tif', await sharp(labels, { raw: { width, height, channels: 1 } }).toColourspace('grey16').tiff({ compression: 'lzw' }).toBuffer());
    for (const path of [tiff, png, lzw]) {
      const mask = await importMask(path);
      expect(mask.encoding, path).toBe('labels');
      expect(Array.from(mask.labels.data), path).toEqual(Array.from(labels));
      expect(mask.count).toBe(sample.count + 1);
      expect(mask.maxId).toBe(65535);
    }
  });

  it('reads 8-bit labels, binary masks (1/255, inverted, 1-bit) as connected objects', async () => {
    const eight = Uint8Array.from(sample.instances);
    const labels = await importMask(write('labels8.png', await sharp(eight, { raw: { width, height, channels: 1 } }).png().toBuffer()));
    expect(labels.encoding).toBe('labels');
    expect(Array.from(labels.labels.data)).toEqual(Array.from(sample.instances));

    const binary = Uint8Array.from(sample.foreground, (v) => v * 255);
    const mask = await importMask(write('binary.png', await sharp(binary, { raw: { width, height, channels: 1 } }).png().toBuffer()));
    expect(mask.encoding).toBe('binary');
    const expected = connectedComponents(sample.foreground, width, height, 8);
    expect(Array.from(mask.labels.data)).toEqual(Array.from(expected.labels));
    expect(mask.count).toBe(expected.count);

    const oneBit = await importMask(write('binary-1bit.png', await sharp(binary, { raw: { width, height, channels: 1 } }).png({ colours: 2, palette: false, bitdepth: 1 } as sharp.PngOptions).toBuffer()));
    expect(oneBit.count).toBe(expected.count);

    const inverted = Uint8Array.from(sample.foreground, (v) => (1 - v) * 255);
    const viaInvert = maskFromImage({ width, height, channels: 1, bitDepth: 8, data: inverted }, { encoding: 'binary', invert: true });
    expect(Array.from(viaInvert.labels.data)).toEqual(Array.from(expected.labels));
  });

  it('splits BBBC039-style graph-coloured RGBA masks into one object per region', async () => {
    const colours = graphColour(sample.instances, width, height);
    expect(Math.max(...colours)).toBeLessThanOrEqual(4);
    const rgba = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) rgba.set([colours[i], 0, 0, 255], i * 4);
    const mask = await importMask(write('graph.png', await sharp(rgba, { raw: { width, height, channels: 4 } }).png().toBuffer()));
    expect(mask.encoding).toBe('graph-coloured');
    expect(mask.count).toBe(sample.count);
    expect(sameObjects(mask.labels.data, sample.instances)).toBe(true);
  });

  it('reads colour-coded instance masks (one colour per object)', () => {
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) {
      const id = sample.instances[i];
      if (id) rgb.set([(id * 53) % 256, (id * 101) % 256, 200], i * 3);
    }
    const image: RawImage = { width, height, channels: 3, bitDepth: 8, data: rgb };
    const mask = maskFromImage(image);
    expect(mask.encoding).toBe('colour-ids');
    expect(mask.count).toBe(sample.count);
    expect(sameObjects(mask.labels.data, sample.instances)).toBe(true);
  });

  it('accepts float label TIFFs holding integers and refuses fractional ones', () => {
    const data = Float32Array.from(sample.instances);
    expect(Array.from(maskFromImage({ width, height, channels: 1, bitDepth: 32, data }).labels.data)).toEqual(Array.from(sample.instances));
    data[10] = 0.5;
    expect(() => maskFromImage({ width, height, channels: 1, bitDepth: 32, data })).toThrow(/integer/);
  });

  it('warns when one label id covers separate regions', () => {
    const data = new Uint8Array(10 * 10);
    data[0] = 2;
    data[99] = 2;
    data[50] = 3;
    const mask = maskFromImage({ width: 10, height: 10, channels: 1, bitDepth: 8, data });
    expect(mask.encoding).toBe('labels');
    expect(mask.warnings.join()).toMatch(/graph-coloured/);
  });

  it('builds instance ids from a folder of per-object binary masks, in natural order', async () => {
    const dir = join(scratch, 'objects');
    mkdirSync(dir);
    const ids = [...new Set(sample.instances)].filter((v) => v).sort((a, b) => a - b);
    for (const id of ids) {
      const m = Uint8Array.from(sample.instances, (v) => (v === id ? 255 : 0));
      writeFileSync(join(dir, `nucleus_${id}.png`), await sharp(m, { raw: { width, height, channels: 1 } }).png().toBuffer());
    }
    const mask = await importObjectMasks(dir);
    expect(mask.count).toBe(ids.length);
    expect(mask.files.map((f) => f.split('/').pop())).toEqual(ids.map((id) => `nucleus_${id}.png`));
    expect(Array.from(mask.labels.data)).toEqual(Array.from(sample.instances, (v) => (v ? ids.indexOf(v) + 1 : 0)));
    expect(mask.warnings).toEqual([]);
  });
});

describe('matching masks to images', () => {
  it('pairs by base name through mask suffixes, CTC names, folders and case', () => {
    const images = ['/d/images/a.tif', '/d/images/B1.png', '/d/images/t013.tif', '/d/images/cell 7.ome.tif', '/d/images/img9.jpg', '/d/images/orphan.png', '/d/images/dup.png'];
    const masks = [
      '/d/masks/a.png',
      '/d/masks/b1_mask.png',
      '/d/masks/man_seg013.tif',
      '/d/masks/cell 7_cp_masks.png',
      '/d/masks/img9',
      '/d/masks/unused_labels.png',
      '/d/x/dup_mask.png',
      '/d/y/dup-label.png',
    ];
    const match = matchMasks(images, masks, new Set(['/d/masks/img9']));
    const pairOf = (image: string) => match.pairs.find((p) => p.image === image)?.mask;
    expect(pairOf('/d/images/a.tif')).toBe('/d/masks/a.png');
    expect(pairOf('/d/images/B1.png')).toBe('/d/masks/b1_mask.png');
    expect(pairOf('/d/images/t013.tif')).toBe('/d/masks/man_seg013.tif');
    expect(pairOf('/d/images/cell 7.ome.tif')).toBe('/d/masks/cell 7_cp_masks.png');
    expect(match.pairs.find((p) => p.image === '/d/images/img9.jpg')).toMatchObject({ mask: '/d/masks/img9', kind: 'object-folder' });
    expect(match.unmatchedImages).toEqual(['/d/images/orphan.png']);
    expect(match.unmatchedMasks).toEqual(['/d/masks/unused_labels.png']);
    expect(match.ambiguous).toEqual([{ image: '/d/images/dup.png', masks: ['/d/x/dup_mask.png', '/d/y/dup-label.png'] }]);
    expect(maskStem('x/man_seg_007.tif')).toBe('t007');
    expect(['obj10', 'obj2', 'obj1'].sort(naturalCompare)).toEqual(['obj1', 'obj2', 'obj10']);
  });

  it('lists a mask folder with per-object sub-folders', async () => {
    const dir = join(scratch, 'mask-folder');
    mkdirSync(join(dir, 'img1'), { recursive: true });
    writeFileSync(join(dir, 'img2.png'), Buffer.from('x'));
    writeFileSync(join(dir, 'img1', 'o1.png'), Buffer.from('x'));
    writeFileSync(join(dir, 'readme.txt'), 'x');
    const { masks, folders } = await listMaskFolder(dir);
    expect(masks).toEqual([join(dir, 'img1'), join(dir, 'img2.png')]);
    expect([...folders]).toEqual([join(dir, 'img1')]);
  });
});
