import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImage, decodeMask, ImageDecodeError, probeImage } from '../../src/imaging/decode';
import {
  connectedComponents,
  instancesFromInterior,
  instanceTargets,
  labelRegions,
  objectSizes,
  relabelSequential,
  removeSmallObjects,
} from '../../src/imaging/instances';
import { normalizePercentile, normalizeWithRanges, percentileRanges, SPAN_FLOOR_SHARE, spanFloor } from '../../src/imaging/normalize';
import { syntheticDataset, syntheticNuclei } from '../../src/imaging/synthetic';
import type { RawImage } from '../../src/imaging/types';
import { extractChannel } from '../../src/imaging/types';
import {
  dice,
  DSB_THRESHOLDS,
  iou,
  matchInstances,
  meanAveragePrecision,
  otsuBinFromHistogram,
  otsuSegment,
  otsuThreshold,
} from '../../src/engine/metrics';
import { Rng } from '../../src/shared/rng';

const scratch = mkdtempSync(join(tmpdir(), 'maskloop-imaging-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function writeScratch(name: string, bytes: Buffer | string): string {
  const path = join(scratch, name);
  writeFileSync(path, bytes);
  return path;
}

/** Sample values that an 8-bit or a rescaling reader would get wrong: 12-bit range, extremes, odd values. */
function sixteenBitPattern(length: number): Uint16Array {
  const values = new Uint16Array(length);
  for (let i = 0; i < length; i++) values[i] = (i * 977 + 13) % 4096;
  values[0] = 0;
  values[1] = 4095;
  values[2] = 65535;
  values[3] = 256;
  values[4] = 1;
  return values;
}

function rawInput(data: Uint8Array | Uint16Array, width: number, height: number, channels: 1 | 2 | 3 | 4) {
  return sharp(data, { raw: { width, height, channels } });
}

describe('decodeImage', () => {
  const W = 37;
  const H = 23;

  it('reads 16-bit grey PNG and TIFF (uncompressed and LZW) with the exact stored values', async () => {
    const values = sixteenBitPattern(W * H);
    const files = {
      png: await rawInput(values, W, H, 1).toColourspace('grey16').png().toBuffer(),
      tiff: await rawInput(values, W, H, 1).toColourspace('grey16').tiff({ compression: 'none' }).toBuffer(),
      lzw: await rawInput(values, W, H, 1).toColourspace('grey16').tiff({ compression: 'lzw' }).toBuffer(),
    };
    for (const [format, bytes] of Object.entries(files)) {
      const image = await decodeImage(writeScratch(`grey16.${format}`, bytes));
      expect(image, format).toMatchObject({ width: W, height: H, channels: 1, bitDepth: 16 });
      expect(image.data).toBeInstanceOf(Uint16Array);
      expect(Array.from(image.data), format).toEqual(Array.from(values));
    }
  });

  it('reads 16-bit RGB exactly and drops alpha', async () => {
    const rgba = sixteenBitPattern(W * H * 4);
    const rgb = new Uint16Array(W * H * 3);
    for (let i = 0; i < W * H; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = rgba[i * 4 + c];
    const files = {
      'rgb.png': await rawInput(rgb, W, H, 3).toColourspace('rgb16').png().toBuffer(),
      'rgb.tif': await rawInput(rgb, W, H, 3).toColourspace('rgb16').tiff({ compression: 'lzw' }).toBuffer(),
      'rgba.png': await rawInput(rgba, W, H, 4).toColourspace('rgb16').png().toBuffer(),
    };
    for (const [name, bytes] of Object.entries(files)) {
      const image = await decodeImage(bytes);
      expect(image, name).toMatchObject({ width: W, height: H, channels: 3, bitDepth: 16 });
      expect(Array.from(image.data), name).toEqual(Array.from(rgb));
    }
  });

  it('reads 8-bit grey and RGB(A) PNG exactly, as 1 and 3 channels', async () => {
    const grey = new Uint8Array(W * H).map((_, i) => (i * 31) % 256);
    const rgba = new Uint8Array(W * H * 4).map((_, i) => (i * 7 + 3) % 256);
    const rgb = new Uint8Array(W * H * 3);
    for (let i = 0; i < W * H; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = rgba[i * 4 + c];

    const greyImage = await decodeImage(await rawInput(grey, W, H, 1).toColourspace('b-w').png().toBuffer());
    expect(greyImage).toMatchObject({ channels: 1, bitDepth: 8 });
    expect(greyImage.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(greyImage.data)).toEqual(Array.from(grey));

    const rgbImage = await decodeImage(await rawInput(rgb, W, H, 3).png().toBuffer());
    expect(rgbImage).toMatchObject({ channels: 3, bitDepth: 8 });
    expect(Array.from(rgbImage.data)).toEqual(Array.from(rgb));

    const rgbaImage = await decodeImage(await rawInput(rgba, W, H, 4).png().toBuffer());
    expect(rgbaImage).toMatchObject({ channels: 3, bitDepth: 8 });
    expect(Array.from(rgbaImage.data)).toEqual(Array.from(rgb));
  });

  it('reads an RGB JPEG as 3 channels close to the encoded values', async () => {
    const rgb = new Uint8Array(64 * 48 * 3);
    for (let i = 0; i < 64 * 48; i++) rgb.set([200, 100, 30], i * 3);
    const image = await decodeImage(await rawInput(rgb, 64, 48, 3).jpeg({ quality: 95 }).toBuffer());
    expect(image).toMatchObject({ width: 64, height: 48, channels: 3, bitDepth: 8 });
    for (let c = 0; c < 3; c++) expect(Math.abs(image.data[c] - rgb[c])).toBeLessThanOrEqual(3);
  });

  it('reads float TIFFs as Float32Array without rescaling, and selected pages of multi-page TIFFs', async () => {
    const values = sixteenBitPattern(W * H);
    const png = await rawInput(values, W, H, 1).toColourspace('grey16').png().toBuffer();
    const floatTiff = await sharp(png).toColourspace('grey16').tiff({ compression: 'lzw', predictor: 'float' }).toBuffer();
    const floatImage = await decodeImage(floatTiff);
    expect(floatImage).toMatchObject({ channels: 1, bitDepth: 32 });
    expect(floatImage.data).toBeInstanceOf(Float32Array);
    expect(Array.from(floatImage.data)).toEqual(Array.from(values));

    const stack = new Uint16Array(W * H * 2);
    stack.set(values);
    stack.set(values.map((v) => 4095 - (v % 4096)), W * H);
    const multiPage = await sharp(stack, { raw: { width: W, height: H * 2, channels: 1, pageHeight: H } })
      .toColourspace('grey16')
      .tiff({ compression: 'lzw' })
      .toBuffer();
    expect(await probeImage(multiPage)).toMatchObject({ format: 'tiff', width: W, height: H, pages: 2, bitDepth: 16 });
    expect(Array.from((await decodeImage(multiPage)).data)).toEqual(Array.from(stack.subarray(0, W * H)));
    expect(Array.from((await decodeImage(multiPage, { page: 1 })).data)).toEqual(Array.from(stack.subarray(W * H)));
    await expect(decodeImage(multiPage, { page: 2 })).rejects.toThrow(/page 2 requested, the file has 2 page/);
  });

  it('decodeMask returns the first channel untouched: the red of an RGBA mask, 16-bit labels', async () => {
    const rgba = new Uint8Array(W * H * 4);
    for (let i = 0; i < W * H; i++) rgba.set([i % 4, 200, 100, 255], i * 4);
    const colourMask = await decodeMask(writeScratch('mask.png', await rawInput(rgba, W, H, 4).png().toBuffer()));
    expect(colourMask).toMatchObject({ channels: 1, bitDepth: 8, width: W, height: H });
    expect(Array.from(colourMask.data)).toEqual(Array.from({ length: W * H }, (_, i) => i % 4));

    const labels = new Uint16Array(W * H).map((_, i) => (i % 7 === 0 ? 0 : 300 + (i % 1000)));
    const labelTiff = await rawInput(labels, W, H, 1).toColourspace('grey16').tiff({ compression: 'lzw' }).toBuffer();
    const labelMask = await decodeMask(labelTiff);
    expect(labelMask.bitDepth).toBe(16);
    expect(Array.from(labelMask.data)).toEqual(Array.from(labels));
  });

  it('fails with ImageDecodeError naming the file and the reason', async () => {
    const png = await rawInput(sixteenBitPattern(256 * 256), 256, 256, 1).toColourspace('grey16').png().toBuffer();
    const jpeg = await rawInput(new Uint8Array(256 * 256 * 3).map((_, i) => (i * 7919) % 251), 256, 256, 3)
      .jpeg()
      .toBuffer();
    const cases: [string, string | Buffer, RegExp][] = [
      [join(scratch, 'missing.png'), '', /no such file/],
      [writeScratch('empty.png', Buffer.alloc(0)), '', /empty/],
      [writeScratch('notes.tif', 'this is a text file, not an image'), '', /not a readable image/],
      [writeScratch('noise.png', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37) % 256))), '', /not a readable image/],
      [writeScratch('cut.png', png.subarray(0, Math.floor(png.length * 0.9))), '', /truncated or corrupt/],
      [writeScratch('cut.jpg', jpeg.subarray(0, Math.floor(jpeg.length * 0.9))), '', /truncated or corrupt/],
      [writeScratch('cut-header.png', png.subarray(0, 40)), '', /truncated or corrupt/],
    ];
    for (const [path, , reason] of cases) {
      const error = await decodeImage(path).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error, path).toBeInstanceOf(ImageDecodeError);
      const decodeError = error as ImageDecodeError;
      expect(decodeError.source).toBe(path);
      expect(decodeError.message).toContain(path);
      expect(decodeError.reason, path).toMatch(reason);
    }
    await expect(decodeImage(Buffer.alloc(0))).rejects.toThrow(/<buffer>: the buffer is empty/);
    await expect(decodeImage(scratch)).rejects.toThrow(/not a regular file/);
  });
});

describe('percentile normalization', () => {
  /** numpy.percentile's default (linear) definition, by sorting: the oracle for the histogram version. */
  function sortedPercentile(values: number[], p: number): number {
    const sorted = [...values].sort((a, b) => a - b);
    const rank = (p / 100) * (sorted.length - 1);
    const lower = Math.floor(rank);
    const upper = Math.min(lower + 1, sorted.length - 1);
    return sorted[lower] + (rank - lower) * (sorted[upper] - sorted[lower]);
  }

  function randomImage(width: number, height: number, channels: number, bitDepth: 8 | 16, seed: number): RawImage {
    const rng = new Rng(seed);
    const max = bitDepth === 8 ? 255 : 4095;
    const data = bitDepth === 8 ? new Uint8Array(width * height * channels) : new Uint16Array(width * height * channels);
    // Skewed like fluorescence: mostly dim background above a camera offset, a bright tail.
    const offset = max >> 5;
    for (let i = 0; i < data.length; i++) data[i] = offset + Math.floor((max - offset) * rng.next() ** 1.5);
    return { width, height, channels, bitDepth, data };
  }

  it('finds the same percentiles as sorting, per channel, on 8- and 16-bit data', () => {
    for (const bitDepth of [8, 16] as const) {
      const image = randomImage(61, 47, 3, bitDepth, bitDepth);
      for (const [low, high] of [[1, 99.8], [0, 100], [2.5, 97.5], [50, 50]]) {
        const ranges = percentileRanges(image, { lowPercentile: low, highPercentile: high });
        for (let c = 0; c < 3; c++) {
          const values = Array.from(extractChannel(image, c).data);
          expect(ranges[c].low).toBeCloseTo(sortedPercentile(values, low), 9);
          expect(ranges[c].high).toBeCloseTo(sortedPercentile(values, high), 9);
        }
      }
    }
  });

  it('maps the 1st..99.8th percentile window to [0, 1] and clips outside it', () => {
    const image = randomImage(100, 80, 1, 16, 3);
    const { data, ranges } = normalizePercentile(image);
    const { low, high } = ranges[0];
    expect(high).toBeGreaterThan(low);
    let below = 0;
    let above = 0;
    for (let i = 0; i < data.length; i++) {
      expect(data[i]).toBeGreaterThanOrEqual(0);
      expect(data[i]).toBeLessThanOrEqual(1);
      const expected = Math.min(1, Math.max(0, (image.data[i] - low) / (high - low)));
      expect(data[i]).toBeCloseTo(expected, 6);
      if (image.data[i] <= low) below++;
      if (image.data[i] >= high) above++;
    }
    // About 1% at or under the low end, 0.2% at or over the high end.
    expect(below / data.length).toBeGreaterThanOrEqual(0.01);
    expect(below / data.length).toBeLessThan(0.03);
    expect(above / data.length).toBeGreaterThanOrEqual(0.002);
    expect(above / data.length).toBeLessThan(0.01);
  });

  it('normalizes channels independently of their scale', () => {
    const base = randomImage(50, 40, 1, 8, 5);
    const data = new Uint16Array(50 * 40 * 2);
    for (let i = 0; i < 50 * 40; i++) {
      data[i * 2] = base.data[i];
      data[i * 2 + 1] = base.data[i] * 10 + 7;
    }
    const { data: out, ranges } = normalizePercentile({ width: 50, height: 40, channels: 2, bitDepth: 16, data });
    expect(ranges[1].low).toBeCloseTo(ranges[0].low * 10 + 7, 6);
    for (let i = 0; i < 50 * 40; i++) expect(out[i * 2 + 1]).toBeCloseTo(out[i * 2], 5);
  });

  it('normalizes a tile with the whole image’s ranges exactly as the whole image', () => {
    const image = randomImage(64, 64, 2, 16, 7);
    const whole = normalizePercentile(image);
    const tileData = new Uint16Array(16 * 16 * 2);
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        for (let c = 0; c < 2; c++) tileData[(y * 16 + x) * 2 + c] = image.data[((y + 20) * 64 + x + 30) * 2 + c];
      }
    }
    const tile = normalizeWithRanges({ width: 16, height: 16, channels: 2, bitDepth: 16, data: tileData }, whole.ranges);
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        for (let c = 0; c < 2; c++) {
          expect(tile[(y * 16 + x) * 2 + c]).toBe(whole.data[((y + 20) * 64 + x + 30) * 2 + c]);
        }
      }
    }
  });

  it('samples huge images with a stride and stays close to the exact window', () => {
    const image = randomImage(1000, 1000, 1, 16, 11);
    const exact = percentileRanges(image, { stride: 1 });
    const sampled = percentileRanges(image, { maxSamples: 50_000 });
    expect(Math.abs(sampled[0].low - exact[0].low)).toBeLessThan(2);
    expect(Math.abs(sampled[0].high - exact[0].high) / exact[0].high).toBeLessThan(0.02);
  });

  /** A field with no objects: camera offset plus a few grey levels of noise, like BBBC039's empty wells. */
  function emptyField(seed: number): RawImage {
    const rng = new Rng(seed);
    const data = new Uint16Array(80 * 60).map(() => 130 + Math.round(8 * rng.next()));
    return { width: 80, height: 60, channels: 1, bitDepth: 16, data };
  }

  it('an empty field among fields with objects is not stretched into noise (spanFloor)', () => {
    const fields = Array.from({ length: 19 }, (_, i) => randomImage(80, 60, 1, 16, 20 + i));
    const empty = emptyField(1);
    const floor = spanFloor([...fields, empty].map((im) => percentileRanges(im)));
    const spans = fields.map((im) => percentileRanges(im)[0]).map((r) => r.high - r.low);
    // A quarter of the set's 10th-percentile window: below every field with objects, far above the empty one.
    expect(floor[0]).toBeGreaterThan(SPAN_FLOOR_SHARE * Math.min(...spans));
    expect(floor[0]).toBeLessThan(SPAN_FLOOR_SHARE * Math.max(...spans));
    const own = normalizePercentile(empty);
    expect(Math.max(...own.data)).toBe(1);
    const floored = normalizePercentile(empty, { minSpans: floor });
    expect(floored.ranges[0]).toEqual({ low: own.ranges[0].low, high: own.ranges[0].low + floor[0] });
    expect(Math.max(...floored.data)).toBeLessThan(0.05);
    // Fields with objects keep their own window exactly.
    for (const im of fields) expect(normalizePercentile(im, { minSpans: floor }).data).toEqual(normalizePercentile(im).data);
  });

  it('spanFloor follows the dim group of a mixed set, per channel', () => {
    const window = (...spans: number[]) => spans.map((s) => ({ low: 100, high: 100 + s }));
    // Two acquisitions, a third of the images dim: the floor stays under the dim group's windows.
    const mixed = [...Array(4).fill(window(60, 1000)), ...Array(8).fill(window(1500, 1000))];
    const [dim, second] = spanFloor(mixed);
    expect(dim).toBe(SPAN_FLOOR_SHARE * 60);
    expect(second).toBe(SPAN_FLOOR_SHARE * 1000);
    // A channel that only some images have gets its floor from those.
    expect(spanFloor([window(400), window(400, 80)])).toEqual([SPAN_FLOOR_SHARE * 400, SPAN_FLOOR_SHARE * 80]);
    expect(spanFloor([])).toEqual([]);
  });

  it('handles float data and constant images', () => {
    const floats = new Float32Array(1000).map((_, i) => i / 10 - 20);
    const ranges = percentileRanges({ width: 100, height: 10, channels: 1, bitDepth: 32, data: floats });
    expect(ranges[0].low).toBeCloseTo(sortedPercentile(Array.from(floats), 1), 2);
    expect(ranges[0].high).toBeCloseTo(sortedPercentile(Array.from(floats), 99.8), 2);

    const flat = normalizePercentile({ width: 4, height: 4, channels: 1, bitDepth: 8, data: new Uint8Array(16).fill(9) });
    expect(Array.from(flat.data)).toEqual(new Array(16).fill(0));
  });
});

/** Parses a picture: each character one pixel, '.' = 0, a digit = its value. */
function picture(rows: string[]): { values: Int32Array; width: number; height: number } {
  const width = rows[0].length;
  const values = new Int32Array(width * rows.length);
  rows.forEach((row, y) => [...row].forEach((ch, x) => (values[y * width + x] = ch === '.' ? 0 : Number(ch))));
  return { values, width, height: rows.length };
}

/** True when two label images describe the same objects, whatever the numbering. */
function sameObjects(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  const forward = new Map<number, number>();
  const backward = new Map<number, number>();
  for (let i = 0; i < a.length; i++) {
    if ((a[i] === 0) !== (b[i] === 0)) return false;
    if (a[i] === 0) continue;
    if ((forward.get(a[i]) ?? b[i]) !== b[i] || (backward.get(b[i]) ?? a[i]) !== a[i]) return false;
    forward.set(a[i], b[i]);
    backward.set(b[i], a[i]);
  }
  return true;
}

describe('connected components', () => {
  const shapes = picture([
    '11...1....',
    '11..1.....',
    '.........1',
    '.1111...1.',
    '.1..1.....',
    '.1111..1.1',
  ]);

  it('counts components with 4- and 8-connectivity', () => {
    const { values, width, height } = shapes;
    // 4: the 2x2 block, the ring, two diagonal pairs counted as four singles, two more singles.
    expect(connectedComponents(values, width, height, 4).count).toBe(8);
    // 8: each diagonal pair is one object.
    expect(connectedComponents(values, width, height, 8).count).toBe(6);
    const { labels } = connectedComponents(values, width, height, 8);
    expect(labels[0]).toBe(1); // raster order of first pixels
    expect(labels[1 * width + 4]).toBe(labels[5]);
    expect(labels[4 * width + 2]).toBe(0); // hole of the ring stays background
  });

  it('separates regions by value in graph-coloured masks', () => {
    const { values, width, height } = picture([
      '1122..1',
      '1122..1',
      '......1',
      '33.....',
      '33....3',
    ]);
    const regions = labelRegions(values, width, height, 4);
    // The touching 1- and 2-squares are two nuclei; the two 1-regions and the two 3-regions are four more.
    expect(regions.count).toBe(5);
    expect(connectedComponents(values, width, height, 4).count).toBe(4);
  });

  it('relabels sequentially and removes small objects', () => {
    const { values, width, height } = picture(['7.77.9', '7....9', '..5...']);
    const relabelled = relabelSequential(values);
    expect(relabelled.count).toBe(3);
    expect(Array.from(relabelled.labels.slice(0, 6))).toEqual([1, 0, 1, 1, 0, 2]);
    const components = labelRegions(values, width, height, 4);
    expect(Array.from(objectSizes(components.labels, components.count))).toEqual([11, 2, 2, 2, 1]);
    const kept = removeSmallObjects(components, 2);
    expect(kept.count).toBe(3);
    expect(kept.labels[2 * width + 2]).toBe(0);
  });
});

describe('interior/boundary targets', () => {
  // Two 6x6 squares sharing an edge, and a 5x5 square apart.
  const width = 20;
  const height = 10;
  const labels = new Int32Array(width * height);
  const fill = (x0: number, y0: number, size: number, id: number) => {
    for (let y = y0; y < y0 + size; y++) for (let x = x0; x < x0 + size; x++) labels[y * width + x] = id;
  };
  fill(1, 2, 6, 1);
  fill(7, 2, 6, 2);
  fill(14, 3, 5, 3);

  it('separates two touching squares by a boundary, leaving disjoint interiors', () => {
    const targets = instanceTargets(labels, width, height);
    // Merged as a foreground mask, the touching squares are one object...
    expect(connectedComponents(targets.foreground, width, height, 8).count).toBe(2);
    // ...their interiors are not: each square shrinks by one pixel on every side.
    const interiors = connectedComponents(targets.interior, width, height, 8);
    expect(interiors.count).toBe(3);
    expect(Array.from(objectSizes(interiors.labels, interiors.count)).slice(1)).toEqual([16, 16, 9]);
    for (let y = 2; y < 8; y++) {
      expect(targets.boundary[y * width + 6]).toBe(1);
      expect(targets.boundary[y * width + 7]).toBe(1);
    }
    for (let i = 0; i < labels.length; i++) {
      expect(targets.interior[i] + targets.boundary[i]).toBe(targets.foreground[i]);
    }
  });

  it('makes a thicker rim with boundaryWidth 2', () => {
    const targets = instanceTargets(labels, width, height, { boundaryWidth: 2 });
    const interiors = connectedComponents(targets.interior, width, height, 8);
    expect(Array.from(objectSizes(interiors.labels, interiors.count)).slice(1)).toEqual([4, 4, 1]);
  });

  it('recovers the objects from the interior, with or without a foreground map', () => {
    const targets = instanceTargets(labels, width, height);
    const interiorProbability = Float32Array.from(targets.interior, (v) => (v ? 0.9 : 0.1));
    const withForeground = instancesFromInterior(interiorProbability, width, height, { foreground: targets.foreground });
    expect(withForeground.count).toBe(3);
    expect(sameObjects(withForeground.labels, labels)).toBe(true);
    const grownByOne = instancesFromInterior(interiorProbability, width, height);
    expect(sameObjects(grownByOne.labels, labels)).toBe(true);
    // The small square goes once it is below minSize.
    const pruned = instancesFromInterior(interiorProbability, width, height, { foreground: targets.foreground, minSize: 30 });
    expect(pruned.count).toBe(2);
  });

  it('keeps objects too thin to have an interior when a foreground map is given', () => {
    const { values, width: w, height: h } = picture([
      '..........',
      '.111....2.',
      '.111....2.',
      '.111....2.',
      '........2.',
    ]);
    const targets = instanceTargets(values, w, h);
    expect(targets.interior.reduce((s, v) => s + v, 0)).toBe(1); // only the middle of the 3x3 square
    const kept = instancesFromInterior(targets.interior, w, h, { foreground: targets.foreground });
    expect(kept.count).toBe(2);
    expect(sameObjects(kept.labels, values)).toBe(true);
    const dropped = instancesFromInterior(targets.interior, w, h, { foreground: targets.foreground, keepSeedless: false });
    expect(dropped.count).toBe(1);
  });

  it('round-trips synthetic nuclei (touching ones included)', () => {
    for (const sample of syntheticDataset(4, { seed: 40, width: 96, height: 96, objects: 14 })) {
      const { width: w, height: h } = sample.image;
      const targets = instanceTargets(sample.instances, w, h);
      const recovered = instancesFromInterior(targets.interior, w, h, { foreground: targets.foreground });
      const [score] = matchInstances(recovered.labels, sample.instances, [0.9]);
      expect(score.fn).toBe(0);
      expect(score.fp).toBe(0);
    }
  });
});

describe('metrics', () => {
  it('computes dice and IoU, with an ignore mask', () => {
    const prediction = [1, 1, 0, 0, 1];
    const target = [1, 0, 1, 0, 1];
    expect(dice(prediction, target)).toBeCloseTo(4 / 6, 12);
    expect(iou(prediction, target)).toBeCloseTo(2 / 4, 12);
    const ignore = [0, 1, 1, 0, 0];
    expect(dice(prediction, target, ignore)).toBe(1);
    expect(dice([0, 0], [0, 0])).toBe(1);
    expect(dice([1, 0], [0, 1])).toBe(0);
    expect(() => dice([1], [1, 0])).toThrow(RangeError);
  });

  it('places Otsu’s threshold between the modes of a bimodal histogram', () => {
    const rng = new Rng(3);
    const values = new Uint16Array(20000);
    for (let i = 0; i < values.length; i++) {
      const bright = i % 4 === 0;
      values[i] = Math.round(bright ? 3000 + 150 * rng.normal() : 1000 + 100 * rng.normal());
    }
    const threshold = otsuThreshold(values);
    expect(threshold).toBeGreaterThan(1500);
    expect(threshold).toBeLessThan(2500);
    let correct = 0;
    for (let i = 0; i < values.length; i++) if ((values[i] > threshold) === (i % 4 === 0)) correct++;
    expect(correct / values.length).toBeGreaterThan(0.999);
  });

  it('maximises the between-class variance (checked by brute force)', () => {
    const rng = new Rng(9);
    const histogram = Array.from({ length: 64 }, (_, b) => Math.round(100 * Math.exp(-((b - 15) ** 2) / 40) + 60 * Math.exp(-((b - 45) ** 2) / 30) + 5 * rng.next()));
    const k = otsuBinFromHistogram(histogram);
    const between = (split: number) => {
      let w0 = 0, s0 = 0, w1 = 0, s1 = 0;
      histogram.forEach((h, b) => (b <= split ? ((w0 += h), (s0 += b * h)) : ((w1 += h), (s1 += b * h))));
      return w0 * w1 * (s0 / w0 - s1 / w1) ** 2;
    };
    for (let split = 0; split < 63; split++) expect(between(k)).toBeGreaterThanOrEqual(between(split) * (1 - 1e-12));
    // The middle of a flat valley, not its first bin.
    expect(otsuThreshold(Uint8Array.from([10, 10, 10, 200, 200]))).toBe(104.5);
  });

  it('segments with the requested polarity', () => {
    const data = Uint8Array.from([10, 12, 200, 210, 11, 205]);
    const image: RawImage = { width: 6, height: 1, channels: 1, bitDepth: 8, data };
    expect(Array.from(otsuSegment(image))).toEqual([0, 0, 1, 1, 0, 1]);
    expect(Array.from(otsuSegment(image, { polarity: 'dark' }))).toEqual([1, 1, 0, 0, 1, 0]);
    const floats: RawImage = { width: 6, height: 1, channels: 1, bitDepth: 32, data: Float32Array.from(data, (v) => v / 255) };
    expect(Array.from(otsuSegment(floats))).toEqual([0, 0, 1, 1, 0, 1]);
  });

  it('matches instances at IoU thresholds and scores precision, recall, F1 and AP', () => {
    // Truth: objects A (10 px) and B (10 px). Prediction: A exactly; B shifted by 2 (IoU 8/12);
    // an extra object C.
    const width = 30;
    const truth = new Int32Array(width);
    const predicted = new Int32Array(width);
    for (let x = 0; x < 10; x++) truth[x] = 5;
    for (let x = 12; x < 22; x++) truth[x] = 9;
    for (let x = 0; x < 10; x++) predicted[x] = 2;
    for (let x = 14; x < 24; x++) predicted[x] = 1;
    for (let x = 26; x < 30; x++) predicted[x] = 3;
    const [at50, at70] = matchInstances(predicted, truth, [0.5, 0.7]);
    expect(at50).toMatchObject({ tp: 2, fp: 1, fn: 0 });
    expect(at50.precision).toBeCloseTo(2 / 3, 12);
    expect(at50.recall).toBe(1);
    expect(at50.f1).toBeCloseTo(0.8, 12);
    expect(at50.ap).toBeCloseTo(2 / 3, 12);
    expect(at70).toMatchObject({ tp: 1, fp: 2, fn: 1 });
    expect(at70.ap).toBeCloseTo(1 / 4, 12);
    const perfect = matchInstances(truth, truth, DSB_THRESHOLDS);
    expect(meanAveragePrecision(perfect)).toBe(1);
    expect(matchInstances(new Int32Array(4), new Int32Array(4))[0].ap).toBe(1);
    expect(matchInstances(new Int32Array(4), Int32Array.from([0, 1, 1, 0]))[0]).toMatchObject({ fn: 1, ap: 0 });
  });
});

describe('synthetic nuclei', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    const a = syntheticNuclei({ seed: 12 });
    const b = syntheticNuclei({ seed: 12 });
    const c = syntheticNuclei({ seed: 13 });
    expect(Buffer.from(a.image.data.buffer).equals(Buffer.from(b.image.data.buffer))).toBe(true);
    expect(Array.from(a.instances)).toEqual(Array.from(b.instances));
    expect(Buffer.from(a.image.data.buffer).equals(Buffer.from(c.image.data.buffer))).toBe(false);
  });

  it('labels every nucleus as one connected object, some of them touching', () => {
    let touchingPairs = 0;
    for (const sample of syntheticDataset(5, { seed: 100 })) {
      const { width, height } = sample.image;
      expect(sample.image).toMatchObject({ width: 128, height: 128, channels: 1, bitDepth: 16 });
      expect(sample.count).toBeGreaterThanOrEqual(10);
      expect(Math.max(...sample.instances)).toBe(sample.count);
      expect(labelRegions(sample.instances, width, height, 4).count).toBe(sample.count);
      for (let i = 0; i < sample.instances.length - 1; i++) {
        const here = sample.instances[i];
        const right = sample.instances[i + 1];
        if (here && right && here !== right && (i + 1) % width !== 0) touchingPairs++;
      }
    }
    expect(touchingPairs).toBeGreaterThan(0);
  });

  it('looks like fluorescence: bright nuclei on a dim background that Otsu separates', () => {
    for (const bitDepth of [8, 16] as const) {
      const sample = syntheticNuclei({ seed: 5, bitDepth, width: 160, height: 120 });
      const max = bitDepth === 8 ? 255 : 4095;
      expect(sample.image.data).toBeInstanceOf(bitDepth === 8 ? Uint8Array : Uint16Array);
      expect(Math.max(...sample.image.data)).toBeLessThanOrEqual(max);
      expect(Math.max(...sample.image.data)).toBeGreaterThan(max / 3);
      expect(dice(otsuSegment(sample.image), sample.foreground)).toBeGreaterThan(0.75);
    }
  });

  it('makes a second channel that follows the first without copying it', () => {
    const sample = syntheticNuclei({ seed: 8, channels: 2 });
    const n = 128 * 128;
    const first = Float64Array.from({ length: n }, (_, i) => sample.image.data[i * 2]);
    const second = Float64Array.from({ length: n }, (_, i) => sample.image.data[i * 2 + 1]);
    const mean = (v: Float64Array) => v.reduce((s, x) => s + x, 0) / v.length;
    const [m1, m2] = [mean(first), mean(second)];
    let cov = 0, v1 = 0, v2 = 0;
    for (let i = 0; i < n; i++) {
      cov += (first[i] - m1) * (second[i] - m2);
      v1 += (first[i] - m1) ** 2;
      v2 += (second[i] - m2) ** 2;
    }
    const r = cov / Math.sqrt(v1 * v2);
    expect(r).toBeGreaterThan(0.5);
    expect(r).toBeLessThan(0.97);
  });
});
