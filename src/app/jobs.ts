/**
 * Jobs: starting, cancelling and resuming the work of the job process, the run history, and what
 * the app does when a job ends (a dead job process, a promotion that calls for fresh proposals).
 */
import fs from 'node:fs';
import { notYetContinued, superseded } from '../jobs/workflows/continuable';
import type { JobFinished } from '../jobs/runner';
import { formatTarget, recordedTarget } from '../shared/target';
import type { PretextTaskName, ProjectChange, RunSummary } from '../shared/types';
import { openProject, type Project, type RunRecord } from '../store';
import type { AppContext, DomainHandlers } from './context';
import { argumentError } from './errors';
import { existingFolder } from './paths';

export function runSummary(r: RunRecord): RunSummary {
  return {
    id: r.id, kind: r.kind, status: r.status, step: r.step, total: r.total, message: r.message, modelId: r.modelId,
    startedAt: r.startedAt, updatedAt: r.updatedAt, finishedAt: r.finishedAt, config: r.config,
  };
}

/** Interrupted or cancelled runs not yet continued by a later run: what can be resumed. */
export function resumableRuns(project: Project): RunSummary[] {
  const runs = project.listRuns({ limit: 200 });
  return notYetContinued(runs).filter((r) => (r.status === 'interrupted' || r.status === 'cancelled') && r.kind !== 'eval' && !superseded(r, runs)
    && (r.kind !== 'pretrain' || r.status === 'interrupted' || fs.existsSync(String(r.config.checkpoint)))).map(runSummary);
}

export async function jobFinished(ctx: AppContext, finished: JobFinished): Promise<void> {
  const project = ctx.project;
  if (finished.processDied && project) {
    // Reopening makes the store mark the dead process's run 'interrupted', so it shows as resumable.
    const dir = project.dir;
    project.close();
    try {
      await ctx.setProject(openProject(dir));
    } catch {
      await ctx.setProject(null).catch(() => undefined);
      ctx.emit({ type: 'project-closed' });
    }
  }
  const { job, imageIds } = finished;
  const what: ProjectChange[] = ['runs'];
  if (job.kind === 'import') what.push('images');
  if (job.kind === 'pretrain' || job.kind === 'train') what.push('models');
  if (job.kind === 'prelabel') what.push('predictions', 'images');
  ctx.changed(what, imageIds.length ? imageIds : undefined);
  if (job.kind === 'train' && job.state === 'completed' && job.trainOutcome?.promoted && ctx.project && (ctx.options.prelabelAfterPromotion ?? true)) {
    ctx.runner.start(ctx.project.dir, { kind: 'prelabel' });
  }
}

export function jobHandlers(ctx: AppContext): DomainHandlers<'jobs:start' | 'jobs:cancel' | 'jobs:list' | 'jobs:resume' | 'runs:list'> {
  return {
    'jobs:start': (request) => {
      const project = ctx.requireProject();
      if (request.kind === 'import') request = { ...request, folder: existingFolder(request.folder, 'image folder') };
      if (request.kind === 'prelabel' && !project.promotedModel()) throw argumentError('no promoted model yet: train one first');
      if (request.kind === 'prelabel' && request.imageIds) for (const imageId of request.imageIds) ctx.requireImage(imageId);
      return ctx.runner.start(project.dir, request);
    },
    'jobs:cancel': ({ jobId }) => {
      const job = ctx.runner.cancel(jobId);
      if (!job) throw argumentError(`no job ${jobId}`);
      return job;
    },
    'jobs:list': () => ctx.runner.list(),
    'jobs:resume': ({ runId }) => {
      const project = ctx.requireProject();
      const run = project.getRun(runId);
      if (!run) throw argumentError(`run ${runId} is not in this project`);
      if (run.status !== 'interrupted' && run.status !== 'cancelled' && run.status !== 'failed') throw argumentError(`run ${runId} is ${run.status}: only interrupted, cancelled or failed runs can be resumed`);
      const c = run.config;
      switch (run.kind) {
        case 'import':
          return ctx.runner.start(project.dir, { kind: 'import', folder: existingFolder(String(c.folder), 'image folder'), split: (c.split as 'unassigned') ?? 'unassigned' }, runId);
        case 'pretrain':
          // The run's recorded settings (budget, steps, rate) are read back by the job.
          return ctx.runner.start(project.dir, { kind: 'pretrain', tasks: String(c.tasks).split('+') as PretextTaskName[], resume: true }, runId);
        case 'train':
          return ctx.runner.start(project.dir, {
            // The run's recorded steps, rate and use of unlabeled images are read back by the job.
            kind: 'train', when: 'now', warmStart: true, semiSupervised: false, target: formatTarget(recordedTarget(c.target)),
          }, runId);
        case 'prelabel':
          if (c.folder) throw argumentError(`run ${runId} prelabeled a folder: resume it with maskloop prelabel on the command line`);
          return ctx.runner.start(project.dir, { kind: 'prelabel', ...(Array.isArray(c.imageIds) ? { imageIds: c.imageIds as number[] } : {}) }, runId);
        default:
          throw argumentError(`${run.kind} runs are not resumed from the app`);
      }
    },
    'runs:list': ({ kind, limit }) => ctx.requireProject().listRuns({ kind, limit }).map(runSummary),
  };
}
