/**
 * A folder that mixes grey images with grey images saved as RGB (common after a round trip through
 * a viewer): the RGB copies are recorded and read as grey, a genuinely coloured image is refused at
 * import with its reason, and the project pretrains instead of failing minutes in.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../src/imaging/decode';
import { syntheticNuclei } from '../../src/imaging/synthetic';
import { importImages } from '../../src/jobs/workflows/importImages';
import { pretrainEncoder } from '../../src/jobs/workflows/pretrainEncoder';
import { loadImage } from '../../src/jobs/data';
import { createProject } from '../../src/store';

const root = mkdtempSync(path.join(tmpdir(), 'maskloop-mixed-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('a folder of grey and grey-as-RGB images', () => {
  it('imports both as grey, refuses real colour with a reason, and pretrains', async () => {
    const folder = path.join(root, 'images');
    mkdirSync(folder);
    const size = 64;
    for (let i = 0; i < 4; i++) {
      const grey = Uint8Array.from(syntheticNuclei({ width: size, height: size, bitDepth: 8, seed: 30 + i }).image.data as Uint8Array);
      const raw = { width: size, height: size };
      if (i % 2 === 0) await sharp(grey, { raw: { ...raw, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(folder, `grey-${i}.png`));
      // sharp writes one channel as RGB unless told otherwise: grey saved as RGB.
      else await sharp(grey, { raw: { ...raw, channels: 1 } }).png().toFile(path.join(folder, `rgb-${i}.png`));
    }
    const colour = new Uint8Array(size * size * 3).map((_, k) => (k % 3 === 0 ? 200 : k % 3 === 1 ? 90 : 30));
    // Last in the walk: the project's first image sets its channel count (here grey).
    await sharp(colour, { raw: { width: size, height: size, channels: 3 } }).png().toFile(path.join(folder, 'z-colour.png'));
    expect((await decodeImage(path.join(folder, 'rgb-1.png'))).channels).toBe(3);

    const project = createProject(path.join(root, 'project'), { name: 'mixed' });
    try {
      const messages: string[] = [];
      const result = await importImages(project, { folder, split: 'unassigned' }, { onMessage: (text) => messages.push(text) });
      expect(result.added).toBe(4);
      expect(result.rejected).toBe(1);
      expect(messages).toEqual([expect.stringMatching(/^skipped z-colour\.png: it has 3 channel\(s\) and this project's images have 1 \(set by its first image\)/)]);
      const images = project.listImages();
      expect(images.map((im) => im.channels)).toEqual([1, 1, 1, 1]);
      // Read as one channel, equal to the stored red channel.
      const rgb = images.find((im) => im.path.endsWith('rgb-1.png'))!;
      const prepared = await loadImage(rgb);
      expect(prepared.channels).toBe(1);

      const pretrained = await pretrainEncoder(project, { tasks: ['inpainting'], steps: 2, maxImages: 16, learningRate: 0.001 });
      expect(pretrained.status).toBe('completed');
    } finally {
      project.close();
    }
  });
});
