/**
 * The readers against the real sets in ../shared/data, read in place. Each block skips, with the
 * reason in its name, when its set is absent. The Otsu baselines printed here are the floor a
 * trained model has to clear on the same test split.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeImage, decodeMask } from '../../src/imaging/decode';
import {
  datasetSplits,
  datasetUnavailableReason,
  defaultDataRoot,
  loadDataset,
  readManifest,
  type Dataset,
  type DatasetName,
  type LabeledImage,
} from '../../src/imaging/datasets';
import { connectedComponents, instancesFromInterior, instanceTargets, objectSizes } from '../../src/imaging/instances';
import { dice, matchInstances, otsuSegment } from '../../src/engine/metrics';

const root = defaultDataRoot();

function describeDataset(name: DatasetName, body: () => void): void {
  const reason = datasetUnavailableReason(name, root);
  if (reason) console.warn(`[datasets] skipping ${name}: ${reason}`);
  describe.skipIf(reason !== null)(reason ? `${name} (skipped: ${reason})` : name, body);
}

function foregroundFraction(sample: LabeledImage): number {
  let sum = 0;
  for (let i = 0; i < sample.foreground.length; i++) sum += sample.foreground[i];
  return sum / sample.foreground.length;
}

/** Mean Dice of the Otsu baseline over a split, printed for the record. */
function otsuBaseline(dataset: Dataset, split: string): number {
  const samples = dataset.splits[split];
  let total = 0;
  let overlap = 0;
  let sizes = 0;
  for (const sample of samples) {
    const prediction = otsuSegment(sample.image, { polarity: dataset.polarity });
    total += dice(prediction, sample.foreground);
    for (let i = 0; i < prediction.length; i++) {
      overlap += prediction[i] & sample.foreground[i];
      sizes += prediction[i] + sample.foreground[i];
    }
  }
  const mean = total / samples.length;
  console.log(
    `[baseline] ${dataset.name} ${split} (${samples.length} images): Otsu (${dataset.polarity} foreground) ` +
      `Dice of the foreground class: mean per image ${mean.toFixed(4)}, pooled over pixels ${(2 * overlap / sizes).toFixed(4)}`,
  );
  return mean;
}

/** Every image and mask of every split decodes, pairs agree in size; nothing is kept in memory. */
async function expectAllDecode(name: DatasetName, imageDir: string, maskName: (file: string) => string) {
  const entry = readManifest(root)[name];
  if (typeof entry.split === 'string') throw new Error(`${name} has no split lists`);
  for (const files of Object.values(entry.split)) {
    for (const file of files) {
      const image = await decodeImage(join(root, name, imageDir, file));
      const mask = await decodeMask(join(root, name, 'masks', maskName(file)));
      expect([mask.width, mask.height], file).toEqual([image.width, image.height]);
    }
  }
}

describe('data manifest', () => {
  const reason = datasetUnavailableReason('bbbc039-nuclei', root);
  it.skipIf(reason !== null)('has the documented fixed splits, disjoint', () => {
    const manifest = readManifest(root);
    const sizes = Object.fromEntries(
      Object.entries(manifest).map(([name, entry]) => [
        name,
        typeof entry.split === 'string' ? 'none' : Object.fromEntries(Object.entries(entry.split).map(([s, f]) => [s, f.length])),
      ]),
    );
    expect(sizes).toEqual({
      'isbi2012-em': { train: 20, val: 5, test: 5 },
      'bbbc039-nuclei': { train: 100, val: 50, test: 50 },
      'pfc-brightfield': { train: 69, val: 20, test: 20 },
      'ctc-samples': 'none',
    });
    for (const entry of Object.values(manifest)) {
      if (typeof entry.split === 'string') continue;
      const all = Object.values(entry.split).flat();
      expect(new Set(all).size).toBe(all.length);
    }
  });
});

describeDataset('bbbc039-nuclei', () => {
  it('reads the 12-bit data in 16-bit TIFFs with the exact stored values', async () => {
    // Reference values parsed straight from the uncompressed TIFF strips, outside sharp.
    const image = await decodeImage(
      join(root, 'bbbc039-nuclei', 'images', 'IXMtest_A02_s1_w1051DAA7C-7042-435F-99F0-1E847D9B42CB.tif'),
    );
    expect(image).toMatchObject({ width: 696, height: 520, channels: 1, bitDepth: 16 });
    expect(Array.from(image.data.subarray(0, 10))).toEqual([145, 148, 145, 140, 145, 143, 142, 145, 144, 151]);
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const v of image.data) {
      sum += v;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect({ sum, min, max }).toEqual({ sum: 89807251, min: 120, max: 4095 });
  });

  it('decodes every image and mask', async () => {
    await expectAllDecode('bbbc039-nuclei', 'images', (file) => file.replace(/\.tif$/, '.png'));
  });

  it('loads the test split: 16-bit 696x520, plausible nuclei, Otsu baseline', async () => {
    const dataset = await loadDataset('bbbc039-nuclei', { root, splits: ['test'] });
    const test = dataset.splits.test;
    expect(test).toHaveLength(50);
    expect(dataset.unlabeled).toHaveLength(0);
    let nuclei = 0;
    let empty = 0;
    for (const sample of test) {
      expect(sample.image).toMatchObject({ width: 696, height: 520, channels: 1, bitDepth: 16 });
      expect(sample.image.data).toBeInstanceOf(Uint16Array);
      let max = 0;
      for (const v of sample.image.data) max = Math.max(max, v);
      const count = sample.instanceCount ?? 0;
      // 12-bit data: above 8-bit range wherever there are nuclei. A few fields are empty wells
      // (no nuclei, max around 200), IXMtest_F13_s7 in this split.
      if (count > 0) expect(max, sample.name).toBeGreaterThan(255);
      else empty++;
      expect(max, sample.name).toBeLessThanOrEqual(4095);

      const labels = sample.instances as Int32Array;
      expect(count, sample.name).toBeLessThan(500);
      // Every nucleus pixel belongs to exactly one instance, every instance has pixels.
      const sizes = objectSizes(labels, count);
      expect(sizes.length - 1).toBe(count);
      expect(labels.length - sizes[0]).toBe(sample.foreground.reduce((s, v) => s + v, 0));
      expect(Math.min(...sizes.subarray(1))).toBeGreaterThan(0);
      // Graph colouring at work: there are more nuclei than blobs of foreground.
      expect(count).toBeGreaterThanOrEqual(connectedComponents(sample.foreground, 696, 520, 8).count);
      nuclei += count;
    }
    const perImage = nuclei / test.length;
    console.log(`[bbbc039] test split: ${nuclei} nuclei, ${perImage.toFixed(1)} per image, ${empty} empty field(s)`);
    expect(empty).toBeLessThanOrEqual(2);
    expect(perImage).toBeGreaterThan(30);
    expect(perImage).toBeLessThan(300);
    expect(otsuBaseline(dataset, 'test')).toBeGreaterThan(0.85);
  });

  it('gets the nuclei back from interior/boundary targets, and scores an Otsu instance baseline', async () => {
    const dataset = await loadDataset('bbbc039-nuclei', { root, splits: ['test'], maxImages: 20 });
    let roundTrip = 0;
    let otsuAp = 0;
    for (const sample of dataset.splits.test) {
      const { width, height } = sample.image;
      const truth = sample.instances as Int32Array;
      const targets = instanceTargets(truth, width, height);
      const recovered = instancesFromInterior(targets.interior, width, height, { foreground: targets.foreground });
      roundTrip += matchInstances(recovered.labels, truth, [0.5])[0].ap;
      const otsuObjects = connectedComponents(otsuSegment(sample.image), width, height, 8);
      otsuAp += matchInstances(otsuObjects.labels, truth, [0.5])[0].ap;
    }
    const n = dataset.splits.test.length;
    console.log(
      `[baseline] bbbc039-nuclei test (first ${n}): AP@0.5 of Otsu + connected components = ${(otsuAp / n).toFixed(4)}; ` +
        `of the ground truth through interior/boundary targets and back = ${(roundTrip / n).toFixed(4)}`,
    );
    // Nuclei too thin to keep an interior pixel are the only loss.
    expect(roundTrip / n).toBeGreaterThan(0.97);
    expect(otsuAp / n).toBeLessThan(roundTrip / n);
  });
});

describeDataset('isbi2012-em', () => {
  it('decodes every image and mask', async () => {
    await expectAllDecode('isbi2012-em', 'images', (file) => file);
  });

  it('loads 8-bit 512x512 slices with about 20% membrane, the unlabeled slices, and the Otsu baseline', async () => {
    const dataset = await loadDataset('isbi2012-em', { root, splits: ['test'] });
    expect(dataset.splits.test).toHaveLength(5);
    expect(dataset.unlabeled).toHaveLength(30);
    for (const { image } of [...dataset.splits.test, ...dataset.unlabeled]) {
      expect(image).toMatchObject({ width: 512, height: 512, channels: 1, bitDepth: 8 });
    }
    for (const sample of dataset.splits.test) {
      expect(foregroundFraction(sample)).toBeGreaterThan(0.1);
      expect(foregroundFraction(sample)).toBeLessThan(0.35);
    }
    expect(dataset.polarity).toBe('dark');
    expect(otsuBaseline(dataset, 'test')).toBeGreaterThan(0.4);
  });
});

describeDataset('pfc-brightfield', () => {
  it('decodes every image and mask', async () => {
    await expectAllDecode('pfc-brightfield', 'images', (file) => file.replace(/\.jpg$/, '.png'));
  });

  it('keeps the 1280x960 RGB JPEGs as 3 channels, and the Otsu baseline', async () => {
    const dataset = await loadDataset('pfc-brightfield', { root, splits: ['test'] });
    expect(dataset.splits.test).toHaveLength(20);
    for (const sample of dataset.splits.test) {
      expect(sample.image).toMatchObject({ width: 1280, height: 960, channels: 3, bitDepth: 8 });
      expect(foregroundFraction(sample), sample.name).toBeGreaterThan(0.002);
      expect(foregroundFraction(sample), sample.name).toBeLessThan(0.5);
    }
    expect(otsuBaseline(dataset, 'test')).toBeGreaterThan(0.15);
  });
});

describeDataset('ctc-samples', () => {
  it('reads the 16-bit and 8-bit LZW TIFFs and their 16-bit label images', async () => {
    const dataset = await loadDataset('ctc-samples', { root });
    expect(datasetSplits(dataset.manifest)).toEqual(['all']);
    const all = dataset.splits.all;
    expect(all.length).toBeGreaterThanOrEqual(9);
    for (const sample of all) {
      const hela = sample.name.startsWith('N2DL-HeLa/');
      expect(sample.image, sample.name).toMatchObject(
        hela ? { width: 1100, height: 700, channels: 1, bitDepth: 16 } : { width: 1024, height: 1024, channels: 1, bitDepth: 8 },
      );
      expect(sample.instanceCount, sample.name).toBeGreaterThan(5);
    }
    expect(otsuBaseline(dataset, 'all')).toBeGreaterThan(0.4);
  });
});
