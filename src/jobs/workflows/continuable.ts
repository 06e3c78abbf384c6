import type { RunRecord } from '../../store';

/**
 * Runs that stopped before completing and that no later run has continued (a continuing run
 * records the one it continues as `config.resumes`), in the order given.
 */
export function notYetContinued(runs: RunRecord[]): RunRecord[] {
  const continued = new Set(runs.map((r) => r.config.resumes).filter((v) => typeof v === 'number'));
  return runs.filter((r) => r.status !== 'completed' && r.status !== 'running' && !continued.has(r.id));
}
