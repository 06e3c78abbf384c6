/**
 * `npm run demo`: the whole maskloop loop on a synthetic nuclei dataset generated in code —
 * pretrain on unlabeled images, fine-tune on a handful of labels, propose masks for held-out
 * images, and score them against ground truth and an Otsu baseline.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { initEngine, describeBackend } from '../engine/backend';
import { dice, otsuSegment } from '../engine/metrics';
import { classMap, predictImage } from '../engine/infer/predict';
import { labeled, prepareImage, semanticLabels } from '../engine/input';
import { DEFAULT_ARCH } from '../engine/model/unet';
import { finetune } from '../engine/train/finetune';
import { pretrain } from '../engine/train/pretrain';
import { syntheticDataset } from '../imaging/synthetic';
import { createReporter } from './progress';
import { DEFAULT_PRETEXT_TASKS } from '../shared/types';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    task: { type: 'string', default: DEFAULT_PRETEXT_TASKS.join('+') },
    labels: { type: 'string', default: '4' },
  },
});

const report = createReporter({ json: args.json });
const info = await initEngine({ log: false });
report.message(describeBackend(info), { backend: info.choice });

const quick = args.quick;
const size = 192;
const unlabeledCount = quick ? 8 : 32;
const labeledCount = Number(args.labels);
const testCount = 6;
const all = syntheticDataset(unlabeledCount + labeledCount + testCount, { width: size, height: size, seed: 2026 });
const unlabeled = all.slice(0, unlabeledCount);
const train = all.slice(unlabeledCount, unlabeledCount + labeledCount);
const test = all.slice(unlabeledCount + labeledCount);
report.message(`synthetic nuclei: ${unlabeledCount} unlabeled, ${labeledCount} labeled, ${testCount} test images (${size}x${size}, 16-bit)`);

const pre = await pretrain({
  tasks: args.task.split('+'),
  images: [...unlabeled, ...train].map((s) => prepareImage(s.image)),
  config: DEFAULT_ARCH,
  steps: quick ? 20 : 150,
  batchSize: 8,
  patchSize: 96,
  learningRate: 1e-3,
  onProgress: (p) => report.training(p),
  progressEvery: 5,
});

const labeledImages = train.map((s) => labeled(prepareImage(s.image), semanticLabels(s.foreground)));
const fine = await finetune({
  images: labeledImages,
  target: { kind: 'semantic', classes: 1 },
  config: DEFAULT_ARCH,
  init: { name: args.task, weights: pre.model.weights(), trained: pre.trained },
  steps: quick ? 30 : 200,
  batchSize: 8,
  patchSize: 96,
  learningRate: 1e-3,
  onProgress: (p) => report.training(p),
  progressEvery: 5,
});
pre.model.dispose();

let modelDice = 0;
let otsuDice = 0;
for (const s of test) {
  const prediction = await predictImage(fine.model, prepareImage(s.image), { tile: 128, overlap: 32 });
  modelDice += dice(classMap(prediction), s.foreground) / test.length;
  otsuDice += dice(otsuSegment(s.image, { polarity: 'bright' }), s.foreground) / test.length;
}
fine.model.dispose();
report.message(`test Dice: maskloop ${modelDice.toFixed(3)} vs Otsu ${otsuDice.toFixed(3)} (${labeledCount} labeled images)`, {
  dice: modelDice,
  otsuDice,
  tensors: tf.memory().numTensors,
});
report.done();
