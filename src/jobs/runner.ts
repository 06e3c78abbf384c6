/**
 * The app's side of the job process: a queue of jobs with sequence ids, run one at a time in a
 * separate process (Node child process here, Electron utilityProcess in the desktop app), with
 * progress, cancel, and a clear end when that process dies. How the process is started is
 * injected, so the same runner serves both shells.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { JobRequest } from '../shared/ipc';
import type { AppEvent, JobInfo } from '../shared/types';
import { isFromJobProcess, type FromJobProcess, type ToJobProcess } from './protocol';

export interface JobProcessHandle {
  readonly pid: number | undefined;
  send(message: ToJobProcess): void;
  onMessage(listener: (message: unknown) => void): void;
  onExit(listener: (code: number | null) => void): void;
  kill(): void;
}

export type JobProcessLauncher = () => JobProcessHandle;

export const JOB_PROCESS_ENTRY = fileURLToPath(new URL('./process.mjs', import.meta.url));

/** A Node child process running src/jobs/process.mjs, with an IPC channel. */
export function nodeJobProcessLauncher(options: { env?: NodeJS.ProcessEnv } = {}): JobProcessLauncher {
  return () => {
    const child = fork(JOB_PROCESS_ENTRY, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: options.env ?? process.env, serialization: 'json' });
    return {
      get pid() {
        return child.pid;
      },
      send: (message) => {
        if (child.connected) child.send(message);
      },
      onMessage: (listener) => child.on('message', listener),
      onExit: (listener) => child.on('exit', (code) => listener(code)),
      kill: () => child.kill('SIGKILL'),
    };
  };
}

interface Job {
  info: JobInfo;
  projectDir: string;
  request: JobRequest;
  resumeRunId: number | null;
  cancelRequested: boolean;
}

export interface JobFinished {
  job: JobInfo;
  /** Project images that received proposals (prelabel). */
  imageIds: number[];
  /** The job process died with this job in flight (its run is left 'running' for the store to mark interrupted). */
  processDied: boolean;
}

/** After a cancel, the job gets this long to stop at a step boundary before its process is killed. */
const CANCEL_GRACE_MS = 20_000;

/**
 * An idle job process still holds the engine, its kernels' buffers and decoded data (1.2 GB
 * resident was seen after a training): it is ended after this long without a job and started
 * again for the next one (a few seconds). It holds no database connection between jobs, so ending it loses nothing.
 */
export const JOB_PROCESS_IDLE_EXIT_MS = 60_000;

export class JobRunner {
  private readonly jobs: Job[] = [];
  private seq = 0;
  private process: JobProcessHandle | null = null;
  private active: Job | null = null;
  private backendDescription: string | null = null;
  private processPid: number | null = null;
  private closed = false;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly launch: JobProcessLauncher,
    private readonly emit: (event: AppEvent) => void,
    private readonly onFinished: (finished: JobFinished) => void = () => {},
    private readonly idleExitMs: number = JOB_PROCESS_IDLE_EXIT_MS,
  ) {}

  /** The compute backend the job process chose, once it has started. */
  get backend(): string | null {
    return this.backendDescription;
  }

  /** pid of the job process (tests kill it to simulate a crash). */
  get pid(): number | null {
    return this.processPid;
  }

  start(projectDir: string, request: JobRequest, resumeRunId: number | null = null): JobInfo {
    if (this.closed) throw new Error('the job runner is closed');
    const info: JobInfo = {
      jobId: ++this.seq, runId: null, kind: request.kind, state: 'queued', request: { ...request }, progress: null,
      backend: this.backendDescription, message: null, errorKind: null, trainOutcome: null, resumesRunId: resumeRunId,
      startedAt: Date.now(), finishedAt: null,
    };
    this.jobs.push({ info, projectDir, request, resumeRunId, cancelRequested: false });
    this.emit({ type: 'job', job: { ...info } });
    this.pump();
    return { ...info };
  }

  cancel(jobId: number): JobInfo | null {
    const job = this.jobs.find((j) => j.info.jobId === jobId);
    if (!job) return null;
    if (job.info.state === 'queued') {
      this.finish(job, { state: 'cancelled', message: 'cancelled before it started', errorKind: 'cancelled' }, [], false);
    } else if (job.info.state === 'running' && !job.cancelRequested) {
      job.cancelRequested = true;
      this.process?.send({ type: 'cancel', seq: jobId });
      const process = this.process;
      setTimeout(() => {
        // Still running after the grace period: stop the process; the run stays 'running' with a
        // dead pid, which the store marks interrupted (resumable) on the next open.
        if (this.active === job && this.process === process) process?.kill();
      }, CANCEL_GRACE_MS).unref();
    }
    return { ...job.info };
  }

  list(): JobInfo[] {
    return this.jobs.map((j) => ({ ...j.info })).reverse();
  }

  get(jobId: number): JobInfo | null {
    const job = this.jobs.find((j) => j.info.jobId === jobId);
    return job ? { ...job.info } : null;
  }

  /** Whether a job of this kind (for this project) is queued or running. */
  pending(kind: JobRequest['kind'], projectDir?: string): boolean {
    return this.jobs.some((j) => j.info.kind === kind && (j.info.state === 'queued' || j.info.state === 'running') && (!projectDir || j.projectDir === projectDir));
  }

  /** Cancels queued jobs and stops the job process. */
  close(): void {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    for (const job of this.jobs) if (job.info.state === 'queued') this.finish(job, { state: 'cancelled', message: 'the app closed', errorKind: 'cancelled' }, [], false);
    this.process?.kill();
    this.process = null;
  }

  private ensureProcess(): JobProcessHandle {
    if (this.process) return this.process;
    const handle = this.launch();
    this.process = handle;
    this.processPid = handle.pid ?? null;
    handle.onMessage((message) => {
      if (this.process === handle && isFromJobProcess(message)) this.receive(message);
    });
    handle.onExit((code) => {
      if (this.process !== handle) return;
      this.process = null;
      this.processPid = null;
      const job = this.active;
      if (job) {
        const cancelled = job.cancelRequested;
        this.finish(
          job,
          cancelled
            ? { state: 'cancelled', message: 'stopped; the run can be resumed', errorKind: 'cancelled' }
            : { state: 'failed', message: `the job process ended unexpectedly (exit code ${code}); the run can be resumed`, errorKind: 'engine' },
          [],
          true,
        );
      }
      this.pump();
    });
    return handle;
  }

  private pump(): void {
    if (this.active || this.closed) return;
    const next = this.jobs.find((j) => j.info.state === 'queued');
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (!next) {
      if (this.process) this.idleTimer = setTimeout(() => this.endIdleProcess(), this.idleExitMs).unref();
      return;
    }
    this.active = next;
    next.info.state = 'running';
    next.info.startedAt = Date.now();
    this.emit({ type: 'job', job: { ...next.info } });
    this.ensureProcess().send({ type: 'start', seq: next.info.jobId, projectDir: next.projectDir, request: next.request, resumeRunId: next.resumeRunId });
  }

  private endIdleProcess(): void {
    this.idleTimer = null;
    const idle = this.process;
    if (!idle || this.active) return;
    // Forgotten first, so its exit is not taken for a crash.
    this.process = null;
    this.processPid = null;
    idle.kill();
  }

  private receive(message: FromJobProcess): void {
    if (message.type === 'ready') {
      this.backendDescription = message.backend;
      if (this.active) {
        this.active.info.backend = message.backend;
        this.emit({ type: 'job', job: { ...this.active.info } });
      }
      return;
    }
    const job = this.jobs.find((j) => j.info.jobId === message.seq);
    if (!job) return;
    switch (message.type) {
      case 'run':
        job.info.runId = message.runId;
        this.emit({ type: 'job', job: { ...job.info } });
        break;
      case 'progress':
        job.info.progress = message.progress;
        job.info.backend = this.backendDescription;
        this.emit({ type: 'job', job: { ...job.info } });
        break;
      case 'log':
        this.emit({ type: 'job-log', jobId: job.info.jobId, level: message.level, text: message.text, ...(message.path ? { path: message.path } : {}) });
        break;
      case 'done':
        job.info.trainOutcome = message.trainOutcome;
        this.finish(job, { state: message.status, message: message.message, errorKind: message.errorKind }, message.imageIds, false);
        break;
    }
  }

  private finish(job: Job, end: { state: JobInfo['state']; message: string; errorKind: string | null }, imageIds: number[], processDied: boolean): void {
    job.info.state = end.state;
    job.info.message = end.message;
    job.info.errorKind = end.errorKind;
    job.info.finishedAt = Date.now();
    if (this.active === job) this.active = null;
    this.emit({ type: 'job', job: { ...job.info } });
    this.onFinished({ job: { ...job.info }, imageIds, processDied });
    this.pump();
  }
}
