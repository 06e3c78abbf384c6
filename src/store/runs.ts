import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { Ctx } from './db';
import { now } from './db';
import { StoreError } from './errors';
import { RUN_KINDS, RUN_STATUSES, type FinishRun, type JsonObject, type NewRun, type RunFilter, type RunKind, type RunRecord, type RunStatus } from './types';
import { count, id, jsonObject, parseArgument, readJson } from './validate';

interface RunRow {
  id: number;
  kind: RunKind;
  config: string;
  status: RunStatus;
  step: number;
  total: number | null;
  message: string | null;
  model_id: number | null;
  pid: number | null;
  host: string | null;
  started_at: number;
  updated_at: number;
  finished_at: number | null;
}

function runFromRow(row: RunRow): RunRecord {
  return {
    id: row.id,
    kind: row.kind,
    config: readJson(row.config, `run ${row.id} config`) as JsonObject,
    status: row.status,
    step: row.step,
    total: row.total,
    message: row.message,
    modelId: row.model_id,
    pid: row.pid,
    host: row.host,
    startedAt: row.started_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}

const newRunSchema = z.object({
  kind: z.enum(RUN_KINDS),
  config: jsonObject,
  total: count.nullable().optional(),
  pid: id.optional(),
});

export function startRun(ctx: Ctx, input: NewRun): RunRecord {
  const r = parseArgument(newRunSchema, input, 'startRun');
  return ctx.write('starting a run', () => {
    const t = now();
    const row = ctx
      .stmt(
        `INSERT INTO runs (kind, config, total, pid, host, started_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(r.kind, JSON.stringify(r.config), r.total ?? null, r.pid ?? process.pid, hostname(), t, t) as RunRow;
    return runFromRow(row);
  });
}

export function getRun(ctx: Ctx, runId: number): RunRecord | null {
  const row = ctx.stmt('SELECT * FROM runs WHERE id = ?').get(runId) as RunRow | undefined;
  return row ? runFromRow(row) : null;
}

export function listRuns(ctx: Ctx, filter: RunFilter = {}): RunRecord[] {
  const f = parseArgument(
    z.object({ kind: z.enum(RUN_KINDS).optional(), status: z.enum(RUN_STATUSES).optional(), limit: count.optional() }),
    filter,
    'listRuns',
  );
  const rows = ctx
    .stmt(
      `SELECT * FROM runs WHERE (@kind IS NULL OR kind = @kind) AND (@status IS NULL OR status = @status)
       ORDER BY started_at DESC, id DESC LIMIT @limit`,
    )
    .all({ kind: f.kind ?? null, status: f.status ?? null, limit: f.limit ?? -1 }) as RunRow[];
  return rows.map(runFromRow);
}

/** Only a running run changes; a finished or interrupted one is history. */
function updateRunning(ctx: Ctx, runId: number, sql: string, params: unknown[], context: string): RunRecord {
  const row = ctx.stmt(`UPDATE runs SET ${sql}, updated_at = ? WHERE id = ? AND status = 'running' RETURNING *`).get(...params, now(), runId) as
    | RunRow
    | undefined;
  if (row) return runFromRow(row);
  const existing = getRun(ctx, runId);
  if (!existing) throw new StoreError('argument', `${context}: no run with id ${runId}`);
  throw new StoreError('argument', `${context}: run ${runId} is ${existing.status}, not running`);
}

export function updateRunProgress(ctx: Ctx, runId: number, progress: { step: number; total?: number | null }): RunRecord {
  parseArgument(id, runId, 'updateRunProgress id');
  const p = parseArgument(z.object({ step: count, total: count.nullable().optional() }), progress, 'updateRunProgress');
  return ctx.write('recording run progress', () =>
    p.total === undefined
      ? updateRunning(ctx, runId, 'step = ?', [p.step], 'updateRunProgress')
      : updateRunning(ctx, runId, 'step = ?, total = ?', [p.step, p.total], 'updateRunProgress'),
  );
}

/** Appends to a run's log (any run, finished ones too: a post-mortem note is still useful). */
export function appendRunLog(ctx: Ctx, runId: number, text: string): void {
  parseArgument(id, runId, 'appendRunLog id');
  parseArgument(z.string(), text, 'appendRunLog text');
  ctx.write('appending to a run log', () => {
    if (!ctx.stmt('SELECT 1 FROM runs WHERE id = ?').get(runId)) throw new StoreError('argument', `appendRunLog: no run with id ${runId}`);
    ctx.stmt('INSERT INTO run_log (run_id, at, text) VALUES (?, ?, ?)').run(runId, now(), text);
  });
}

/** The log as one text: appended pieces joined by newlines. */
export function runLog(ctx: Ctx, runId: number): string {
  const rows = ctx.stmt('SELECT text FROM run_log WHERE run_id = ? ORDER BY id').all(runId) as { text: string }[];
  return rows.map((r) => r.text).join('\n');
}

export function finishRun(ctx: Ctx, runId: number, result: FinishRun): RunRecord {
  parseArgument(id, runId, 'finishRun id');
  const r = parseArgument(
    z.object({ status: z.enum(['completed', 'failed', 'cancelled']), message: z.string().nullable().optional(), modelId: id.nullable().optional() }),
    result,
    'finishRun',
  );
  return ctx.write('finishing a run', () => {
    if (r.modelId != null && !ctx.stmt('SELECT 1 FROM models WHERE id = ?').get(r.modelId)) {
      throw new StoreError('argument', `finishRun: no model with id ${r.modelId}`);
    }
    return updateRunning(
      ctx,
      runId,
      'status = ?, message = ?, model_id = coalesce(?, model_id), finished_at = ?',
      [r.status, r.message ?? null, r.modelId ?? null, now()],
      'finishRun',
    );
  });
}

/**
 * Whether a process with this id is running on this machine (EPERM: it is, but is not ours). A
 * killed process whose parent died with it stays a zombie until init reaps it; it still answers
 * signal 0 but will never write again, so on Linux its /proc state decides.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    // Without /proc (macOS, Windows) signal 0 is the answer; with it, the process ended in between.
    return !existsSync('/proc/self/stat');
  }
}

/**
 * Marks as 'interrupted' the runs left 'running' by processes on this machine that no longer
 * exist (killed, crashed, power cut), so the app can offer to resume them. Runs started on other
 * machines (a project on a shared drive) cannot be checked from here and are left alone.
 */
export function markInterruptedRuns(ctx: Ctx, alive: (pid: number) => boolean = processAlive): RunRecord[] {
  const host = hostname();
  const select = () => ctx.stmt("SELECT * FROM runs WHERE status = 'running' AND host = ? AND pid IS NOT NULL").all(host) as RunRow[];
  // Look before taking the write lock: opening a project should not queue behind another
  // process's write when there is nothing to mark.
  if (!select().some((run) => !alive(run.pid!))) return [];
  return ctx.write('checking for interrupted runs', () => {
    const interrupted: RunRecord[] = [];
    for (const run of select()) {
      if (alive(run.pid!)) continue;
      const t = now();
      const message = `process ${run.pid} ended without finishing the run`;
      const row = ctx
        .stmt("UPDATE runs SET status = 'interrupted', message = ?, finished_at = ?, updated_at = ? WHERE id = ? RETURNING *")
        .get(message, t, t, run.id) as RunRow;
      ctx.stmt('INSERT INTO run_log (run_id, at, text) VALUES (?, ?, ?)').run(run.id, t, `interrupted: ${message}`);
      interrupted.push(runFromRow(row));
    }
    return interrupted;
  });
}
