import type { Project, RunKind, RunRecord } from '../../store';

/**
 * Runs that stopped before completing and that no later run has continued (a continuing run
 * records the one it continues as `config.resumes`), in the order given.
 */
export function notYetContinued(runs: RunRecord[]): RunRecord[] {
  const continued = new Set(runs.map((r) => r.config.resumes).filter((v) => typeof v === 'number'));
  return runs.filter((r) => r.status !== 'completed' && r.status !== 'running' && !continued.has(r.id));
}

/**
 * Stopped runs that a later completed run of the same kind made moot: a cancelled training after
 * which a newer training finished is not worth resuming (its model would be older than the
 * current one). An import is made moot only by a later import of the same folder.
 */
export function superseded(run: RunRecord, runs: RunRecord[]): boolean {
  return runs.some((later) => later.kind === run.kind && later.status === 'completed' && later.startedAt > run.startedAt
    && (run.kind !== 'import' || later.config.folder === run.config.folder));
}

/**
 * The run a workflow's `resume` option asks to continue: that run by id (it must be of `kind`), or
 * with true the newest of `kind` that stopped and was not continued yet and that `matches`;
 * undefined when there is none or nothing was asked.
 */
export function runToContinue(project: Project, kind: RunKind, resume: number | boolean | undefined, matches: (run: RunRecord) => boolean = () => true): RunRecord | undefined {
  if (typeof resume === 'number') {
    const run = project.getRun(resume);
    if (run?.kind !== kind) throw new Error(`run ${resume} is not a ${kind} run`);
    return run;
  }
  return resume ? notYetContinued(project.listRuns({ kind })).find(matches) : undefined;
}
