/** `maskloop eval`: a measured run on a dataset with ground truth (../shared/data's manifest). */
import { initEngine } from '../engine/backend';
import { runExperiment } from '../engine/experiment';
import { pretextTaskNames } from '../engine/pretext/registry';
import { DATASET_NAMES, loadDataset, type DatasetName } from '../imaging/datasets';
import { EXIT, UsageError, intOption, numberOption, type Command } from './command';
import { createReporter } from './progress';
import fs from 'node:fs';

export const evalCommand: Command = {
  name: 'eval',
  summary: 'fine-tune on k labeled images of a dataset with ground truth and score the test split',
  usage: 'eval --dataset <name> [--labels k] [--init scratch|<task>[+<task>…]] [options]',
  options: {
    dataset: { type: 'string', description: `dataset from the manifest (${DATASET_NAMES.filter((d) => d !== 'ctc-samples').join(', ')})`, valueName: 'name' },
    data: { type: 'string', description: 'folder holding manifest.json (default $MASKLOOP_DATA or ../shared/data)', valueName: 'dir' },
    labels: { type: 'string', default: '0', description: 'labeled training images (0 = the whole train split)', valueName: 'k' },
    init: { type: 'string', default: 'scratch', description: `'scratch' or pretext tasks joined by + (${pretextTaskNames().join(', ')})`, valueName: 'init' },
    target: { type: 'string', default: 'semantic', description: "'semantic' or 'instance' (needs instance ground truth)", valueName: 'kind' },
    'pretrain-steps': { type: 'string', default: '300', description: 'pretraining steps', valueName: 'n' },
    steps: { type: 'string', default: '300', description: 'fine-tuning steps', valueName: 'n' },
    'learning-rate': { type: 'string', default: '0.002', description: 'fine-tuning learning rate', valueName: 'lr' },
    seed: { type: 'string', default: '1', description: 'seed of the label subset, crops and initialisation', valueName: 'n' },
    out: { type: 'string', description: 'append the result as one JSON line to this file', valueName: 'file' },
  },
  async run({ values, json, signal }) {
    const name = values.dataset;
    if (typeof name !== 'string' || !(DATASET_NAMES as readonly string[]).includes(name)) {
      throw new UsageError(`--dataset must be one of ${DATASET_NAMES.join(', ')}`);
    }
    const target = values.target;
    if (target !== 'semantic' && target !== 'instance') throw new UsageError("--target must be 'semantic' or 'instance'");
    const initArg = String(values.init);
    const init = initArg === 'scratch' ? 'scratch' : initArg.split('+');
    const report = createReporter({ json });
    const info = await initEngine({ log: !json });
    const data = await loadDataset(name as DatasetName, { root: values.data as string | undefined, splits: ['train', 'test'] });
    const result = await runExperiment(data, {
      labels: intOption(values, 'labels', 0),
      init,
      target,
      pretrainSteps: intOption(values, 'pretrain-steps'),
      finetuneSteps: intOption(values, 'steps'),
      learningRate: numberOption(values, 'learning-rate'),
      seed: intOption(values, 'seed', 0),
      onProgress: (p) => report.training(p),
      signal,
    });
    report.done();
    const line = JSON.stringify({ ...result, threads: info.threads });
    if (values.out) fs.appendFileSync(String(values.out), line + '\n');
    if (!json) {
      const f = (v: number | undefined) => (v === undefined ? '' : v.toFixed(3));
      console.log(`${name}: ${result.init}, ${result.labels} labeled images — test Dice ${f(result.testDice)} (IoU ${f(result.testIoU)}) vs Otsu ${f(result.otsuDice)}` +
        (result.testF1 !== undefined ? `; F1@0.5 ${f(result.testF1)}, AP@0.5 ${f(result.testAP)} vs Otsu F1 ${f(result.otsuF1)}` : '') +
        ` — ${result.wallSeconds.toFixed(0)} s on ${result.backend}`);
    }
    console.log(line);
    return signal.aborted ? EXIT.cancelled : EXIT.ok;
  },
};
