import { PRETEXT_TASKS, type ModelSummary, type PretextTaskName } from '../../../src/shared';
import { call } from '../lib/api';
import { app } from './app.svelte';

/** Training panel: models and their comparison, the retrain policy, job options. */
export class TrainingState {
  models = $state<ModelSummary[]>([]);
  trainSteps = $state(600);
  pretrainSteps = $state(1000);
  pretrainTasks = $state<PretextTaskName[]>(['inpainting']);
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
   * user who trained for 60 steps must not find 600 there and start a run ten times as long.
   */
  private async formsFromLastRuns(): Promise<void> {
    const [lastTrain] = await call('runs:list', { kind: 'train', limit: 1 });
    const [lastPretrain] = await call('runs:list', { kind: 'pretrain', limit: 1 });
    const trainSteps = Number(lastTrain?.config.steps);
    if (Number.isInteger(trainSteps) && trainSteps > 0) this.trainSteps = trainSteps;
    const target = lastTrain ? String(lastTrain.config.target ?? '') : '';
    if (target) this.target = target.includes('instance') ? 'instance' : 'semantic';
    if (lastPretrain?.total) this.pretrainSteps = lastPretrain.total;
    const tasks = String(lastPretrain?.config.tasks ?? '').split('+').filter((t): t is PretextTaskName => (PRETEXT_TASKS as readonly string[]).includes(t));
    if (tasks.length) this.pretrainTasks = tasks;
  }

  get segmentationModels(): ModelSummary[] {
    return this.models.filter((m) => m.kind !== 'pretext');
  }

  async train(): Promise<void> {
    await app.startJob({ kind: 'train', steps: this.trainSteps, target: this.target });
  }

  async pretrain(resume = false): Promise<void> {
    await app.startJob({ kind: 'pretrain', steps: this.pretrainSteps, tasks: [...this.pretrainTasks], resume });
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
