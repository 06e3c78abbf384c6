/** The ilastik-style baseline: its filter bank and forest, checked on synthetic nuclei against their ground truth. */
import { describe, expect, it } from 'vitest';
import { filterBank, gaussianBlur, PixelForest } from '../../src/eval/pixelClassifier';
import { prepareImage } from '../../src/engine/input';
import { syntheticNuclei } from '../../src/imaging/synthetic';
import { dice } from '../../src/engine/metrics';

describe('ilastik-style pixel classifier', () => {
  it('the Gaussian keeps a constant image constant and spreads an impulse to unit mass', () => {
    const flat = gaussianBlur(new Float32Array(64).fill(3), 8, 8, 1.6);
    for (const v of flat) expect(v).toBeCloseTo(3, 5);
    const impulse = new Float32Array(41 * 41);
    impulse[20 * 41 + 20] = 1;
    const spread = gaussianBlur(impulse, 41, 41, 2);
    expect(spread.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    expect(spread[20 * 41 + 20]).toBeCloseTo(1 / (2 * Math.PI * 4), 2);
  });

  it('learns nuclei from one labeled image and segments another', () => {
    const make = (seed: number) => {
      const s = syntheticNuclei({ width: 96, height: 96, seed });
      const p = prepareImage(s.image);
      return { features: filterBank(p.pixels, p.width, p.height, p.channels), truth: s.foreground };
    };
    const train = make(3);
    expect(train.features.count).toBe(49);
    const forest = PixelForest.train([{ features: train.features, labels: train.truth }], { trees: 20, seed: 5 });
    const test = make(4);
    const probability = forest.predict(test.features);
    const foreground = Uint8Array.from(probability, (p) => (p >= 0.5 ? 1 : 0));
    expect(dice(foreground, test.truth)).toBeGreaterThan(0.85);
  });
});
