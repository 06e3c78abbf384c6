/**
 * One measured run on a dataset with ground truth: optional self-supervised pretraining on the
 * set's images (labels unused), fine-tuning on k labeled training images, and scoring on the test
 * split against ground truth and an Otsu baseline. The unit of `maskloop eval`.
 */
import { backendInfo } from '../engine/backend';
import type { TrainingProgress } from '../engine/train/loop';
import { DEFAULT_SCHEDULE } from '../engine/train/optimizerState';
import { TRAINING } from '../shared/training';
import type { Dataset } from '../imaging/datasets';
import { DEFAULT_ARCH, type Normalisation } from '../engine/model/unet';
import { chooseLabeled, disposeInit, finetuneOn, otsuScores, prepareDataset, pretrainedInit, scoreSplit, type TargetKind } from './setup';

export interface ExperimentOptions {
  /** Labeled training images; 0 or undefined = all of the train split. */
  labels?: number;
  /** Pretext tasks to pretrain with ('scratch' = none). */
  init: string[] | 'scratch';
  pretrainSteps: number;
  finetuneSteps: number;
  target: TargetKind;
  depth?: number;
  norm?: Normalisation;
  baseFilters?: number;
  batchSize?: number;
  patchSize?: number;
  learningRate?: number;
  seed?: number;
  onProgress?: (p: TrainingProgress) => void;
  signal?: AbortSignal;
}

export interface ExperimentResult {
  dataset: string;
  init: string;
  labels: number;
  seed: number;
  target: TargetKind;
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

export async function runExperiment(data: Dataset, options: ExperimentOptions): Promise<ExperimentResult> {
  const t0 = performance.now();
  const seed = options.seed ?? 1;
  const ds = prepareDataset(data, options.target);
  const training = {
    arch: { depth: options.depth ?? DEFAULT_ARCH.depth, baseFilters: options.baseFilters ?? DEFAULT_ARCH.baseFilters, norm: options.norm ?? DEFAULT_ARCH.norm },
    batchSize: options.batchSize ?? 8,
    patchSize: options.patchSize ?? 128,
    learningRate: options.learningRate ?? 1e-3,
    schedule: DEFAULT_SCHEDULE,
    pretrainLearningRate: TRAINING.pretrainLearningRate,
    onProgress: options.onProgress,
    signal: options.signal,
  };
  const train = chooseLabeled(ds.train, options.labels, seed);
  const pretrained = options.init === 'scratch' ? undefined : await pretrainedInit(ds, options.init, { ...training, steps: options.pretrainSteps, seed });
  // As `maskloop train` does: the val split picks the best weights and calibrates the threshold.
  const { model } = await finetuneOn(ds, train, pretrained?.init, { ...training, steps: options.finetuneSteps, seed, valImages: ds.val });
  if (pretrained) disposeInit(pretrained.init);
  const test = await scoreSplit(model, ds, ds.test);
  model.dispose();
  const otsu = otsuScores(ds, ds.test);
  return {
    dataset: data.name,
    init: pretrained?.init.name ?? 'scratch',
    labels: train.length,
    seed,
    target: options.target,
    backend: backendInfo()?.choice ?? 'unknown',
    pretrainSteps: pretrained ? options.pretrainSteps : 0,
    finetuneSteps: options.finetuneSteps,
    testDice: test.dice,
    testIoU: test.iou,
    otsuDice: otsu.dice,
    ...(options.target === 'instance' ? { testF1: test.f1, testAP: test.ap, otsuF1: otsu.f1 } : {}),
    wallSeconds: (performance.now() - t0) / 1000,
    trainImageNames: train.map((im) => im.name),
  };
}
