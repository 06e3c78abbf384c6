/**
 * The step loop shared by pretraining and fine-tuning: timing, progress (step, loss, images/s,
 * ETA), cancellation and periodic checkpoints. What a step does is the caller's business.
 */

export interface TrainingProgress {
  phase: string;
  step: number;
  totalSteps: number;
  loss: number;
  /** Exponential moving average of the loss, the number worth plotting. */
  smoothedLoss: number;
  imagesPerSecond: number;
  etaSeconds: number;
  elapsedSeconds: number;
}

/** Options every training run takes, pretraining and fine-tuning alike. */
export interface TrainingRunOptions {
  /** Steps to run; with `seconds`, the most steps to run. */
  steps: number;
  /**
   * A wall-clock budget for this invocation: the run ends, completed, at the first step boundary
   * after it. Only for runs at a constant learning rate (pretraining): a schedule needs the
   * run's length in advance, which fine-tuning plans from its budget instead (budget.ts).
   */
  seconds?: number;
  batchSize?: number;
  patchSize?: number;
  learningRate?: number;
  seed?: number;
  /** Where to save (atomically) every checkpointEvery steps, on cancel and at the end. */
  checkpointFile?: string;
  checkpointEvery?: number;
  /** Continue from checkpointFile when it exists. */
  resume?: boolean;
  onProgress?: (p: TrainingProgress) => void;
  progressEvery?: number;
  signal?: AbortSignal;
}

/** The loop's options for a run: its reporting, cancelling and checkpointing settings passed through. */
export function loopOptionsFor(
  run: TrainingRunOptions,
  phase: string,
  startStep: number,
  imagesPerStep: number,
  save: (stepsDone: number) => Promise<void>,
): LoopOptions {
  return {
    phase,
    totalSteps: run.steps,
    seconds: run.seconds,
    startStep,
    imagesPerStep,
    onProgress: run.onProgress,
    progressEvery: run.progressEvery,
    signal: run.signal,
    checkpointEvery: run.checkpointEvery,
    onCheckpoint: run.checkpointFile ? save : undefined,
  };
}

export interface LoopOptions {
  phase: string;
  totalSteps: number;
  /** Wall-clock seconds after which the run ends (TrainingRunOptions.seconds). */
  seconds?: number;
  /** First step to run (resume); steps before it count as done. */
  startStep?: number;
  imagesPerStep: number;
  onProgress?: (p: TrainingProgress) => void;
  /** Report every n steps (always the first and the last). */
  progressEvery?: number;
  signal?: AbortSignal;
  checkpointEvery?: number;
  /** Called every checkpointEvery steps, on cancel and at the end, with the number of steps done. */
  onCheckpoint?: (stepsDone: number) => Promise<void>;
}

export interface LoopResult {
  status: 'completed' | 'cancelled';
  stepsDone: number;
  losses: number[];
  imagesPerSecond: number;
}

export async function runLoop(step: (index: number) => number | Promise<number>, options: LoopOptions): Promise<LoopResult> {
  const start = options.startStep ?? 0;
  const every = Math.max(1, options.progressEvery ?? 1);
  const losses: number[] = [];
  let smoothed = NaN;
  const t0 = performance.now();
  let done = start;
  // With a time budget the total is an estimate, revised as the step time becomes known.
  let total = options.totalSteps;
  for (let i = start; i < total; i++) {
    if (options.signal?.aborted) {
      await options.onCheckpoint?.(done);
      return { status: 'cancelled', stepsDone: done, losses, imagesPerSecond: rate(done - start, t0, options.imagesPerStep) };
    }
    const loss = await step(i);
    if (!Number.isFinite(loss)) throw new Error(`${options.phase}: loss became ${loss} at step ${i + 1}; lower the learning rate`);
    losses.push(loss);
    smoothed = Number.isNaN(smoothed) ? loss : 0.9 * smoothed + 0.1 * loss;
    done = i + 1;
    const ran = done - start;
    const elapsed = (performance.now() - t0) / 1000;
    const perStep = elapsed / ran;
    if (options.seconds !== undefined) {
      total = elapsed >= options.seconds ? done : Math.min(options.totalSteps, done + Math.max(1, Math.floor((options.seconds - elapsed) / perStep)));
    }
    if (options.onProgress && (ran === 1 || done % every === 0 || done === total)) {
      options.onProgress({
        phase: options.phase,
        step: done,
        totalSteps: total,
        loss,
        smoothedLoss: smoothed,
        imagesPerSecond: (ran * options.imagesPerStep) / Math.max(elapsed, 1e-9),
        etaSeconds: options.seconds !== undefined ? Math.max(0, options.seconds - elapsed) : perStep * (total - done),
        elapsedSeconds: elapsed,
      });
    }
    if (options.checkpointEvery && options.onCheckpoint && done % options.checkpointEvery === 0 && done < total) {
      await options.onCheckpoint(done);
    }
    // Yield to the event loop between steps so that cancel requests, IPC messages and progress
    // writes are handled while a long run is in progress.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await options.onCheckpoint?.(done);
  return { status: 'completed', stepsDone: done, losses, imagesPerSecond: rate(done - start, t0, options.imagesPerStep) };
}

function rate(steps: number, t0: number, imagesPerStep: number): number {
  const s = (performance.now() - t0) / 1000;
  return s > 0 ? (steps * imagesPerStep) / s : 0;
}
