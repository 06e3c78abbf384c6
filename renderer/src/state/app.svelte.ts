import type { AppEvent, AppInfo, ImageSummary, JobInfo, ProjectSummary } from '../../../src/shared';
import { api, call, errorMessage } from '../lib/api';

export type Screen = 'start' | 'gallery' | 'annotate' | 'training' | 'progress';

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  text: string;
}

export interface LossPoint {
  step: number;
  loss: number;
  smoothed: number | null;
  phase: string;
}

export interface JobLogLine {
  level: 'info' | 'warning';
  text: string;
  path?: string;
}

/**
 * Application-wide state: which screen, the open project, jobs and their live progress, and
 * the event subscription that keeps all of it current. One instance, created at start.
 */
export class AppState {
  screen = $state<Screen>('start');
  info = $state<AppInfo | null>(null);
  project = $state<ProjectSummary | null>(null);
  /** This session's jobs, newest first, as last reported. */
  jobs = $state<JobInfo[]>([]);
  /** Loss per step of each training job, for the live plot (kept outside deep reactivity: it grows fast). */
  lossHistory = $state.raw<Record<number, LossPoint[]>>({});
  jobLogs = $state.raw<Record<number, JobLogLine[]>>({});
  toasts = $state<Toast[]>([]);
  /** The image the annotator shows; set by the gallery. */
  openImageId = $state<number | null>(null);
  /** Bumped whenever the project's images, labels or predictions change: lists reload on it. */
  imagesVersion = $state(0);
  modelsVersion = $state(0);
  /** Ordered image ids of the gallery's current view, so the annotator can step to the next one. */
  browseOrder = $state.raw<number[]>([]);
  ready = $state(false);
  private nextToast = 1;
  private phaseOffsets = new Map<number, number>();
  private readonly changeListeners = new Set<(change: Extract<AppEvent, { type: 'project-changed' }>) => void>();

  /** Hears every change to the open project (the annotator reloads a label changed elsewhere). */
  onProjectChange(listener: (change: Extract<AppEvent, { type: 'project-changed' }>) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  get backend(): string | null {
    const fromJob = this.jobs.find((j) => j.backend)?.backend ?? null;
    return fromJob ?? this.info?.engineBackend ?? null;
  }

  get activeJob(): JobInfo | null {
    return this.jobs.find((j) => j.state === 'running') ?? this.jobs.find((j) => j.state === 'queued') ?? null;
  }

  async init(): Promise<void> {
    api.onEvent((event) => this.handleEvent(event));
    try {
      this.info = await call('app:info', {});
      if (this.info.project) {
        this.project = this.info.project;
        this.jobs = await call('jobs:list', {});
        this.screen = 'gallery';
      }
    } catch (error) {
      this.error(error);
    }
    this.ready = true;
  }

  error(error: unknown): void {
    this.toast('error', errorMessage(error));
  }

  toast(kind: Toast['kind'], text: string): void {
    const id = this.nextToast++;
    this.toasts.push({ id, kind, text });
    setTimeout(() => this.dismiss(id), kind === 'error' ? 12000 : 5000);
  }

  dismiss(id: number): void {
    this.toasts = this.toasts.filter((t) => t.id !== id);
  }

  async refreshProject(): Promise<void> {
    if (!this.project) return;
    try {
      this.project = await call('project:summary', {});
    } catch (error) {
      this.error(error);
    }
  }

  /** Creates the project and starts importing the images folder in the background. */
  async createProject(dir: string, imagesFolder: string | null): Promise<void> {
    this.project = await call('project:create', { dir });
    this.resetProjectView();
    if (imagesFolder) this.noteJob(await call('jobs:start', { kind: 'import', folder: imagesFolder }));
    this.screen = 'gallery';
  }

  async openProject(dir: string): Promise<void> {
    this.project = await call('project:open', { dir });
    this.resetProjectView();
    this.jobs = await call('jobs:list', {});
    this.screen = 'gallery';
  }

  async closeProject(): Promise<void> {
    await call('project:close', {});
    this.project = null;
    this.resetProjectView();
    this.screen = 'start';
  }

  async startJob(request: Parameters<typeof call<'jobs:start'>>[1]): Promise<JobInfo | null> {
    try {
      const job = await call('jobs:start', request);
      this.noteJob(job);
      return job;
    } catch (error) {
      this.error(error);
      return null;
    }
  }

  async cancelJob(jobId: number): Promise<void> {
    try {
      this.noteJob(await call('jobs:cancel', { jobId }));
    } catch (error) {
      this.error(error);
    }
  }

  openImage(image: ImageSummary | number): void {
    this.openImageId = typeof image === 'number' ? image : image.id;
    this.screen = 'annotate';
  }

  private resetProjectView(): void {
    this.openImageId = null;
    this.jobs = [];
    this.lossHistory = {};
    this.jobLogs = {};
    this.browseOrder = [];
    this.imagesVersion++;
    this.modelsVersion++;
  }

  private noteJob(job: JobInfo): void {
    const index = this.jobs.findIndex((j) => j.jobId === job.jobId);
    if (index >= 0) this.jobs[index] = job;
    else this.jobs = [job, ...this.jobs];
    const p = job.progress;
    if (p && p.loss !== null && (job.kind === 'train' || job.kind === 'pretrain')) {
      const history = this.lossHistory[job.jobId] ?? [];
      const last = history[history.length - 1];
      // A phase that counts its steps from 0 again is plotted after the one before it; a training
      // counts steps over all its candidates, so its phases follow on by themselves.
      let offset = this.phaseOffsets.get(job.jobId) ?? 0;
      if (last && last.phase !== p.phase && offset + p.step <= last.step) {
        offset = last.step;
        this.phaseOffsets.set(job.jobId, offset);
      }
      const step = offset + p.step;
      if (!last || step > last.step) {
        this.lossHistory = { ...this.lossHistory, [job.jobId]: [...history, { step, loss: p.loss, smoothed: p.smoothedLoss, phase: p.phase }] };
      }
    }
  }

  private handleEvent(event: AppEvent): void {
    switch (event.type) {
      case 'job': {
        const before = this.jobs.find((j) => j.jobId === event.job.jobId);
        this.noteJob(event.job);
        const finished = before?.state !== event.job.state && ['completed', 'failed', 'cancelled'].includes(event.job.state);
        if (finished) {
          if (event.job.state === 'failed') this.toast('error', `${event.job.kind} failed: ${event.job.message ?? 'unknown error'}`);
          else this.toast('info', `${event.job.kind} ${event.job.state}${event.job.message ? `: ${event.job.message}` : ''}`);
          void this.refreshProject();
          this.imagesVersion++;
          this.modelsVersion++;
        }
        break;
      }
      case 'job-log': {
        const lines = this.jobLogs[event.jobId] ?? [];
        this.jobLogs = { ...this.jobLogs, [event.jobId]: [...lines, { level: event.level, text: event.text, path: event.path }] };
        break;
      }
      case 'project-changed':
        if (event.what.some((w) => w === 'images' || w === 'labels' || w === 'predictions')) this.imagesVersion++;
        if (event.what.includes('models')) this.modelsVersion++;
        for (const listener of this.changeListeners) listener(event);
        void this.refreshProject();
        break;
      case 'project-closed':
        this.project = null;
        this.screen = 'start';
        break;
    }
  }
}

export const app = new AppState();
