/**
 * The steps the product's time budgets (TRAINING) buy on this machine, so that the evaluations
 * train exactly as users' projects do. They are measured once per evaluation folder and kept in
 * plan.json: a continued evaluation trains as it began, and every method it compares gets the
 * same steps.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TRAINING } from '../shared/training';
import { DEFAULT_PRETEXT_TASKS } from '../shared/types';
import { planSteps, type StepPlan } from '../engine/train/budget';
import { DEFAULT_CONSISTENCY } from '../engine/train/consistency';
import { pretrain } from '../engine/train/pretrain';
import { asLabeled, type EvalDataset, type EvalImage, type EvalTraining } from './setup';
import { parseTarget } from '../shared/target';

export interface EvalBudgets {
  /** A first model: every candidate initialisation within TRAINING.firstModelSeconds. */
  firstModel: StepPlan;
  /** A retraining: the current model continued within TRAINING.retrainSeconds. */
  retrain: StepPlan;
  /** Pretraining within TRAINING.pretrainSeconds (measured on the default pretext task). */
  pretrain: { budgetSeconds: number; secondsPerStep: number; steps: number };
  /** What the plan was measured for: a stored plan for other settings is measured again. */
  key: string;
}

/** Images the probes train on: enough to sample crops like a run does, few enough to load fast. */
const PROBE_IMAGES = 2;
const PRETRAIN_PROBE_STEPS = 3;

/**
 * The plan kept in `dir`, or a new one measured now. `candidates`: initialisations a first model
 * chooses among; `valImages`: the val split the first model (and each retraining) is judged on;
 * `withConsistency`: whether a method compared trains with consistency, whose dearer steps are
 * then planned too.
 */
export async function evalBudgets(dir: string, ds: EvalDataset, training: EvalTraining, candidates: number, valImages: EvalImage[], withConsistency: boolean): Promise<EvalBudgets> {
  const key = JSON.stringify({ dataset: ds.name, target: ds.target, downsample: ds.downsample, arch: training.arch, batch: training.batchSize, patch: training.patchSize, candidates, val: valImages.length, budgets: TRAINING, ...(withConsistency ? { consistency: DEFAULT_CONSISTENCY } : {}) });
  const file = path.join(dir, 'plan.json');
  if (fs.existsSync(file)) {
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as EvalBudgets;
    if (stored.key === key) return stored;
  }
  const images = asLabeled(ds.train.slice(0, PROBE_IMAGES));
  const val = asLabeled(valImages);
  // Consistency training is planned on the images a run would have unlabeled.
  const unlabeled = [...ds.train.slice(PROBE_IMAGES).map((im) => im.image), ...ds.unlabeled].slice(0, PROBE_IMAGES);
  const common = { images, valImages: val, target: parseTarget(ds.target), config: training.arch, batchSize: training.batchSize, patchSize: training.patchSize };
  const consistency = (continuesTrainedModel: boolean) => (withConsistency && unlabeled.length ? { consistency: { options: DEFAULT_CONSISTENCY, unlabeled, continuesTrainedModel } } : {});
  const firstModel = await planSteps({ ...common, ...consistency(false), budgetSeconds: TRAINING.firstModelSeconds, candidates });
  const retrain = await planSteps({ ...common, ...consistency(true), budgetSeconds: TRAINING.retrainSeconds, candidates: 1, choosesAugmentation: false });
  const elapsed: number[] = [];
  const probe = await pretrain({
    tasks: [...DEFAULT_PRETEXT_TASKS], images: ds.train.slice(0, PROBE_IMAGES).map((im) => im.image), config: training.arch,
    steps: PRETRAIN_PROBE_STEPS + 1, batchSize: training.batchSize, patchSize: training.patchSize, onProgress: (p) => elapsed.push(p.elapsedSeconds),
  });
  probe.model.dispose();
  const secondsPerStep = (elapsed[PRETRAIN_PROBE_STEPS] - elapsed[0]) / PRETRAIN_PROBE_STEPS;
  const budgets: EvalBudgets = {
    firstModel, retrain, key,
    pretrain: { budgetSeconds: TRAINING.pretrainSeconds, secondsPerStep, steps: Math.max(1, Math.floor(TRAINING.pretrainSeconds / secondsPerStep)) },
  };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify(budgets, null, 2) + '\n');
  return budgets;
}

/** One line for a report: what each budget bought. */
export function describeBudgets(b: EvalBudgets): string {
  const s = (seconds: number) => `${seconds.toFixed(2)} s`;
  const semi = (p: StepPlan) => (p.consistency ? `, or ${p.consistency.steps} with consistency (${s(p.consistency.secondsPerStep)}/step)` : '');
  return `first model ${b.firstModel.budgetSeconds} s = ${b.firstModel.steps} steps × ${b.firstModel.candidates} candidate(s) (${s(b.firstModel.secondsPerStep)}/step, val pass ${s(b.firstModel.secondsPerValCheck)}${semi(b.firstModel)}); ` +
    `retraining ${b.retrain.budgetSeconds} s = ${b.retrain.steps} steps${semi(b.retrain)}; pretraining ${b.pretrain.budgetSeconds} s = ${b.pretrain.steps} steps (${s(b.pretrain.secondsPerStep)}/step)`;
}
