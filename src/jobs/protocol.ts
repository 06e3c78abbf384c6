/**
 * The typed message protocol between the app and its job process (DESIGN.md convention 6).
 * Every job carries the app's sequence number `seq`; the job process answers with the store's run
 * id, progress, log lines and one final 'done'. Messages are plain JSON-able objects, so the same
 * protocol runs over a Node child process channel and Electron's utilityProcess port.
 */
import type { ErrorKind } from '../shared/result';
import type { JobRequest } from '../shared/ipc';
import type { JobProgress, TrainOutcome } from '../shared/types';

export type ToJobProcess =
  | { type: 'start'; seq: number; projectDir: string; request: JobRequest; resumeRunId: number | null }
  | { type: 'cancel'; seq: number };

export type FromJobProcess =
  | { type: 'ready'; pid: number; backend: string }
  | { type: 'run'; seq: number; runId: number }
  | { type: 'progress'; seq: number; progress: JobProgress }
  | { type: 'log'; seq: number; level: 'info' | 'warning'; text: string; path?: string }
  | {
      type: 'done';
      seq: number;
      status: 'completed' | 'cancelled' | 'failed';
      message: string;
      errorKind: ErrorKind | null;
      trainOutcome: TrainOutcome | null;
      /** Project images that got new proposals (prelabel). */
      imageIds: number[];
      /** For a skipped 'ifDue' training: nothing happened. */
      skipped: boolean;
    };

export function isFromJobProcess(value: unknown): value is FromJobProcess {
  const type = (value as { type?: unknown } | null)?.type;
  return type === 'ready' || type === 'run' || type === 'progress' || type === 'log' || type === 'done';
}

export function isToJobProcess(value: unknown): value is ToJobProcess {
  const type = (value as { type?: unknown } | null)?.type;
  return type === 'start' || type === 'cancel';
}
