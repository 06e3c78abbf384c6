/**
 * Folder import, mask import, tiled reading and export against the real sets in ../shared/data,
 * read in place (nothing is copied). Each block skips, with the reason in its name, when its set
 * is absent. The BBBC039 scan prints the import throughput (probe + SHA-256 + full decode).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCocoDataset, cocoToLabels } from '../../src/imaging/coco';
import { datasetUnavailableReason, defaultDataRoot, type DatasetName } from '../../src/imaging/datasets';
import { decodeImage, decodeMask } from '../../src/imaging/decode';
import { writeLabelImage } from '../../src/imaging/export';
import { importFolder, type ScannedImage } from '../../src/imaging/import';
import { labelRegions } from '../../src/imaging/instances';
import { importMask, matchMasks } from '../../src/imaging/masks';
import { normalizeWithRanges, percentileRanges } from '../../src/imaging/normalize';
import { fileSource } from '../../src/imaging/region';
import { TiffReader } from '../../src/imaging/tiff';

const root = defaultDataRoot();
const scratch = mkdtempSync(join(tmpdir(), 'maskloop-import-real-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function describeDataset(name: DatasetName, body: () => void): void {
  const reason = datasetUnavailableReason(name, root);
  if (reason) console.warn(`[import] skipping ${name}: ${reason}`);
  describe.skipIf(reason !== null)(reason ? `${name} (skipped: ${reason})` : `import: ${name}`, body);
}

/** Differing positions; toEqual on million-element arrays takes vitest seconds each. */
function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.max(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

const list = (dir: string) => readdirSync(dir).sort().map((f) => join(dir, f));

describeDataset('bbbc039-nuclei', () => {
  const dir = join(root, 'bbbc039-nuclei');

  it('scans all 200 16-bit TIFFs (probe + hash + full decode), noting the malformed DateTime as a warning only', async () => {
    const images: ScannedImage[] = [];
    const summary = await importFolder(join(dir, 'images'), (e) => {
      if (e.kind === 'image') images.push(e);
    });
    expect(summary).toMatchObject({ images: 200, rejected: 0, skipped: 0 });
    expect(images.every((i) => i.width === 696 && i.height === 520 && i.bitDepth === 16 && i.channels === 1 && i.verified === 'decoded')).toBe(true);
    expect(images.every((i) => i.warnings.some((w) => /DateTime/.test(w)))).toBe(true);
    expect(new Set(images.map((i) => i.sha256)).size).toBe(200);
    console.log(
      `[import] bbbc039 images: ${summary.images} files, ${(summary.bytes / 2 ** 20).toFixed(0)} MiB in ${summary.seconds.toFixed(2)} s ` +
        `= ${(summary.images / summary.seconds).toFixed(0)} images/s (probe + SHA-256 + full decode, concurrency 2)`,
    );
  });

  it('imports the graph-coloured masks as nuclei: same objects as the dataset reader, plausible counts', async () => {
    const masks = list(join(dir, 'masks'));
    const match = matchMasks(list(join(dir, 'images')), masks);
    expect(match.pairs.length).toBe(200);
    expect(match.unmatchedImages).toEqual([]);
    const counts: number[] = [];
    for (const [k, path] of masks.entries()) {
      const mask = await importMask(path);
      // A field without nuclei has an all-zero mask: nothing to tell its encoding by.
      expect(mask.encoding, path).toBe(mask.count === 0 ? 'binary' : 'graph-coloured');
      counts.push(mask.count);
      if (k % 10 !== 0) continue;
      const red = await decodeMask(path);
      const reference = labelRegions(red.data, red.width, red.height, 4);
      expect(mask.count).toBe(reference.count);
      expect(mismatches(mask.labels.data, reference.labels)).toBe(0);
    }
    expect(counts.length).toBe(200);
    const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
    console.log(`[import] bbbc039 masks: ${Math.min(...counts)}..${Math.max(...counts)} nuclei per image, mean ${mean.toFixed(1)}, ${counts.reduce((a, b) => a + b, 0)} in all, ${counts.filter((c) => c === 0).length} empty`);
    // U2OS nuclei in a 696x520 field: tens to a couple of hundred per image (BBBC039 lists about
    // 23,000 in its 200 images), never thousands; an empty field is rare.
    expect(counts.filter((c) => c === 0).length).toBeLessThanOrEqual(5);
    expect(Math.max(...counts)).toBeLessThan(400);
    expect(mean).toBeGreaterThan(50);
    expect(mean).toBeLessThan(200);
  });

  it('reads the 12-bit data exactly through the tile reader and fileSource', async () => {
    const path = list(join(dir, 'images'))[0];
    const whole = await decodeImage(path);
    const reader = TiffReader.open(path);
    expect(mismatches(reader.readWindow(0, 0, 0, 696, 520), whole.data)).toBe(0);
    reader.close();
    const ranges = percentileRanges(whole);
    const source = await fileSource(path);
    expect(source.ranges).toEqual(ranges);
    const normalised = normalizeWithRanges(whole, ranges);
    const tile = source.read(600, 400, 128, 128);
    let diff = 0;
    for (let y = 0; y < 120; y++) for (let x = 0; x < 96; x++) if (tile[y * 128 + x] !== normalised[(400 + y) * 696 + 600 + x]) diff++;
    expect(diff).toBe(0);
    source.close();
  });
});

describeDataset('ctc-samples', () => {
  const dir = join(root, 'ctc-samples');

  it('scans both sequences and pairs each tNN.tif with its man_segNN.tif', async () => {
    const images: ScannedImage[] = [];
    const summary = await importFolder(dir, (e) => {
      if (e.kind === 'image') images.push(e);
    });
    expect(summary.rejected).toBe(0);
    expect(summary.images).toBe(20);
    const gowt = images.filter((i) => i.relativePath.startsWith('N2DH-GOWT1/images/'));
    const hela = images.filter((i) => i.relativePath.startsWith('N2DL-HeLa/images/'));
    expect(gowt.every((i) => i.bitDepth === 8 && i.width === 1024)).toBe(true);
    expect(hela.every((i) => i.bitDepth === 16 && i.width === 1100 && i.height === 700)).toBe(true);
    for (const sequence of ['N2DH-GOWT1', 'N2DL-HeLa']) {
      const match = matchMasks(list(join(dir, sequence, 'images')), list(join(dir, sequence, 'masks')));
      expect(match.unmatchedImages).toEqual([]);
      for (const pair of match.pairs) expect(pair.mask.replace(/.*man_seg/, 't')).toBe(pair.image.replace(/.*\//, ''));
    }
  });

  it('imports the 16-bit LZW man_seg label images exactly and round-trips them through PNG, TIFF and COCO', async () => {
    for (const sequence of ['N2DH-GOWT1', 'N2DL-HeLa']) {
      for (const path of list(join(dir, sequence, 'masks'))) {
        const mask = await importMask(path);
        const stored = await decodeMask(path);
        expect(mask.encoding, path).toBe('labels');
        expect(mismatches(mask.labels.data, stored.data), path).toBe(0);
        // The tile reader's own LZW decoder agrees with libtiff's.
        const reader = TiffReader.open(path);
        expect(mismatches(reader.readWindow(0, 0, 0, stored.width, stored.height), stored.data), path).toBe(0);
        reader.close();
        for (const ext of ['png', 'tif']) {
          const out = join(scratch, `${sequence}-${path.replace(/.*\//, '')}.${ext}`);
          await writeLabelImage(out, mask.labels);
          expect(mismatches((await importMask(out, { encoding: 'labels' })).labels.data, stored.data), out).toBe(0);
        }
        const { width, height } = mask.labels;
        const coco = JSON.parse(JSON.stringify(buildCocoDataset([{ image: { id: 1, file_name: path, width, height }, labels: mask.labels }])));
        expect(coco.annotations.length).toBe(mask.count);
        expect(mismatches(cocoToLabels(coco, 1).data, stored.data)).toBe(0);
      }
    }
  });

  it('reads the LZW images exactly through the tile reader', async () => {
    for (const sequence of ['N2DH-GOWT1', 'N2DL-HeLa']) {
      for (const path of list(join(dir, sequence, 'images'))) {
        const whole = await decodeImage(path);
        const reader = TiffReader.open(path);
        expect(mismatches(reader.readWindow(0, 0, 0, whole.width, whole.height), whole.data), path).toBe(0);
        reader.close();
      }
    }
  });
});

describeDataset('pfc-brightfield', () => {
  it('imports the 1-bit PNG masks as binary, one neuron region or a few', async () => {
    const dir = join(root, 'pfc-brightfield', 'masks');
    for (const path of list(dir).slice(0, 10)) {
      const mask = await importMask(path);
      expect(mask.encoding, path).toBe('binary');
      expect(mask.count).toBeGreaterThan(0);
      expect(mask.count).toBeLessThan(50);
    }
  });
});
