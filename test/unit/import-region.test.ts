import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { cropRect } from '../../src/engine/data';
import { prepareImage } from '../../src/engine/input';
import { decodeImage } from '../../src/imaging/decode';
import { normalizeWithRanges, percentileRanges } from '../../src/imaging/normalize';
import { fileRanges, fileSource, readRegion } from '../../src/imaging/region';
import { encodeTiff } from '../../src/imaging/tiff';
import type { RawImage } from '../../src/imaging/types';

const scratch = mkdtempSync(join(tmpdir(), 'maskloop-import-region-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const W = 203;
const H = 151;

function values(n: number, seed: number): Uint16Array {
  return new Uint16Array(n).map((_, i) => (i * 7919 + seed * 31 + ((i * i) % 4093)) % 4096);
}

async function files(): Promise<Record<string, string>> {
  const grey = values(W * H, 1);
  const rgb = values(W * H * 3, 2);
  const write = async (name: string, bytes: Buffer | Promise<Buffer>) => {
    const path = join(scratch, name);
    writeFileSync(path, await bytes);
    return path;
  };
  const ome =
    '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels DimensionOrder="XYCZT" ' +
    `Type="uint16" SizeX="${W}" SizeY="${H}" SizeC="2" SizeZ="1" SizeT="1"><Channel Name="a"/><Channel Name="b"/></Pixels></Image></OME>`;
  return {
    tiled: await write('tiled.tif', sharp(grey, { raw: { width: W, height: H, channels: 1 } }).toColourspace('grey16').tiff({ compression: 'lzw', tile: true, tileWidth: 64, tileHeight: 32 }).toBuffer()),
    strips: await write('strips.tif', encodeTiff([{ width: W, height: H, channels: 1, bitDepth: 16, data: grey }], { rowsPerStrip: 7 })),
    rgb: await write('rgb.tif', sharp(rgb, { raw: { width: W, height: H, channels: 3 } }).toColourspace('rgb16').tiff({ compression: 'deflate' }).toBuffer()),
    png: await write('grey.png', sharp(grey, { raw: { width: W, height: H, channels: 1 } }).toColourspace('grey16').png().toBuffer()),
    jpegTiff: await write('jpeg.tif', sharp(Buffer.from(values(W * H * 3, 3).map((v) => v % 256)), { raw: { width: W, height: H, channels: 3 } }).tiff({ compression: 'jpeg' }).toBuffer()),
    ome: await write('two.ome.tif', encodeTiff([
      { width: W, height: H, channels: 1, bitDepth: 16, data: grey, description: ome },
      { width: W, height: H, channels: 1, bitDepth: 16, data: values(W * H, 9) },
    ])),
  };
}

function crop(image: RawImage, x: number, y: number, w: number, h: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < h; r++) {
    for (let i = 0; i < w * image.channels; i++) out.push(image.data[((y + r) * image.width + x) * image.channels + i]);
  }
  return out;
}

describe('reading regions and tiles from disk', () => {
  it('readRegion returns the exact stored values of a window, for every kind of file', async () => {
    const paths = await files();
    for (const [kind, path] of Object.entries(paths)) {
      if (kind === 'ome') continue;
      const whole = await decodeImage(path);
      for (const [x, y, w, h] of [[0, 0, W, H], [17, 9, 64, 40], [W - 3, H - 2, 3, 2]]) {
        const region = await readRegion(path, x, y, w, h);
        expect(region, kind).toMatchObject({ width: w, height: h, channels: whole.channels, bitDepth: whole.bitDepth });
        expect(Array.from(region.data), `${kind} ${x},${y}`).toEqual(crop(whole, x, y, w, h));
      }
    }
    await expect(readRegion(paths.tiled, W - 5, 0, 10, 10)).rejects.toThrow(RangeError);
  });

  it('fileSource tiles equal the engine crops of the normalised image, reflect padding included', async () => {
    const paths = await files();
    for (const kind of ['tiled', 'strips', 'rgb', 'png', 'jpegTiff'] as const) {
      const path = paths[kind];
      const whole = await decodeImage(path);
      const ranges = percentileRanges(whole);
      // Within the sample budget the strided read counts every pixel: the same ranges exactly.
      expect(await fileRanges(path), kind).toEqual(ranges);
      const engineImage = { width: W, height: H, channels: whole.channels, pixels: normalizeWithRanges(whole, ranges) };
      const source = await fileSource(path);
      expect(source.mode, kind).toBe(kind === 'png' || kind === 'jpegTiff' ? 'in-memory' : 'tiled');
      expect(source).toMatchObject({ width: W, height: H, channels: whole.channels });
      for (const [x, y, w, h] of [[0, 0, 64, 64], [150, 100, 64, 32], [-20, -13, 48, 80], [180, 140, 64, 64], [-40, -40, 300, 260]]) {
        const got = source.read(x, y, w, h);
        const want = cropRect(engineImage, x, y, w, h).pixels;
        expect(got.length).toBe(want.length);
        let diff = 0;
        for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) diff++;
        expect(diff, `${kind} ${x},${y},${w}x${h}`).toBe(0);
      }
      source.close();
    }
  });

  it('fileSource normalises with the window floor exactly as the engine does in memory', async () => {
    const faint = new Uint16Array(W * H).map((_, i) => 130 + (i % 9));
    const path = join(scratch, 'faint.tif');
    writeFileSync(path, encodeTiff([{ width: W, height: H, channels: 1, bitDepth: 16, data: faint }], { rowsPerStrip: 5 }));
    const minSpans = [400];
    const source = await fileSource(path, undefined, { minSpans });
    const prepared = prepareImage(await decodeImage(path), { minSpans });
    expect(source.ranges).toEqual(prepared.ranges);
    expect(source.ranges[0].high - source.ranges[0].low).toBe(400);
    expect(Array.from(source.read(0, 0, W, H))).toEqual(Array.from(prepared.pixels));
    source.close();
  });

  it('reads the channel pages of an OME-TIFF as one multi-channel source', async () => {
    const paths = await files();
    const source = await fileSource(paths.ome);
    expect(source.channels).toBe(2);
    const raw = source.readRaw(10, 20, 5, 1);
    const a = values(W * H, 1);
    const b = values(W * H, 9);
    for (let i = 0; i < 5; i++) {
      expect(raw[i * 2]).toBe(a[20 * W + 10 + i]);
      expect(raw[i * 2 + 1]).toBe(b[20 * W + 10 + i]);
    }
    source.close();
    const firstOnly = await readRegion(paths.ome, 10, 20, 5, 1, { planes: [1] });
    expect(Array.from(firstOnly.data)).toEqual(Array.from(b.subarray(20 * W + 10, 20 * W + 15)));
  });

  it('strides the percentile count over huge images and stays close to the exact window', async () => {
    const paths = await files();
    const exact = await fileRanges(paths.tiled);
    const strided = await fileRanges(paths.tiled, { maxSamples: 2000 });
    expect(Math.abs(strided[0].low - exact[0].low)).toBeLessThan(100);
    expect(Math.abs(strided[0].high - exact[0].high)).toBeLessThan(100);
  });
});
