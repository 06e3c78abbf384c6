import { DEFAULT_PRETEXT_TASKS, PRETEXT_TASKS, TRAINING, type ModelSummary, type PretextTaskName } from '../../../src/shared';
import { call } from '../lib/api';
import { app } from './app.svelte';

/** Training panel: models and their comparison, the retrain policy, job options. */
export class TrainingState {
  models = $state<ModelSummary[]>([]);
  /** Seconds for a training; empty (null) leaves the default budget (a first model, or a retraining). */
  trainSeconds = $state<number | null>(null);
  /** Steps per candidate instead of a time budget (null: use the budget). */
  trainSteps = $state<number | null>(null);
  /** Continue the promoted model rather than choose the initialisation again. */
  warmStart = $state(true);
  semiSupervised = $state(false);
  pretrainMinutes = $state<number>(TRAINING.pretrainSeconds / 60);
  pretrainTasks = $state<PretextTaskName[]>([...DEFAULT_PRETEXT_TASKS]);
  target = $state<'semantic' | 'instance'>('semantic');
  retrainAfter = $state(0);
  private loadedVersion = -1;
  /** The project whose last runs set the forms (once per project, so the user's edits stay). */
  private formsFrom: string | null = null;

  async load(force = false): Promise<void> {
    if (!force && this.loadedVersion === app.modelsVersion) return;
    this.loadedVersion = app.modelsVersion;
    try {
      this.models = await call('models:list', {});
      this.retrainAfter = app.project?.settings.autoRetrainAfterLabels ?? 0;
      if (app.project && this.formsFrom !== app.project.uuid) {
        this.formsFrom = app.project.uuid;
        await this.formsFromLastRuns();
      }
    } catch (error) {
      app.error(error);
    }
  }

  /**
   * The forms start from what this project last ran, not from fixed defaults: after a reload a
   * user who trained for 60 steps must not find the time budget there and start a longer run.
   */
  private async formsFromLastRuns(): Promise<void> {
    const [lastTrain] = await call('runs:list', { kind: 'train', limit: 1 });
    const [lastPretrain] = await call('runs:list', { kind: 'pretrain', limit: 1 });
    // A run given steps recorded no budget; one given a budget recorded the steps it bought.
    const trainSteps = Number(lastTrain?.config.steps);
    if (lastTrain && lastTrain.config.budgetSeconds == null && Number.isInteger(trainSteps) && trainSteps > 0) this.trainSteps = trainSteps;
    const target = lastTrain ? String(lastTrain.config.target ?? '') : '';
    if (target) this.target = target.includes('instance') ? 'instance' : 'semantic';
    const pretrainSeconds = Number(lastPretrain?.config.budgetSeconds);
    if (pretrainSeconds > 0 && lastPretrain?.config.resumes == null) this.pretrainMinutes = Math.round(pretrainSeconds / 6) / 10;
    const tasks = String(lastPretrain?.config.tasks ?? '').split('+').filter((t): t is PretextTaskName => (PRETEXT_TASKS as readonly string[]).includes(t));
    if (tasks.length) this.pretrainTasks = tasks;
  }

  get segmentationModels(): ModelSummary[] {
    return this.models.filter((m) => m.kind !== 'pretext');
  }

  async train(): Promise<void> {
    await app.startJob({
      kind: 'train', target: this.target, warmStart: this.warmStart, semiSupervised: this.semiSupervised,
      ...(this.trainSteps ? { steps: this.trainSteps } : this.trainSeconds ? { budgetSeconds: this.trainSeconds } : {}),
    });
  }

  async pretrain(resume = false): Promise<void> {
    await app.startJob({ kind: 'pretrain', budgetSeconds: Math.max(1, this.pretrainMinutes * 60), tasks: [...this.pretrainTasks], resume });
  }

  async prelabel(): Promise<void> {
    await app.startJob({ kind: 'prelabel' });
  }

  async resume(runId: number): Promise<void> {
    try {
      const job = await call('jobs:resume', { runId });
      app.jobs = [job, ...app.jobs.filter((j) => j.jobId !== job.jobId)];
      await app.refreshProject();
    } catch (error) {
      app.error(error);
    }
  }

  async promote(modelId: number): Promise<void> {
    try {
      await call('models:promote', { modelId });
      await this.load(true);
      await app.refreshProject();
    } catch (error) {
      app.error(error);
    }
  }

  async rollback(): Promise<void> {
    try {
      const model = await call('models:rollback', {});
      app.toast('info', `Model #${model.id} is promoted again`);
      await this.load(true);
      await app.refreshProject();
    } catch (error) {
      app.error(error);
    }
  }

  async saveRetrainPolicy(): Promise<void> {
    try {
      await call('project:setSettings', { autoRetrainAfterLabels: Math.max(0, Math.round(this.retrainAfter)) });
      await app.refreshProject();
      app.toast('info', this.retrainAfter > 0 ? `Retraining after every ${this.retrainAfter} new labels` : 'Retraining on demand only');
    } catch (error) {
      app.error(error);
    }
  }
}

export const training = new TrainingState();
