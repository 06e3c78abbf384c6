/**
 * How a workflow talks to whoever runs it (the command line's progress bar, or the app's job
 * process relaying to the UI): progress, messages worth showing, the run record as soon as it
 * exists, and an AbortSignal to stop at the next step.
 */
import type { TrainingProgress } from '../engine/train/loop';
import type { RunRecord } from '../store';

export interface WorkHooks {
  signal?: AbortSignal;
  onProgress?: (progress: TrainingProgress) => void;
  /** A line for the person running it, with machine-readable fields (e.g. a rejected file and why). */
  onMessage?: (text: string, fields?: Record<string, unknown>) => void;
  /** Called once the store's run record exists, so a UI can link the job to it. */
  onRun?: (run: RunRecord) => void;
  /** Let initEngine print which backend it chose (the CLI does on a terminal). */
  logBackend?: boolean;
}

export type WorkStatus = 'completed' | 'cancelled';

export const NEVER_ABORTED: AbortSignal = new AbortController().signal;
