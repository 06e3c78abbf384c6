/**
 * Pretraining's images streamed from a real project: bounded memory, every image reached in
 * turn, the same images for the same step (so a restarted run resumes exactly), an image larger
 * than the limit held as regions of it, unreadable files left out and counted.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pretrain } from '../../src/engine/train/pretrain';
import { syntheticNuclei } from '../../src/imaging/synthetic';
import { loadImage } from '../../src/jobs/data';
import { ProjectImageStream } from '../../src/jobs/imageStream';
import { importImages } from '../../src/jobs/workflows/importImages';
import { createProject, type Project } from '../../src/store';
import { engine } from '../helpers/engine';

const root = mkdtempSync(path.join(tmpdir(), 'maskloop-stream-'));
const SIZE = 64;
const COUNT = 12;
let project: Project;

beforeAll(async () => {
  await engine();
  const folder = path.join(root, 'images');
  mkdirSync(folder);
  for (let i = 0; i < COUNT; i++) {
    const grey = Uint8Array.from(syntheticNuclei({ width: SIZE, height: SIZE, bitDepth: 8, seed: 70 + i }).image.data as Uint8Array);
    await sharp(grey, { raw: { width: SIZE, height: SIZE, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(folder, `nuclei-${i}.png`));
  }
  project = createProject(path.join(root, 'project'), { name: 'stream' });
  expect((await importImages(project, { folder, split: 'unassigned' })).added).toBe(COUNT);
});

afterAll(() => {
  project.close();
  rmSync(root, { recursive: true, force: true });
});

const limits = { images: 4, pixels: 2 ** 20, region: 2 ** 20, turnover: 2 };
const stream = () => new ProjectImageStream(project.listImages(), limits, []);

describe('ProjectImageStream', () => {
  it('holds at most its limit, moves on a quarter at a time, and reaches every image', async () => {
    const s = stream();
    expect(s.holdsAll).toBe(false);
    let previous: readonly Float32Array[] = [];
    for (let step = 0; step < 40; step++) {
      const images = await s.forStep(step);
      expect(images.length).toBe(4);
      expect(s.heldCount).toBeLessThanOrEqual(4);
      const pixels = images.map((im) => im.pixels);
      if (step % 2 === 1) expect(pixels).toEqual(previous);
      // A move keeps three of the four images: one in, one out.
      if (step % 2 === 0 && step > 0) expect(pixels.filter((p) => previous.includes(p)).length).toBe(3);
      previous = pixels;
    }
    expect(s.seen.size).toBe(COUNT);
    expect(s.unreadable.size).toBe(0);
  });

  it('gives the same images for the same step, in any order of asking', async () => {
    const [a, b] = [stream(), stream()];
    const late = await a.forStep(27);
    await b.forStep(5);
    expect((await b.forStep(27)).map((im) => im.pixels)).toEqual(late.map((im) => im.pixels));
    expect((await a.forStep(3)).map((im) => im.pixels)).toEqual((await b.forStep(3)).map((im) => im.pixels));
  });

  it('bounds the pixels held, not only the images', async () => {
    const s = new ProjectImageStream(project.listImages(), { ...limits, pixels: SIZE * SIZE * 2.5 }, []);
    expect((await s.forStep(0)).length).toBe(2);
    expect(s.heldCount).toBe(2);
  });

  it('holds a small project whole and never reloads it', async () => {
    const s = new ProjectImageStream(project.listImages(), { ...limits, images: COUNT }, []);
    expect(s.holdsAll).toBe(true);
    const first = await s.forStep(0);
    expect(await s.forStep(999)).toBe(first);
  });

  it('a restarted pretraining crops from the images an uninterrupted one would', async () => {
    const base = { tasks: ['inpainting'], config: { depth: 3, baseFilters: 4 }, batchSize: 2, patchSize: 32, seed: 5 };
    const straight = await pretrain({ ...base, images: stream(), steps: 8 });
    straight.model.dispose();
    const file = path.join(root, 'stream.mlckpt');
    const first = await pretrain({ ...base, images: stream(), steps: 3, checkpointFile: file, checkpointEvery: 3 });
    first.model.dispose();
    // A new stream, as a new process would make.
    const resumed = await pretrain({ ...base, images: stream(), steps: 8, checkpointFile: file, resume: true });
    resumed.model.dispose();
    expect(resumed.losses.length).toBe(5);
    resumed.losses.forEach((loss, i) => expect(loss).toBeCloseTo(straight.losses[3 + i], 4));
  });

  it('leaves out files that cannot be read, counts them, and says so when none can be', async () => {
    const records = project.listImages();
    const gone = { ...records[0], absolutePath: path.join(root, 'moved away.png') };
    const s = new ProjectImageStream([gone, ...records.slice(1)], limits, []);
    for (let step = 0; step < 40; step++) expect((await s.forStep(step)).length).toBeGreaterThan(0);
    expect(s.unreadable).toEqual(new Set([gone.id]));
    expect(s.seen.size).toBe(COUNT - 1);
    const none = new ProjectImageStream([gone], limits, []);
    await expect(none.forStep(0)).rejects.toThrow(/none of the 1 images .* could be read/);
  });

  it('holds an image larger than the limit as a region of it, normalised as the whole image, at a place that moves with the window', async () => {
    const folder = path.join(root, 'big');
    mkdirSync(folder);
    const [W, H] = [320, 240];
    const values = new Uint16Array(W * H);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) values[y * W + x] = (x * 37 + y * 101 + ((x * y) % 1009) * 61) % 65536;
    await sharp(values, { raw: { width: W, height: H, channels: 1 } }).toColourspace('grey16')
      .tiff({ compression: 'deflate', tile: true, tileWidth: 64, tileHeight: 64 }).toFile(path.join(folder, 'slide 16-bit.tif'));
    const big = createProject(path.join(root, 'big project'), { name: 'big' });
    try {
      expect((await importImages(big, { folder, split: 'unassigned' })).added).toBe(1);
      const records = [...big.listImages(), ...project.listImages().slice(0, 2)];
      const slide = records[0];
      const regionLimits = { ...limits, region: SIZE * SIZE };
      const s = new ProjectImageStream(records, regionLimits, []);
      expect(s.holdsAll).toBe(false);
      const whole = await loadImage(slide, []);
      // Where a held region sits in the whole image: its values there, bit for bit, or -1.
      const placeOf = (region: { pixels: Float32Array; width: number; height: number }) => {
        for (let y = 0; y + region.height <= H; y++) {
          for (let x = 0; x + region.width <= W; x++) {
            let same = true;
            for (let r = 0; r < region.height && same; r++) {
              for (let c = 0; c < region.width && same; c++) same = region.pixels[r * region.width + c] === whole.pixels[(y + r) * W + x + c];
            }
            if (same) return y * W + x;
          }
        }
        return -1;
      };
      const places = new Set<number>();
      for (let step = 0; step < 12; step += regionLimits.turnover) {
        const held = await s.forStep(step);
        // One held image is a region of the slide (the other two are the small images, whole).
        const found = held.map(placeOf).filter((place) => place >= 0);
        expect(found).toHaveLength(1);
        places.add(found[0]);
        expect(held.every((im) => im.width * im.height * im.channels <= SIZE * SIZE)).toBe(true);
        // Another stream gives the same region at the same step: a resumed run crops the same pixels.
        const again = await new ProjectImageStream(records, regionLimits, []).forStep(step);
        expect(again.map((im) => Array.from(im.pixels.subarray(0, 64)))).toEqual(held.map((im) => Array.from(im.pixels.subarray(0, 64))));
      }
      expect(places.size).toBeGreaterThan(1);
    } finally {
      big.close();
    }
  });
});
