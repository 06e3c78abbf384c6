/**
 * Progress output for command-line runs: a redrawn bar with ETA on a terminal, one JSON object
 * per line otherwise (pipes, log files, SLURM), so machines and people both get what they need.
 */
import type { TrainingProgress } from '../engine/train/loop';

export interface ProgressReporter {
  training(p: TrainingProgress): void;
  message(text: string, fields?: Record<string, unknown>): void;
  done(): void;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}

export function createReporter(options: { json?: boolean; stream?: NodeJS.WriteStream } = {}): ProgressReporter {
  const stream = options.stream ?? process.stderr;
  const json = options.json ?? !stream.isTTY;
  let barShown = false;
  const endBar = () => {
    if (barShown) stream.write('\n');
    barShown = false;
  };
  return {
    training(p) {
      if (json) {
        stream.write(JSON.stringify({ event: 'progress', ...p }) + '\n');
        return;
      }
      const width = 24;
      const filled = Math.round((width * p.step) / p.totalSteps);
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      stream.write(
        `\r${p.phase.padEnd(22)} ${bar} ${String(p.step).padStart(5)}/${p.totalSteps} loss ${p.smoothedLoss.toFixed(4)}` +
          `  ${p.imagesPerSecond.toFixed(1)} img/s  ETA ${formatDuration(p.etaSeconds)} `,
      );
      barShown = true;
      if (p.step === p.totalSteps) endBar();
    },
    message(text, fields = {}) {
      if (json) {
        stream.write(JSON.stringify({ event: 'message', text, ...fields }) + '\n');
        return;
      }
      endBar();
      stream.write(text + '\n');
    },
    done: endBar,
  };
}
