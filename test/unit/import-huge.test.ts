/**
 * HUGE-IMAGE MEMORY TEST (about 10 s): a 10000 x 10000 16-bit tiled TIFF (200 MB of pixels) is
 * read tile by tile through fileSource, intensity window included, and the process's peak RSS
 * must grow by far less than the image. The file is written by sharp in a child process, so the
 * peak-RSS high-water mark of this process only measures the reading.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileSource, readRegion } from '../../src/imaging/region';

const SIZE = 10_000;
const PERIOD = 1000;
const TILE = 256;

/** The stored value at (x, y): the 1000 x 1000 pattern sharp's 'repeat' extension tiles out. */
function expected(x: number, y: number): number {
  const px = x % PERIOD;
  const py = y % PERIOD;
  return (px * 37 + py * 101 + ((px * py) % 1009) * 61) % 65536;
}

const scratch = mkdtempSync(join(tmpdir(), 'maskloop-import-huge-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('huge images (memory test)', () => {
  it('reads every tile of a 10000x10000 16-bit TIFF with peak RSS growth far below the image size', async () => {
    const path = join(scratch, 'huge 16-bit.tif');
    const script = `
      import sharp from 'sharp';
      const N = ${PERIOD};
      const tile = new Uint16Array(N * N);
      for (let y = 0; y < N; y++) for (let x = 0; x < N; x++) tile[y * N + x] = (x * 37 + y * 101 + ((x * y) % 1009) * 61) % 65536;
      await sharp(tile, { raw: { width: N, height: N, channels: 1 } })
        .extend({ right: ${SIZE - PERIOD}, bottom: ${SIZE - PERIOD}, extendWith: 'repeat' })
        .toColourspace('grey16')
        .tiff({ compression: 'deflate', tile: true, tileWidth: ${TILE}, tileHeight: ${TILE} })
        .toFile(process.argv[1]);`;
    execFileSync(process.execPath, ['--input-type=module', '-e', script, path], { cwd: process.cwd(), stdio: 'inherit' });
    expect(statSync(path).size).toBeGreaterThan(1_000_000);

    const peakBefore = process.resourceUsage().maxRSS * 1024;
    const started = performance.now();
    const source = await fileSource(path);
    const rangesSeconds = (performance.now() - started) / 1000;
    expect(source).toMatchObject({ width: SIZE, height: SIZE, channels: 1, bitDepth: 16, mode: 'tiled' });
    expect(source.ranges[0].low).toBeGreaterThanOrEqual(0);
    expect(source.ranges[0].high).toBeGreaterThan(source.ranges[0].low);

    let tiles = 0;
    let wrong = 0;
    let sum = 0;
    for (let y = 0; y < SIZE; y += TILE) {
      for (let x = 0; x < SIZE; x += TILE) {
        const pixels = source.read(x, y, TILE, TILE);
        sum += pixels[0];
        if (tiles % 7 === 0) {
          // Exact stored values on a sample of tiles; the window may run past the edge.
          const w = Math.min(TILE, SIZE - x);
          const h = Math.min(TILE, SIZE - y);
          const raw = source.readRaw(x, y, w, h);
          for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) if (raw[j * w + i] !== expected(x + i, y + j)) wrong++;
        }
        tiles++;
      }
    }
    source.close();
    const region = await readRegion(path, 9990, 4321, 10, 3);
    for (let j = 0; j < 3; j++) for (let i = 0; i < 10; i++) expect(region.data[j * 10 + i]).toBe(expected(9990 + i, 4321 + j));

    const seconds = (performance.now() - started) / 1000;
    const growth = process.resourceUsage().maxRSS * 1024 - peakBefore;
    console.log(
      `huge image: ${tiles} tiles of ${TILE}px read in ${seconds.toFixed(1)} s (ranges ${rangesSeconds.toFixed(1)} s); ` +
        `peak RSS growth ${(growth / 2 ** 20).toFixed(0)} MiB for a ${((SIZE * SIZE * 2) / 2 ** 20).toFixed(0)} MiB image`,
    );
    expect(tiles).toBe(Math.ceil(SIZE / TILE) ** 2);
    expect(wrong).toBe(0);
    expect(sum).toBeGreaterThan(0);
    expect(growth).toBeLessThan(2 * 2 ** 30);
    // Well under: bounded by the chunk cache (64 MiB) and one band of tiles, not by the image.
    expect(growth).toBeLessThan(400 * 2 ** 20);
  });
});
