/**
 * `maskloop eval`, `eval curve` and `eval loop`: measured runs on datasets with ground truth
 * (../shared/data's manifest). A single run, the label-efficiency curve over initialisations, and
 * a replayed annotation session.
 */
import fs from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { initEngine, type BackendInfo } from '../engine/backend';
import { ALL_LABELS, COMBINATION, FOREGROUND_THRESHOLDS, KEPT_WEIGHTS, PIXEL_CLASSIFIER, runCurve, runKey, weightsInEffect, type CurveRun } from '../eval/curve';
import { runExperiment } from '../eval/experiment';
import { simulateSession, type LabelOrder, type LoopRound } from '../eval/session';
import { readJsonLines, writeCurveReport, writeLoopReport, type EvalContext } from '../eval/report';
import { DEFAULT_ARCH, NORMALISATIONS } from '../engine/model/unet';
import { disposeInit, otsuScores, prepareDataset, pretrainedInit, type EvalDataset, type EvalImage, type EvalTraining, type TargetKind } from '../eval/setup';
import { DEFAULT_CONSISTENCY } from '../engine/train/consistency';
import { DENOISE, SEMI, semiSupervised } from '../engine/train/semi';
import { DEFAULT_JOINT_DENOISING } from '../engine/train/jointDenoising';
import { describeBudgets, evalBudgets, type EvalBudgets } from '../eval/budgets';
import { pretextTask, pretextTaskNames } from '../engine/pretext/registry';
import { BEST_CHECK_EVERY } from '../engine/train/finetune';
import { DEFAULT_SCHEDULE, LEARNING_RATE_SCHEDULES } from '../engine/train/optimizerState';
import { TRAINING } from '../shared/training';
import { DEFAULT_FOLDS, evaluateProject } from '../jobs/workflows/evaluateProject';
import { openFromOptions, parseTargetOption } from './projectData';
import { PRETRAINED_MARGIN, valImagesFor } from '../engine/train/select';
import { DATASET_NAMES, loadDataset, type Dataset, type DatasetName } from '../imaging/datasets';
import { DEFAULT_SPLIT, FOREGROUND_RULES, loadFolderDataset, MASK_ENCODINGS } from '../imaging/folderDataset';
import { EXIT, UsageError, choiceOption, intOption, numberOption, type Command, type CommandContext, type OptionSpec } from './command';
import { createReporter, type ProgressReporter } from './progress';

const EVAL_DATASETS = DATASET_NAMES.filter((d) => d !== 'ctc-samples');

/** Sets whose ground truth separates touching objects are scored as instances by default. */
const INSTANCE_SETS: readonly string[] = ['bbbc039-nuclei'];

const DATASET_OPTIONS: Record<string, OptionSpec> = {
  dataset: { type: 'string', description: `dataset from the manifest (${EVAL_DATASETS.join(', ')}); or a folder set with --images and --masks`, valueName: 'name' },
  data: { type: 'string', description: 'folder holding manifest.json (default $MASKLOOP_DATA or ../shared/data)', valueName: 'dir' },
  images: { type: 'string', description: 'a folder of images to evaluate on (with --masks), instead of --dataset', valueName: 'dir' },
  masks: { type: 'string', description: 'their masks, paired by file name (image name, or with _mask, _label, _seg, _gt or _cp_masks)', valueName: 'dir' },
  unlabeled: { type: 'string', description: 'with --images: more images without labels, for pretraining (images without a mask join them)', valueName: 'dir' },
  encoding: { type: 'string', default: 'binary', description: `with --masks: ${MASK_ENCODINGS.map((e) => `'${e}'`).join(', ')} (binary masks, label images with an id per object, graph-coloured objects)`, valueName: 'kind' },
  foreground: { type: 'string', default: 'nonzero', description: "with --masks: which mask values are foreground, 'nonzero' or 'zero'", valueName: 'rule' },
  split: { type: 'string', description: `with --images: shares of train, val and test, assigned by a hash of each file name (default ${DEFAULT_SPLIT.join(',')})`, valueName: 'a,b,c' },
  target: { type: 'string', description: "'semantic' or 'instance' (default: instance for bbbc039-nuclei and folder sets with object masks, else semantic)", valueName: 'kind' },
  downsample: { type: 'string', description: 'work at 1/n of the stored resolution; scores stay at full resolution (default 2 for pfc-brightfield, else 1)', valueName: 'n' },
};

/** Working scale per set: PFC's 1280x960 brightfield neurons are large enough to segment at half size. */
const DEFAULT_DOWNSAMPLE: Readonly<Record<string, number>> = { 'pfc-brightfield': 2 };

function datasetOption(values: CommandContext['values']): DatasetName {
  const name = values.dataset;
  if (typeof name !== 'string' || !(EVAL_DATASETS as readonly string[]).includes(name)) {
    throw new UsageError(`--dataset must be one of ${EVAL_DATASETS.join(', ')}, or give --images and --masks`);
  }
  return name as DatasetName;
}

/** The set an evaluation runs on: a shared set by name, or a folder of images with a folder of masks. */
async function evaluationData(values: CommandContext['values'], splits?: string[]): Promise<Dataset> {
  if (values.images === undefined && values.masks === undefined) return loadDataset(datasetOption(values), { root: values.data as string | undefined, splits });
  if (values.dataset !== undefined) throw new UsageError('give either --dataset or --images with --masks, not both');
  if (typeof values.images !== 'string' || typeof values.masks !== 'string') throw new UsageError('--images and --masks go together');
  const split = values.split === undefined ? undefined : String(values.split).split(',').map(Number);
  if (split && (split.length !== 3 || split.some((v) => !Number.isFinite(v)))) throw new UsageError(`--split takes three shares such as 0.6,0.2,0.2, got '${values.split}'`);
  return loadFolderDataset({
    images: values.images, masks: values.masks, unlabeled: values.unlabeled as string | undefined,
    encoding: choiceOption(values, 'encoding', MASK_ENCODINGS), foreground: choiceOption(values, 'foreground', FOREGROUND_RULES),
    split: split as [number, number, number] | undefined,
  });
}

function targetOption(values: CommandContext['values'], dataset: string): TargetKind {
  const objects = values.images !== undefined && values.encoding !== 'binary';
  const target = values.target ?? (INSTANCE_SETS.includes(dataset) || objects ? 'instance' : 'semantic');
  if (target !== 'semantic' && target !== 'instance') throw new UsageError("--target must be 'semantic' or 'instance'");
  return target;
}

/** Steps of a single `maskloop eval` run on a dataset (an experiment, not a user's training). */
const SINGLE_RUN_STEPS = 300;

const NORM_OPTION: OptionSpec = { type: 'string', default: DEFAULT_ARCH.norm, description: "the U-Net's normalisation: 'batch', or 'none' to measure the network without it", valueName: 'kind' };

export const evalCommand: Command = {
  name: 'eval',
  summary: 'fine-tune on k labeled images of a dataset with ground truth and score the test split',
  usage: 'eval (--dataset <name> | --images <dir> --masks <dir>) [--labels k] [--init scratch|<task>[+<task>…]] [options]\n       eval --project <dir> [--folds k] [--steps n] [--target semantic|semantic:K|instance]',
  options: {
    ...DATASET_OPTIONS,
    project: { type: 'string', description: "measure a project on its own labels: k-fold cross-validation over its labeled images, from scratch and each pretext checkpoint, within a first model's budget", valueName: 'dir' },
    folds: { type: 'string', default: String(DEFAULT_FOLDS), description: 'with --project: folds (at most one per labeled image)', valueName: 'k' },
    semi: { type: 'boolean', description: "with --project: also measure consistency training on the project's unlabeled images (as train --semi)" },
    labels: { type: 'string', default: '0', description: 'labeled training images (0 = the whole train split)', valueName: 'k' },
    init: { type: 'string', default: 'scratch', description: `'scratch' or pretext tasks joined by + (${pretextTaskNames().join(', ')})`, valueName: 'init' },
    'pretrain-steps': { type: 'string', default: '300', description: 'pretraining steps', valueName: 'n' },
    steps: { type: 'string', description: `fine-tuning steps (default ${SINGLE_RUN_STEPS}; with --project, what a first model's ${TRAINING.firstModelSeconds} s buy)`, valueName: 'n' },
    'learning-rate': { type: 'string', default: String(TRAINING.learningRate), description: 'fine-tuning learning rate', valueName: 'lr' },
    norm: NORM_OPTION,
    seed: { type: 'string', default: '1', description: 'seed of the label subset, crops and initialisation', valueName: 'n' },
    out: { type: 'string', description: 'append the result as one JSON line to this file', valueName: 'file' },
  },
  async run({ values, json, signal }) {
    if (values.project !== undefined) return evaluateProjectCommand(values, json, signal);
    const data = await evaluationData(values, ['train', 'test']);
    const name = data.name;
    const target = targetOption(values, name);
    const initArg = String(values.init);
    const init = initArg === 'scratch' ? 'scratch' : initArg.split('+');
    const report = createReporter({ json });
    const info = await initEngine({ log: !json });
    const result = await runExperiment(data, {
      labels: intOption(values, 'labels', 0),
      init,
      target,
      pretrainSteps: intOption(values, 'pretrain-steps'),
      finetuneSteps: values.steps === undefined ? SINGLE_RUN_STEPS : intOption(values, 'steps'),
      learningRate: numberOption(values, 'learning-rate'),
      norm: choiceOption(values, 'norm', NORMALISATIONS),
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

/** `maskloop eval --project`: k-fold cross-validation on the project's own labels. */
async function evaluateProjectCommand(values: CommandContext['values'], json: boolean, signal: AbortSignal): Promise<number> {
  const project = openFromOptions(values);
  try {
    const report = createReporter({ json });
    const result = await evaluateProject(project, {
      target: parseTargetOption(values.target ?? 'semantic'), folds: intOption(values, 'folds', 3),
      steps: values.steps === undefined ? undefined : intOption(values, 'steps'), learningRate: numberOption(values, 'learning-rate'), semiSupervised: Boolean(values.semi),
    }, { signal, logBackend: !json, onProgress: (p) => report.training(p), onMessage: (text) => report.message(text) });
    report.done();
    const f = (s: { mean: number; sd: number }) => `${s.mean.toFixed(3)} ± ${s.sd.toFixed(3)}`;
    if (!json) {
      console.log(`${result.folds.length} folds, ${result.steps} steps per candidate${result.plan ? ` (what ${result.plan.budgetSeconds} s buy here)` : ''}; test scores over the folds:`);
      for (const line of result.summary) console.log(`  ${line.name.padEnd(16)} Dice ${f(line.dice)}${line.f1 ? `, F1 ${f(line.f1)}` : ''}`);
    }
    console.log(JSON.stringify({ event: 'evaluated', ...result }));
    return result.cancelled ? EXIT.cancelled : EXIT.ok;
  } finally {
    project.close();
  }
}

/**
 * Quick mode measures fewer subsets, rounds and images than the full mode, never fewer steps:
 * both train with the steps the product's time budgets buy on this machine (evalBudgets).
 */
const MODES = {
  quick: { ks: '1,2,5,10,all', subsets: 2, largeSubsets: 1, allRepeats: 1, valImages: 8, testImages: 20, rounds: 10, candidates: 8 },
  full: { ks: '1,2,5,10,20,all', subsets: 3, largeSubsets: 3, allRepeats: 2, valImages: 0, testImages: 0, rounds: 20, candidates: 0 },
} as const;

/** Pretext tasks a quick curve leaves out to fit its time budget: they gained least over scratch on ISBI. */
const QUICK_SKIPS: readonly string[] = ['jigsaw', 'contrastive'];

const TRAINING_OPTIONS: Record<string, OptionSpec> = {
  quick: { type: 'boolean', description: 'fewer subsets, rounds and images (see the defaults below), the same training; the full mode is the default' },
  'pretrain-steps': { type: 'string', description: `pretraining steps per pretext task (default: what ${TRAINING.pretrainSeconds} s buy here)`, valueName: 'n' },
  batch: { type: 'string', default: '8', description: 'patches per step', valueName: 'n' },
  patch: { type: 'string', default: '128', description: 'patch size in pixels', valueName: 'px' },
  'learning-rate': { type: 'string', default: String(TRAINING.learningRate), description: 'fine-tuning learning rate', valueName: 'lr' },
  'pretrain-learning-rate': { type: 'string', default: String(TRAINING.pretrainLearningRate), description: 'pretraining learning rate (constant)', valueName: 'lr' },
  'encoder-rate': { type: 'string', default: '1', description: "a pretrained encoder's fine-tuning rate as a share of the decoder's", valueName: 'factor' },
  norm: NORM_OPTION,
  tta: { type: 'string', default: 'auto', description: "test-time augmentation: 'auto' (chosen on val per model, as maskloop train does) or 'off'", valueName: 'kind' },
  'lr-schedule': { type: 'string', default: DEFAULT_SCHEDULE, description: `fine-tuning's learning-rate schedule: ${LEARNING_RATE_SCHEDULES.map((s) => `'${s}'`).join(' or ')} (constant reproduces figures measured before the schedule)`, valueName: 'kind' },
  'val-images': { type: 'string', description: `val images scored to choose the initialisation (0 = all; quick ${MODES.quick.valImages})`, valueName: 'n' },
  'test-images': { type: 'string', description: `test images scored, evenly spread over the split (0 = all; quick ${MODES.quick.testImages})`, valueName: 'n' },
  seed: { type: 'string', default: '1', description: 'first seed (label subsets, crops, initialisation)', valueName: 'n' },
  out: { type: 'string', description: 'output folder (default eval-results/<dataset>-<command>[-quick])', valueName: 'dir' },
};

function optionalInt(values: CommandContext['values'], name: string, fallback: number, min = 1): number {
  return values[name] === undefined ? fallback : intOption(values, name, min);
}

function listOption(values: CommandContext['values'], name: string, fallback: string): string[] {
  return String(values[name] ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
}

interface EvalSetup {
  ds: EvalDataset;
  info: BackendInfo;
  mode: (typeof MODES)['quick' | 'full'];
  training: EvalTraining;
  seed: number;
  outDir: string;
  report: ProgressReporter;
  started: number;
  command: 'curve' | 'loop';
}

async function setUp(ctx: CommandContext, command: 'curve' | 'loop'): Promise<EvalSetup> {
  const { values, json, signal } = ctx;
  const data = await evaluationData(values);
  const name = data.name;
  const target = targetOption(values, name);
  const mode = values.quick ? MODES.quick : MODES.full;
  const training: EvalTraining = {
    arch: { ...DEFAULT_ARCH, norm: choiceOption(values, 'norm', NORMALISATIONS) },
    batchSize: intOption(values, 'batch'),
    patchSize: intOption(values, 'patch', 16),
    learningRate: numberOption(values, 'learning-rate'),
    schedule: choiceOption(values, 'lr-schedule', LEARNING_RATE_SCHEDULES),
    pretrainLearningRate: numberOption(values, 'pretrain-learning-rate'),
    encoderRateFactor: numberOption(values, 'encoder-rate'),
    tta: choiceOption(values, 'tta', ['auto', 'off']) === 'auto',
    signal,
  };
  const valImages = optionalInt(values, 'val-images', mode.valImages, 0);
  const testImages = optionalInt(values, 'test-images', mode.testImages, 0);
  const seed = intOption(values, 'seed', 0);
  const outDir = path.resolve(String(values.out ?? path.join('eval-results', `${name}-${command}${values.quick ? '-quick' : ''}`)));
  fs.mkdirSync(outDir, { recursive: true });
  const report = createReporter({ json });
  training.onProgress = (p) => report.training(p);
  const info = await initEngine({ log: !json });
  const started = performance.now();
  const downsample = optionalInt(values, 'downsample', DEFAULT_DOWNSAMPLE[name] ?? 1);
  const ds = prepareDataset(data, target, { valImages, testImages, downsample });
  report.message(`${name}: ${ds.train.length} train, ${ds.val.length} val, ${ds.test.length} test, ${ds.unlabeled.length} unlabeled images; target ${target}; working scale 1/${downsample}; results in ${outDir}`);
  return { ds, info, mode, training, seed, outDir, report, started, command };
}

/**
 * The steps the product's budgets buy here (kept in the output folder), or null when every step
 * count was given on the command line.
 */
async function budgetsFor(setup: EvalSetup, candidates: number, valImages: EvalImage[], inits: string[], values: CommandContext['values']): Promise<EvalBudgets | null> {
  const given = ['steps', 'first-steps', 'retrain-steps', 'pretrain-steps'].filter((o) => values[o] !== undefined);
  const needed = setup.command === 'curve' ? ['steps', 'pretrain-steps'] : ['first-steps', 'retrain-steps', 'pretrain-steps'];
  if (needed.every((o) => given.includes(o))) return null;
  setup.report.message('measuring what the training budgets buy on this machine');
  const withConsistency = inits.some((init) => semiSupervised(init).semi);
  const budgets = await evalBudgets(setup.outDir, setup.ds, setup.training, candidates, valImages, withConsistency);
  setup.report.message(describeBudgets(budgets));
  return budgets;
}

function context(setup: EvalSetup, argv: string, settings: Record<string, unknown>): EvalContext {
  return {
    command: argv, dataset: setup.ds.name, backend: setup.info.choice, threads: setup.info.threads,
    wallSeconds: (performance.now() - setup.started) / 1000, settings, otsu: otsuScores(setup.ds, setup.ds.test),
  };
}

/** The command as a user would type it, for the report. */
function commandLine(sub: string): string {
  return `npm run -s maskloop -- eval ${sub} ${process.argv.slice(4).join(' ')}`.trim();
}

export const evalCurveCommand: Command = {
  name: 'eval curve',
  summary: 'label-efficiency curves: test scores against labeled images, per initialisation',
  usage: 'eval curve (--dataset <name> | --images <dir> --masks <dir>) [--quick] [--ks 1,2,5,10,20,all] [--inits scratch,rotation,…,combo] [options]',
  options: {
    ...DATASET_OPTIONS,
    ks: { type: 'string', description: `labeled-image counts (quick ${MODES.quick.ks}, full ${MODES.full.ks})`, valueName: 'list' },
    inits: { type: 'string', description: `initialisations: scratch, pretext tasks (${pretextTaskNames().join(', ')}) and '${COMBINATION}' (the best two tasks jointly), each also with '${DENOISE}' (semi-supervised: denoising learned jointly on the images without labels), '${SEMI}' (semi-supervised: consistency training on them, within the same time) or both ('scratch${DENOISE}${SEMI}'), and the baseline '${PIXEL_CLASSIFIER}' (an ilastik-style random forest on the same labels); default all that apply (quick: without ${QUICK_SKIPS.join(' and ')})`, valueName: 'list' },
    subsets: { type: 'string', description: `random label subsets per k ≤ 5 (quick ${MODES.quick.subsets}, full ${MODES.full.subsets})`, valueName: 'n' },
    'large-subsets': { type: 'string', description: `random label subsets per k > 5 (quick ${MODES.quick.largeSubsets}, full ${MODES.full.largeSubsets})`, valueName: 'n' },
    'all-repeats': { type: 'string', description: `seeds for k = all (quick ${MODES.quick.allRepeats}, full ${MODES.full.allRepeats})`, valueName: 'n' },
    steps: { type: 'string', description: `fine-tuning steps per run (default: what a first model's ${TRAINING.firstModelSeconds} s buy here, shared by the network initialisations compared)`, valueName: 'n' },
    'semi-steps': { type: 'string', description: `fine-tuning steps of the '${SEMI}' lines (default: what the same share of the budget buys with consistency's dearer steps, or --steps when given)`, valueName: 'n' },
    threshold: { type: 'string', default: 'calibrated', description: "each model's foreground decision: 'calibrated' on the val split, or 'fixed' at 0.5 (reproduces figures measured before calibration)", valueName: 'kind' },
    weights: { type: 'string', default: 'best', description: `which weights of each fine-tuning are scored: 'best' of the val checks every ${BEST_CHECK_EVERY} steps, or 'last' (reproduces figures measured before the checks)`, valueName: 'kind' },
    'auto-margin': { type: 'string', default: String(PRETRAINED_MARGIN), description: 'val Dice (instance sets: F1) a pretrained initialisation must gain over scratch to be chosen (as in maskloop train)', valueName: 'score' },
    ...TRAINING_OPTIONS,
  },
  async run(ctx) {
    const { values, signal } = ctx;
    const setup = await setUp(ctx, 'curve');
    const { ds, mode, report, outDir } = setup;
    const ks = listOption(values, 'ks', mode.ks).map((k) => {
      if (k === 'all') return ALL_LABELS;
      const n = Number(k);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`--ks takes positive integers and 'all', got '${k}'`);
      return n;
    });
    const channels = ds.train[0]?.image.channels ?? 1;
    const applicable = pretextTaskNames().filter((t) => pretextTask(t).appliesTo(channels));
    // Quick curves skip the two tasks that gained least over scratch in the ISBI quick curve (docs/results/history-2026-12-03.md).
    const tasks = values.quick ? applicable.filter((t) => !QUICK_SKIPS.includes(t)) : applicable;
    // The ilastik-style baseline is on every curve by default, on the same label subsets.
    const inits = listOption(values, 'inits', ['scratch', ...tasks, COMBINATION, PIXEL_CLASSIFIER].join(','));
    for (const init of inits) {
      const { base, semi, denoise } = semiSupervised(init);
      if ((semi || denoise) && base === PIXEL_CLASSIFIER) throw new UsageError(`--inits: '${init}': the baseline has no semi-supervised variant`);
      if (base !== 'scratch' && base !== COMBINATION && base !== PIXEL_CLASSIFIER && !applicable.includes(base)) {
        throw new UsageError(`--inits: '${init}' is not a pretext task for ${channels}-channel images (${applicable.join(', ')})`);
      }
    }
    const autoMargin = Number(values['auto-margin']);
    if (!Number.isFinite(autoMargin) || autoMargin < 0) throw new UsageError('--auto-margin must be a number ≥ 0');
    // The network initialisations share a first model's budget, as in maskloop train.
    const networks = inits.filter((i) => i !== PIXEL_CLASSIFIER).length;
    const budgets = await budgetsFor(setup, Math.max(1, networks), ds.val, inits, values);
    const settings = {
      ks: ks.map((k) => (k === ALL_LABELS ? 'all' : k)), inits,
      subsets: optionalInt(values, 'subsets', mode.subsets), largeSubsets: optionalInt(values, 'large-subsets', mode.largeSubsets), allRepeats: optionalInt(values, 'all-repeats', mode.allRepeats),
      pretrainSteps: optionalInt(values, 'pretrain-steps', budgets?.pretrain.steps ?? 0), pretrainLearningRate: setup.training.pretrainLearningRate, encoderRateFactor: setup.training.encoderRateFactor, finetuneSteps: optionalInt(values, 'steps', budgets?.firstModel.steps ?? 0),
      // From the budget, a consistency line gets what its share of the time buys; given steps serve every line unless --semi-steps says otherwise.
      consistencySteps: optionalInt(values, 'semi-steps', values.steps === undefined && budgets?.firstModel.consistency ? budgets.firstModel.consistency.steps : optionalInt(values, 'steps', budgets?.firstModel.steps ?? 0)),
      ...(budgets ? { budgets: describeBudgets(budgets) } : {}),
      batch: setup.training.batchSize, patch: setup.training.patchSize, learningRate: setup.training.learningRate, schedule: setup.training.schedule, threshold: choiceOption(values, 'threshold', FOREGROUND_THRESHOLDS), weights: choiceOption(values, 'weights', KEPT_WEIGHTS), norm: setup.training.arch.norm,
      valImages: ds.val.length, testImages: ds.test.length, downsample: ds.downsample, seed: setup.seed,
    };
    // Every finished run is appended at once, so an interrupted curve continues where it stopped.
    const log = path.join(outDir, 'runs.jsonl');
    const samePretraining = (r: CurveRun) => r.pretrainSteps === 0 || (r.pretrainSteps === settings.pretrainSteps && (r.pretrainLearningRate ?? TRAINING.pretrainLearningRate) === settings.pretrainLearningRate && (r.encoderRateFactor ?? 1) === settings.encoderRateFactor);
    // A semi-supervised run counts only if it used today's recipe.
    const sameRecipes = (r: CurveRun) => {
      const { semi, denoise } = semiSupervised(r.init);
      return (!semi || isDeepStrictEqual(r.consistency, DEFAULT_CONSISTENCY)) && (!denoise || isDeepStrictEqual(r.jointDenoising, DEFAULT_JOINT_DENOISING));
    };
    const sameSettings = (r: CurveRun) => (r.init === PIXEL_CLASSIFIER && r.dataset === ds.name && r.target === ds.target) || samePretraining(r) && sameRecipes(r) && r.finetuneSteps === (semiSupervised(r.init).semi ? settings.consistencySteps : settings.finetuneSteps) && r.dataset === ds.name && r.target === ds.target && (r.norm ?? 'none') === settings.norm && (r.schedule ?? 'constant') === settings.schedule && (r.threshold ?? 'fixed') === settings.threshold && weightsInEffect(r.finetuneSteps, r.weights) === weightsInEffect(settings.finetuneSteps, settings.weights) && (r.ttaChoice === 'off') === !setup.training.tta;
    const done = readJsonLines<CurveRun>(log).filter(sameSettings);
    if (done.length) report.message(`continuing: ${done.length} runs already measured in ${log}`);
    const runs = await runCurve(ds, {
      ks, inits, subsets: settings.subsets, largeSubsets: settings.largeSubsets, allRepeats: settings.allRepeats, pretrainSteps: settings.pretrainSteps,
      finetuneSteps: settings.finetuneSteps, consistencySteps: settings.consistencySteps, training: setup.training, threshold: settings.threshold, weights: settings.weights, seed: setup.seed,
      cacheDir: path.join(outDir, 'pretrained'), done,
      onRun: (r) => {
        fs.appendFileSync(log, JSON.stringify(r) + '\n');
        report.message(`${r.init} k=${r.kLabel} subset ${r.subset}: val Dice ${r.valDice.toFixed(3)}, test Dice ${r.testDice.toFixed(3)}` +
          (r.testF1 !== undefined ? `, F1 ${r.testF1.toFixed(3)}` : '') + ` (${r.wallSeconds.toFixed(0)} s)`, { run: runKey(r) });
      },
      onMessage: (text) => report.message(text),
    }).catch((err) => {
      if (signal.aborted) return null;
      throw err;
    });
    report.done();
    // An interrupted curve still reports what it measured; the same command continues it.
    const measured = runs ?? readJsonLines<CurveRun>(log).filter(sameSettings);
    if (measured.length > 0) console.log(await writeCurveReport(outDir, measured, context(setup, commandLine('curve'), settings), autoMargin));
    if (!runs) {
      console.error(`interrupted after ${measured.length} runs (report written from them); the same command continues`);
      return EXIT.cancelled;
    }
    return EXIT.ok;
  },
};

export const evalLoopCommand: Command = {
  name: 'eval loop',
  summary: 'replay an annotation session: correction cost per round, active vs random order',
  usage: 'eval loop (--dataset <name> | --images <dir> --masks <dir>) [--quick] [--init scratch|<task>[+<task>]] [--orders active,random] [options]',
  options: {
    ...DATASET_OPTIONS,
    init: { type: 'string', default: 'scratch', description: `initialisations to compare, comma-separated: 'scratch' or pretext tasks joined by +, each also with '${SEMI}' (consistency training on the images not labeled yet)`, valueName: 'list' },
    orders: { type: 'string', default: 'active,random', description: "label orders: 'active' (most uncertain first) and/or 'random'", valueName: 'list' },
    rounds: { type: 'string', description: `labeling rounds (quick ${MODES.quick.rounds}, full ${MODES.full.rounds})`, valueName: 'n' },
    'retrain-every': { type: 'string', default: '1', description: 'retrain after every n new labels', valueName: 'n' },
    'first-steps': { type: 'string', description: `steps of a session's first training (default: what a first model's ${TRAINING.firstModelSeconds} s buy here)`, valueName: 'n' },
    'retrain-steps': { type: 'string', description: `steps of each later, warm-started retraining (default: what ${TRAINING.retrainSeconds} s buy here)`, valueName: 'n' },
    candidates: { type: 'string', description: `unlabeled images the active order scores per round (0 = all; quick ${MODES.quick.candidates})`, valueName: 'n' },
    ...TRAINING_OPTIONS,
  },
  async run(ctx) {
    const { values, signal } = ctx;
    const setup = await setUp(ctx, 'loop');
    const { ds, mode, report, outDir } = setup;
    const orders = listOption(values, 'orders', 'active,random');
    for (const o of orders) if (o !== 'active' && o !== 'random') throw new UsageError(`--orders: '${o}' is not 'active' or 'random'`);
    const inits = listOption(values, 'init', 'scratch');
    for (const init of inits) if (semiSupervised(init).denoise) throw new UsageError(`--init: '${init}': joint denoising is measured by eval curve only`);
    const roundCount = optionalInt(values, 'rounds', mode.rounds);
    // Each session trains one initialisation; its val split reaches valImagesFor(rounds) images.
    const budgets = await budgetsFor(setup, 1, ds.train.slice(0, valImagesFor(roundCount)), inits, values);
    const settings = {
      inits, orders, rounds: roundCount, retrainEvery: intOption(values, 'retrain-every'),
      firstSteps: optionalInt(values, 'first-steps', budgets?.firstModel.steps ?? 0), retrainSteps: optionalInt(values, 'retrain-steps', budgets?.retrain.steps ?? 0),
      // '+semi' sessions: what the same budgets buy with consistency's dearer steps, or the steps given.
      semiFirstSteps: optionalInt(values, 'first-steps', budgets?.firstModel.consistency?.steps ?? budgets?.firstModel.steps ?? 0),
      semiRetrainSteps: optionalInt(values, 'retrain-steps', budgets?.retrain.consistency?.steps ?? budgets?.retrain.steps ?? 0),
      candidates: optionalInt(values, 'candidates', mode.candidates, 0),
      ...(budgets ? { budgets: describeBudgets(budgets) } : {}),
      pretrainSteps: optionalInt(values, 'pretrain-steps', budgets?.pretrain.steps ?? 0), pretrainLearningRate: setup.training.pretrainLearningRate, encoderRateFactor: setup.training.encoderRateFactor, batch: setup.training.batchSize, patch: setup.training.patchSize,
      learningRate: setup.training.learningRate, schedule: setup.training.schedule, norm: setup.training.arch.norm, testImages: ds.test.length, downsample: ds.downsample, seed: setup.seed,
    };
    const log = path.join(outDir, 'rounds.jsonl');
    fs.rmSync(log, { force: true });
    const rounds: LoopRound[] = [];
    try {
      for (const initName of inits) {
        const { base, semi } = semiSupervised(initName);
        const pretrained = base === 'scratch' ? undefined
          : await pretrainedInit(ds, base.split('+'), { ...setup.training, steps: settings.pretrainSteps, seed: setup.seed, cacheDir: path.join(outDir, 'pretrained') });
        try {
          for (const order of orders as LabelOrder[]) {
            report.message(`session: ${initName}, ${order} order`);
            rounds.push(...await simulateSession(ds, {
              order, rounds: settings.rounds, retrainEvery: settings.retrainEvery, firstSteps: settings.firstSteps, stepsPerRetrain: settings.retrainSteps,
              init: pretrained?.init, initName, candidates: settings.candidates, training: setup.training, seed: setup.seed, scoreImages: ds.test,
              ...(semi ? { semi: { consistency: DEFAULT_CONSISTENCY, firstSteps: settings.semiFirstSteps, stepsPerRetrain: settings.semiRetrainSteps } } : {}),
              onRound: (r) => {
                fs.appendFileSync(log, JSON.stringify(r) + '\n');
                report.message(`${initName} ${order} round ${r.round} (${r.image}): correct ${(100 * r.changedFraction).toFixed(1)}% of a drawing, ${r.strokes}/${r.drawStrokes} strokes, proposal Dice ${r.proposalDice.toFixed(3)}` +
                  (r.scoreChangedFraction !== undefined ? `; test split ${(100 * r.scoreChangedFraction).toFixed(1)}%` : ''));
              },
            }));
          }
        } finally {
          if (pretrained) disposeInit(pretrained.init);
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
      report.done();
      console.error(`interrupted: the rounds so far are in ${log}`);
      return EXIT.cancelled;
    }
    report.done();
    const md = await writeLoopReport(outDir, rounds, context(setup, commandLine('loop'), settings));
    console.log(md);
    return EXIT.ok;
  },
};
