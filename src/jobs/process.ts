/**
 * The job process: runs import, pretrain, train and prelabel off the app's main thread, one at a
 * time, with the same workflow functions as the command line. It opens the project itself for
 * each job (the store is safe with two processes), so a crash here cannot damage the app's
 * connection, and a kill leaves the run 'running' with this pid, which the next open marks
 * 'interrupted' and the app offers to resume.
 */
import { backendInfo, initEngine, type BackendInfo } from '../engine/backend';
import type { TrainingProgress } from '../engine/train/loop';
import { ImageDecodeError } from '../imaging/decode';
import type { ErrorKind } from '../shared/result';
import type { JobProgress, TrainOutcome } from '../shared/types';
import { openProject, StoreError } from '../store';
import type { WorkHooks } from './hooks';
import { isToJobProcess, type FromJobProcess, type ToJobProcess } from './protocol';
import { runJob } from './run';

interface Port {
  send(message: FromJobProcess): void;
  onMessage(listener: (message: unknown) => void): void;
}

/** Electron's utilityProcess has process.parentPort; a Node child process has process.send. */
function parentPort(): Port {
  const electronPort = (process as unknown as { parentPort?: { postMessage(m: unknown): void; on(e: 'message', l: (e: { data: unknown }) => void): void } }).parentPort;
  if (electronPort) {
    return { send: (m) => electronPort.postMessage(m), onMessage: (l) => electronPort.on('message', (e) => l(e.data)) };
  }
  if (!process.send) throw new Error('the job process must be started by the app (no IPC channel)');
  // The app is gone (crashed or killed): stop too. The run stays 'running' with this pid, and the
  // next open of the project marks it interrupted, ready to resume.
  process.on('disconnect', () => process.exit(0));
  return { send: (m) => process.send!(m), onMessage: (l) => process.on('message', l) };
}

/** ETA and rate as the UI wants them: null where unknown rather than NaN (which JSON cannot carry). */
export function toJobProgress(p: TrainingProgress, total: number | null): JobProgress {
  const finite = (v: number) => (Number.isFinite(v) ? v : null);
  return {
    phase: p.phase,
    step: p.step,
    total,
    loss: p.phase === 'import' ? null : finite(p.loss),
    smoothedLoss: p.phase === 'import' ? null : finite(p.smoothedLoss),
    rate: finite(p.imagesPerSecond) ?? 0,
    etaSeconds: finite(p.etaSeconds),
    elapsedSeconds: p.elapsedSeconds,
  };
}

export function errorKindOf(error: unknown): ErrorKind {
  if (error instanceof StoreError) return error.code;
  if (error instanceof ImageDecodeError) return 'data';
  return 'engine';
}

const port = parentPort();
const controllers = new Map<number, AbortController>();
let queue: Promise<void> = Promise.resolve();

async function execute(message: Extract<ToJobProcess, { type: 'start' }>): Promise<void> {
  const { seq } = message;
  const controller = new AbortController();
  controllers.set(seq, controller);
  let lastSent = 0;
  let runTotal: number | null = null;
  const hooks: WorkHooks = {
    signal: controller.signal,
    onRun: (run) => {
      runTotal = run.total;
      port.send({ type: 'run', seq, runId: run.id });
    },
    onProgress: (p) => {
      // A few updates a second are plenty for a progress bar and keep the IPC quiet.
      const now = performance.now();
      const last = p.step === p.totalSteps;
      if (!last && now - lastSent < 200) return;
      lastSent = now;
      const total = p.phase === 'import' ? null : p.totalSteps;
      port.send({ type: 'progress', seq, progress: toJobProgress(p, total ?? runTotal) });
    },
    onMessage: (text, fields) => port.send({ type: 'log', seq, level: fields?.event === 'rejected' ? 'warning' : 'info', text, path: typeof fields?.path === 'string' ? fields.path : undefined }),
  };
  let project;
  try {
    project = openProject(message.projectDir);
    const outcome = await runJob(project, message.request, message.resumeRunId, hooks);
    port.send({ type: 'done', seq, errorKind: outcome.status === 'cancelled' ? 'cancelled' : null, ...outcome });
  } catch (error) {
    port.send({
      type: 'done', seq, status: 'failed', message: (error as Error).message ?? String(error), errorKind: errorKindOf(error),
      trainOutcome: null as TrainOutcome | null, imageIds: [], skipped: false,
    });
  } finally {
    project?.close();
    controllers.delete(seq);
  }
}

port.onMessage((message) => {
  if (!isToJobProcess(message)) return;
  if (message.type === 'cancel') {
    controllers.get(message.seq)?.abort();
    return;
  }
  queue = queue.then(() => execute(message));
});

/** What the UI shows: the chosen backend and how it computes, e.g. 'native — AVX2/FMA addon, 2 threads'. */
function backendLabel(info: BackendInfo): string {
  const chosen = info.attempts[info.attempts.length - 1];
  return chosen?.detail ? `${info.choice} — ${chosen.detail}` : `${info.choice} (${info.threads} thread${info.threads === 1 ? '' : 's'})`;
}

const info = backendInfo() ?? (await initEngine({ log: false }));
port.send({ type: 'ready', pid: process.pid, backend: backendLabel(info) });
