/** Shared set-up for engine tests: the real backend choice, and small synthetic data. */
import { initEngine, type BackendInfo } from '../../src/engine/backend';
import { labeled, prepareImage, semanticLabels } from '../../src/engine/input';
import type { LabeledImage } from '../../src/engine/data';
import { syntheticDataset, type SyntheticSample } from '../../src/imaging/synthetic';

export async function engine(): Promise<BackendInfo> {
  return initEngine({ log: false });
}

export function nuclei(count: number, size = 96, seed = 11, channels = 1): SyntheticSample[] {
  return syntheticDataset(count, { width: size, height: size, seed, channels });
}

export function labeledNuclei(samples: SyntheticSample[]): LabeledImage[] {
  return samples.map((s) => labeled(prepareImage(s.image), semanticLabels(s.foreground)));
}

export function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}
