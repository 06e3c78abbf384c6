import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../src/imaging/decode';
import { planeLayout, readPlane, readPlaneLayout } from '../../src/imaging/import';
import {
  bufferSource,
  checkTiff,
  encodeTiff,
  lzwDecode,
  parseImageJDescription,
  parseOmeXml,
  parseTiff,
  TiffError,
  TiffReader,
  unsupportedReason,
} from '../../src/imaging/tiff';
import type { PixelArray } from '../../src/imaging/types';

const scratch = mkdtempSync(join(tmpdir(), 'maskloop-import-tiff-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function pattern16(n: number, seed = 0): Uint16Array {
  const v = new Uint16Array(n);
  for (let i = 0; i < n; i++) v[i] = (i * 7919 + seed * 104729 + ((i * i) % 65521)) % 65536;
  v[0] = 0;
  v[1] = 65535;
  v[2] = 4095;
  return v;
}

function pattern8(n: number, seed = 0): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 31 + seed * 17 + ((i * i) % 251)) % 256);
}

type Variant = { name: string; bytes: Buffer };

async function sharpVariants(): Promise<Variant[]> {
  const W = 45;
  const H = 37;
  const sources: { name: string; make: () => sharp.Sharp; float?: boolean }[] = [
    { name: 'grey8', make: () => sharp(pattern8(W * H), { raw: { width: W, height: H, channels: 1 } }).toColourspace('b-w') },
    { name: 'grey16', make: () => sharp(pattern16(W * H), { raw: { width: W, height: H, channels: 1 } }).toColourspace('grey16') },
    { name: 'rgb8', make: () => sharp(pattern8(W * H * 3, 1), { raw: { width: W, height: H, channels: 3 } }) },
    { name: 'rgba8', make: () => sharp(pattern8(W * H * 4, 2), { raw: { width: W, height: H, channels: 4 } }) },
    { name: 'rgb16', make: () => sharp(pattern16(W * H * 3, 3), { raw: { width: W, height: H, channels: 3 } }).toColourspace('rgb16') },
    {
      name: 'float',
      float: true,
      make: () =>
        sharp(Buffer.from(new Float32Array(W * H).map((_, i) => (i % 97) * 0.37 - 5).buffer), {
          raw: { width: W, height: H, channels: 1 },
        }).toColourspace('b-w'),
    },
  ];
  const out: Variant[] = [];
  for (const source of sources) {
    for (const compression of ['none', 'lzw', 'deflate', 'packbits'] as const) {
      for (const tile of [false, true]) {
        const predictors = compression === 'none' || compression === 'packbits' ? ['none'] : source.float ? ['none', 'float'] : ['none', 'horizontal'];
        for (const predictor of predictors as ('none' | 'horizontal' | 'float')[]) {
          let pipeline = source.make();
          if (source.float) {
            // sharp writes a float TIFF only from float pixels; raw float input is read as such.
            pipeline = sharp(await pipeline.raw({ depth: 'float' }).toBuffer(), { raw: { width: W, height: H, channels: 1 } });
          }
          const bytes = await pipeline
            .tiff({ compression, predictor, tile, tileWidth: 16, tileHeight: 16 })
            .toBuffer()
            .catch(() => null);
          if (bytes) out.push({ name: `${source.name}/${compression}/${tile ? 'tiled' : 'strips'}/${predictor}`, bytes });
        }
      }
    }
  }
  return out;
}

function same(a: PixelArray, b: PixelArray): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}

/** A big-endian ("MM") uncompressed 16-bit TIFF built by hand: sharp only writes little-endian. */
function bigEndianTiff(width: number, height: number, values: Uint16Array): Buffer {
  const entries: [number, number, number][] = [
    [256, 4, width], [257, 4, height], [258, 3, 16], [259, 3, 1], [262, 3, 1],
    [273, 4, 0], [277, 3, 1], [278, 4, height], [279, 4, width * height * 2],
  ];
  const ifdAt = 8;
  const dataAt = ifdAt + 2 + entries.length * 12 + 4;
  const buf = Buffer.alloc(dataAt + values.length * 2);
  buf.write('MM', 0, 'latin1');
  buf.writeUInt16BE(42, 2);
  buf.writeUInt32BE(ifdAt, 4);
  buf.writeUInt16BE(entries.length, ifdAt);
  entries.forEach(([tag, type, value], e) => {
    const at = ifdAt + 2 + e * 12;
    buf.writeUInt16BE(tag, at);
    buf.writeUInt16BE(type, at + 2);
    buf.writeUInt32BE(1, at + 4);
    if (tag === 273) value = dataAt;
    if (type === 3) buf.writeUInt16BE(value, at + 8);
    else buf.writeUInt32BE(value, at + 8);
  });
  values.forEach((v, i) => buf.writeUInt16BE(v, dataAt + i * 2));
  return buf;
}

describe('TiffReader', () => {
  it('reads every sharp-written variant exactly as decodeImage does, whole and in windows', async () => {
    const variants = await sharpVariants();
    expect(variants.length).toBeGreaterThan(40);
    const windows = [[0, 0, 45, 37], [3, 5, 20, 17], [16, 16, 16, 16], [40, 30, 5, 7], [0, 36, 45, 1], [44, 0, 1, 37]];
    for (const { name, bytes } of variants) {
      const expected = await decodeImage(bytes);
      const reader = TiffReader.fromBytes(bytes);
      const page = reader.structure.pages[0];
      expect(unsupportedReason(page), name).toBeNull();
      expect(reader.channels(0), name).toBe(expected.channels);
      for (const [x, y, w, h] of windows) {
        const got = reader.readWindow(0, x, y, w, h);
        const want = new (expected.data.constructor as new (n: number) => PixelArray)(w * h * expected.channels);
        for (let r = 0; r < h; r++) {
          const src = ((y + r) * expected.width + x) * expected.channels;
          want.set(expected.data.subarray(src, src + w * expected.channels), r * w * expected.channels);
        }
        expect(got.constructor, name).toBe(expected.data.constructor);
        expect(same(got, want), `${name} window ${x},${y} ${w}x${h}`).toBe(true);
      }
      reader.close();
    }
  });

  it('reads BigTIFF and sparse (never-written) tiles', async () => {
    const values = pattern16(40 * 30);
    const big = await sharp(values, { raw: { width: 40, height: 30, channels: 1 } })
      .toColourspace('grey16')
      .tiff({ bigtiff: true, compression: 'lzw', tile: true, tileWidth: 16, tileHeight: 16 })
      .toBuffer();
    const reader = TiffReader.fromBytes(big);
    expect(reader.structure.bigTiff).toBe(true);
    expect(Array.from(reader.readWindow(0, 0, 0, 40, 30))).toEqual(Array.from(values));

    // GDAL leaves never-written tiles at offset 0, 0 bytes: they read as zeros.
    const sparse = TiffReader.fromBytes(big);
    expect(sparse.structure.pages[0].byteCounts.length).toBe(6);
    sparse.structure.pages[0].byteCounts[1] = 0;
    expect(sparse.readWindow(0, 16, 0, 16, 16).every((v) => v === 0)).toBe(true);
    expect(Array.from(sparse.readWindow(0, 0, 0, 16, 16))).toEqual(Array.from(reader.readWindow(0, 0, 0, 16, 16)));
  });

  it('reads big-endian files', () => {
    const values = pattern16(13 * 7);
    const reader = TiffReader.fromBytes(bigEndianTiff(13, 7, values));
    expect(reader.structure.littleEndian).toBe(false);
    expect(Array.from(reader.readWindow(0, 0, 0, 13, 7))).toEqual(Array.from(values));
  });

  it('refuses what it cannot decode, so callers fall back to sharp', async () => {
    const jpegTiff = await sharp(pattern8(32 * 32 * 3), { raw: { width: 32, height: 32, channels: 3 } }).tiff({ compression: 'jpeg' }).toBuffer();
    const reader = TiffReader.fromBytes(jpegTiff);
    expect(unsupportedReason(reader.structure.pages[0])).toMatch(/JPEG/);
    expect(() => reader.readWindow(0, 0, 0, 4, 4)).toThrow(TiffError);
  });

  it('finds truncated strips without decoding, and survives garbage LZW', async () => {
    const bytes = encodeTiff([{ width: 64, height: 64, channels: 1, bitDepth: 16, data: pattern16(64 * 64) }], { rowsPerStrip: 8 });
    const structure = parseTiff(bufferSource(bytes));
    expect(() => checkTiff(structure)).not.toThrow();
    // Keep the IFD (it sits after the data) but claim a file shorter than the last strip's end.
    const short = { ...structure, fileSize: structure.pages[0].offsets[7] + 10 };
    expect(() => checkTiff(short)).toThrow(/truncated|past the end/);
    for (let seed = 1; seed < 30; seed++) {
      const junk = new Uint8Array(200).map((_, i) => (i * 97 + seed * 31) % 256);
      try {
        lzwDecode(junk, 4096);
      } catch (error) {
        expect(error).toBeInstanceOf(TiffError);
      }
    }
  });
});

describe('encodeTiff', () => {
  it('writes 8/16/32-bit grey, RGB and float pages that sharp reads back exactly', async () => {
    const W = 31;
    const H = 19;
    const cases = [
      { channels: 1, bitDepth: 8 as const, data: pattern8(W * H) },
      { channels: 1, bitDepth: 16 as const, data: pattern16(W * H) },
      { channels: 3, bitDepth: 16 as const, data: pattern16(W * H * 3, 5) },
      { channels: 1, bitDepth: 32 as const, data: new Float32Array(W * H).map((_, i) => i * 0.25 - 3) },
    ];
    for (const c of cases) {
      for (const compression of ['none', 'deflate'] as const) {
        const bytes = encodeTiff([{ width: W, height: H, ...c }], { compression, rowsPerStrip: 4 });
        const decoded = await decodeImage(bytes);
        expect(decoded, `${c.bitDepth}/${c.channels}/${compression}`).toMatchObject({ width: W, height: H, channels: c.channels });
        expect(Array.from(decoded.data)).toEqual(Array.from(c.data));
        expect(Array.from(TiffReader.fromBytes(bytes).readWindow(0, 0, 0, W, H))).toEqual(Array.from(c.data));
      }
    }
  });

  it('writes uint32 labels that libtiff reads as 32-bit integers', async () => {
    const data = new Uint32Array(8 * 8).map((_, i) => (i % 5 === 0 ? 0 : 70000 + i));
    const bytes = encodeTiff([{ width: 8, height: 8, channels: 1, bitDepth: 32, data }]);
    const meta = await sharp(bytes).metadata();
    expect(meta.depth).toBe('uint');
    // sharp widens grey to three equal bands on output; the first band is the stored value.
    const { data: raw, info } = await sharp(bytes).raw({ depth: 'uint' }).toBuffer({ resolveWithObject: true });
    const values = new Uint32Array(raw.buffer, raw.byteOffset, raw.length / 4).filter((_, i) => i % info.channels === 0);
    expect(Array.from(values)).toEqual(Array.from(data));
  });
});

/** OME-XML as Bio-Formats writes it, trimmed to what import reads. */
function omeXml(opts: { c: number; z: number; t: number; order?: string; tiffData?: string; names?: string[] }): string {
  const channels = Array.from({ length: opts.c }, (_, i) => `<Channel ID="Channel:0:${i}" Name="${opts.names?.[i] ?? `ch${i}`}" SamplesPerPixel="1"/>`).join('');
  return (
    `<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" ` +
    `UUID="urn:uuid:1"><Image ID="Image:0" Name="cells &amp; nuclei"><Pixels ID="Pixels:0" DimensionOrder="${opts.order ?? 'XYCZT'}" ` +
    `Type="uint16" SizeX="24" SizeY="16" SizeC="${opts.c}" SizeZ="${opts.z}" SizeT="${opts.t}" ` +
    `PhysicalSizeX="0.325" PhysicalSizeXUnit="µm" PhysicalSizeY="0.325" PhysicalSizeZ="2">` +
    `${channels}${opts.tiffData ?? ''}</Pixels></Image></OME>`
  );
}

function stackTiff(pages: number, description?: string, extra: { subfileType?: number; width?: number }[] = []): { bytes: Buffer; planes: Uint16Array[] } {
  const planes = Array.from({ length: pages }, (_, p) => pattern16(24 * 16, p + 1));
  const bytes = encodeTiff([
    ...planes.map((data, p) => ({ width: 24, height: 16, channels: 1, bitDepth: 16 as const, data, description: p === 0 ? description : undefined })),
    ...extra.map((e) => ({ width: e.width ?? 12, height: 8, channels: 1, bitDepth: 16 as const, data: pattern16((e.width ?? 12) * 8), subfileType: e.subfileType })),
  ]);
  return { bytes, planes };
}

describe('stack layout', () => {
  it('reads OME-XML: sizes, channel names, physical size, planes by DimensionOrder', async () => {
    const xml = omeXml({ c: 3, z: 2, t: 1, names: ['DAPI', 'GFP', 'mCherry'] });
    const ome = parseOmeXml(xml)!;
    expect(ome.images[0]).toMatchObject({ name: 'cells & nuclei', sizeC: 3, sizeZ: 2, sizeT: 1, type: 'uint16' });
    expect(ome.images[0].physicalSizeX).toEqual({ value: 0.325, unit: 'µm' });
    expect(ome.images[0].channels.map((c) => c.name)).toEqual(['DAPI', 'GFP', 'mCherry']);
    expect(ome.images[0].planeIfds).toEqual([0, 1, 2, 3, 4, 5]);

    // XYZCT: z varies fastest, so plane (c, z) is IFD z + 2c.
    const zFirst = parseOmeXml(omeXml({ c: 3, z: 2, t: 1, order: 'XYZCT' }))!;
    expect(zFirst.images[0].planeIfds).toEqual([0, 2, 4, 1, 3, 5]);

    const explicit = parseOmeXml(
      omeXml({ c: 2, z: 1, t: 1, tiffData: '<TiffData FirstC="1" IFD="0" PlaneCount="1"/><TiffData FirstC="0" IFD="1" PlaneCount="1"/>' }),
    )!;
    expect(explicit.images[0].planeIfds).toEqual([1, 0]);

    const elsewhere = parseOmeXml(
      omeXml({ c: 2, z: 1, t: 1, tiffData: '<TiffData IFD="0" PlaneCount="1"><UUID FileName="other.ome.tif">urn:uuid:2</UUID></TiffData>' }),
      'this.ome.tif',
    )!;
    expect(elsewhere.referencesOtherFiles).toBe(true);
    expect(parseOmeXml('Experiment base name:IXMtest')).toBeNull();
    expect(parseOmeXml('<OME><Image><Pixels SizeC="oops"></Pixels></Image></OME>')).toMatchObject({ images: [{ sizeC: 1 }] });
    expect(parseOmeXml('<OME><Image><Pixels SizeC="3"')).toBeNull();
  });

  it('lays out an OME-TIFF as channels x z and reads one z as a multi-channel image', async () => {
    const { bytes, planes } = stackTiff(6, omeXml({ c: 3, z: 2, t: 1, names: ['a', 'b', 'c'] }), [{ subfileType: 1 }]);
    const path = join(scratch, 'stack ü.ome.tif');
    writeFileSync(path, bytes);
    const layout = await readPlaneLayout(path);
    expect(layout).toMatchObject({ source: 'ome', sizeC: 3, sizeZ: 2, sizeT: 1, planeIfds: [0, 1, 2, 3, 4, 5], ignoredPages: [6] });
    expect(layout.channelNames).toEqual(['a', 'b', 'c']);
    const z1 = await readPlane(path, layout, { z: 1 });
    expect(z1).toMatchObject({ width: 24, height: 16, channels: 3, bitDepth: 16 });
    for (let i = 0; i < 24 * 16; i++) {
      for (let c = 0; c < 3; c++) expect(z1.data[i * 3 + c]).toBe(planes[3 + c][i]);
    }
  });

  it('reads ImageJ hyperstacks, and treats unexplained pages as separate planes', () => {
    const ij = parseImageJDescription('ImageJ=1.54f\nimages=4\nchannels=2\nslices=2\nhyperstack=true\nspacing=0.5\nunit=micron\n');
    expect(ij).toMatchObject({ channels: 2, slices: 2, frames: 1, spacing: 0.5, unit: 'micron' });
    const hyper = stackTiff(4, 'ImageJ=1.54f\nimages=4\nchannels=2\nslices=2\nhyperstack=true\n');
    expect(planeLayout(parseTiff(bufferSource(hyper.bytes)), 'x.tif')).toMatchObject({ source: 'imagej', sizeC: 2, sizeZ: 2, planeIfds: [0, 1, 2, 3] });

    const plain = stackTiff(3, undefined, [{ width: 6 }]);
    expect(planeLayout(parseTiff(bufferSource(plain.bytes)), 'x.tif')).toMatchObject({ source: 'pages', planeIfds: [0, 1, 2], ignoredPages: [3] });
    const single = stackTiff(1);
    expect(planeLayout(parseTiff(bufferSource(single.bytes)), 'x.tif')).toMatchObject({ source: 'single', planeIfds: [0] });
  });
});
