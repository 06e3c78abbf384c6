/**
 * One measured run on a dataset with ground truth: optional self-supervised pretraining on all of
 * the set's images (labels unused), fine-tuning on k labeled training images, and scoring on the
 * test split against ground truth and an Otsu baseline. The unit of `maskloop eval`.
 */
import type { LabeledImage } from './data';
import { imageSource, type TilingOptions } from './infer/predict';
import { foregroundOf, propose } from './infer/propose';
import { instanceLabels, labeled, prepareImage, semanticLabels, type PreparedImage } from './input';
import { dice, iou, matchInstances, otsuSegment } from './metrics';
import { Rng } from './rng';
import { finetune, type Initialisation, type SegmentationTarget } from './train/finetune';
import { pretextTask } from './pretext/registry';
import type { TrainingProgress } from './train/loop';
import { pretrain } from './train/pretrain';
import { backendInfo } from './backend';
import { connectedComponents } from '../imaging/instances';
import type { Dataset, LabeledImage as GroundTruth } from '../imaging/datasets';

export interface ExperimentOptions {
  /** Labeled training images; 0 or undefined = all of the train split. */
  labels?: number;
  /** Pretext tasks to pretrain with ('scratch' = none). */
  init: string[] | 'scratch';
  pretrainSteps: number;
  finetuneSteps: number;
  target: 'semantic' | 'instance';
  depth?: number;
  baseFilters?: number;
  batchSize?: number;
  patchSize?: number;
  learningRate?: number;
  seed?: number;
  tiling?: TilingOptions;
  onProgress?: (p: TrainingProgress) => void;
  signal?: AbortSignal;
}

export interface ExperimentResult {
  dataset: string;
  init: string;
  labels: number;
  seed: number;
  target: 'semantic' | 'instance';
  backend: string;
  pretrainSteps: number;
  finetuneSteps: number;
  /** Foreground-class scores on the test split, mean over images. */
  testDice: number;
  testIoU: number;
  otsuDice: number;
  /** Instance sets only: at IoU 0.5. */
  testF1?: number;
  testAP?: number;
  otsuF1?: number;
  wallSeconds: number;
  trainImageNames: string[];
}

/** The k training images of a run: a seeded random subset, so several seeds give several subsets. */
export function chooseLabeled<T>(train: T[], k: number | undefined, seed: number): T[] {
  if (!k || k >= train.length) return train;
  return new Rng(seed).shuffle([...train]).slice(0, k);
}

function labelsFor(gt: GroundTruth, target: ExperimentOptions['target']): Uint8Array {
  if (target === 'instance') {
    if (!gt.instances) throw new Error(`${gt.name} has no instance labels`);
    return instanceLabels(gt.instances, gt.image.width, gt.image.height);
  }
  return semanticLabels(gt.foreground);
}

export async function runExperiment(data: Dataset, options: ExperimentOptions): Promise<ExperimentResult> {
  const t0 = performance.now();
  const seed = options.seed ?? 1;
  const arch = { depth: options.depth ?? 4, baseFilters: options.baseFilters ?? 16 };
  const train = chooseLabeled(data.splits.train, options.labels, seed);
  // Every train-split image is normalised once: the labeled subset trains, all of them pretrain.
  const normalised = new Map<GroundTruth, PreparedImage>(data.splits.train.map((gt) => [gt, prepareImage(gt.image)]));
  const trainImages: LabeledImage[] = train.map((gt) => labeled(normalised.get(gt) as PreparedImage, labelsFor(gt, options.target)));

  let init: Initialisation | undefined;
  let pretrained: Awaited<ReturnType<typeof pretrain>> | undefined;
  const initName = options.init === 'scratch' ? 'scratch' : options.init.join('+');
  if (options.init !== 'scratch') {
    // Self-supervision sees every image of the set without its labels: train split and unlabeled.
    const unlabeled = [...normalised.values(), ...data.unlabeled.map((u) => prepareImage(u.image))];
    pretrained = await pretrain({
      tasks: options.init, images: unlabeled, config: arch, steps: options.pretrainSteps,
      batchSize: options.batchSize, patchSize: options.patchSize, seed, onProgress: options.onProgress, signal: options.signal,
    });
    const trained = options.init.some((t) => pretextTask(t).trains === 'unet') ? 'unet' : 'encoder';
    init = { name: initName, weights: pretrained.model.weights(), trained };
  }

  const target: SegmentationTarget = options.target === 'instance' ? { kind: 'instance' } : { kind: 'semantic', classes: 1 };
  const { model } = await finetune({
    images: trainImages, target,
    config: arch, init, steps: options.finetuneSteps, batchSize: options.batchSize, patchSize: options.patchSize,
    learningRate: options.learningRate, seed, encoderWarmupSteps: init ? Math.floor(options.finetuneSteps / 10) : 0,
    onProgress: options.onProgress, signal: options.signal,
  });
  pretrained?.model.dispose();

  const scores = { dice: 0, iou: 0, otsu: 0, f1: 0, ap: 0, otsuF1: 0 };
  const test = data.splits.test;
  for (const gt of test) {
    const proposal = propose(model, target, imageSource(prepareImage(gt.image)), options.tiling ?? { tile: 256, overlap: 32 });
    const seg = { foreground: foregroundOf(proposal.mask), instances: proposal.mask instanceof Int32Array ? proposal.mask : undefined };
    const otsu = otsuSegment(gt.image, { polarity: data.polarity });
    scores.dice += dice(seg.foreground, gt.foreground);
    scores.iou += iou(seg.foreground, gt.foreground);
    scores.otsu += dice(otsu, gt.foreground);
    if (options.target === 'instance' && gt.instances && seg.instances) {
      const [m] = matchInstances(seg.instances, gt.instances, [0.5]);
      scores.f1 += m.f1;
      scores.ap += m.ap;
      const [o] = matchInstances(connectedComponents(otsu, gt.image.width, gt.image.height).labels, gt.instances, [0.5]);
      scores.otsuF1 += o.f1;
    }
  }
  model.dispose();
  const n = test.length;
  return {
    dataset: data.name,
    init: initName,
    labels: train.length,
    seed,
    target: options.target,
    backend: backendInfo()?.choice ?? 'unknown',
    pretrainSteps: options.init === 'scratch' ? 0 : options.pretrainSteps,
    finetuneSteps: options.finetuneSteps,
    testDice: scores.dice / n,
    testIoU: scores.iou / n,
    otsuDice: scores.otsu / n,
    ...(options.target === 'instance' ? { testF1: scores.f1 / n, testAP: scores.ap / n, otsuF1: scores.otsuF1 / n } : {}),
    wallSeconds: (performance.now() - t0) / 1000,
    trainImageNames: train.map((gt) => gt.name),
  };
}
