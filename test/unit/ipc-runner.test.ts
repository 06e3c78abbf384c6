/** The job runner's queue, sequence ids, cancel and process-death handling, with a scripted stand-in for the job process. */
import { describe, expect, it } from 'vitest';
import type { FromJobProcess, ToJobProcess } from '../../src/jobs/protocol';
import { JobRunner, type JobProcessHandle } from '../../src/jobs/runner';
import type { AppEvent } from '../../src/shared';

function fakeProcess() {
  const sent: ToJobProcess[] = [];
  let onMessage: (m: unknown) => void = () => {};
  let onExit: (code: number | null) => void = () => {};
  let launches = 0;
  const launcher = (): JobProcessHandle => {
    launches++;
    return {
      pid: 1000 + launches,
      send: (m) => sent.push(m),
      onMessage: (l) => (onMessage = l),
      onExit: (l) => (onExit = l),
      kill: () => onExit(null),
    };
  };
  return { sent, launcher, reply: (m: FromJobProcess) => onMessage(m), exit: (code: number | null) => onExit(code), launches: () => launches };
}

const done = (seq: number, status: 'completed' | 'cancelled' | 'failed' = 'completed'): FromJobProcess => ({
  type: 'done', seq, status, message: status, errorKind: status === 'cancelled' ? 'cancelled' : status === 'failed' ? 'engine' : null, trainOutcome: null, imageIds: [], skipped: false,
});

describe('JobRunner', () => {
  it('runs jobs one at a time in order, with sequence ids, run ids, progress and the backend', () => {
    const p = fakeProcess();
    const events: AppEvent[] = [];
    const finished: number[] = [];
    const runner = new JobRunner(p.launcher, (e) => events.push(e), (f) => finished.push(f.job.jobId));
    const a = runner.start('/p', { kind: 'import', folder: '/images', split: 'unassigned' });
    const b = runner.start('/p', { kind: 'prelabel' });
    expect([a.jobId, b.jobId]).toEqual([1, 2]);
    expect(p.sent).toEqual([{ type: 'start', seq: 1, projectDir: '/p', request: { kind: 'import', folder: '/images', split: 'unassigned' }, resumeRunId: null }]);
    expect(runner.get(2)!.state).toBe('queued');
    p.reply({ type: 'ready', pid: 1001, backend: 'native — 2 threads' });
    p.reply({ type: 'run', seq: 1, runId: 7 });
    p.reply({ type: 'progress', seq: 1, progress: { phase: 'import', step: 3, total: null, loss: null, smoothedLoss: null, rate: 10, etaSeconds: null, elapsedSeconds: 0.3 } });
    expect(runner.get(1)).toMatchObject({ state: 'running', runId: 7, backend: 'native — 2 threads', progress: { step: 3 } });
    p.reply(done(1));
    expect(runner.get(1)!.state).toBe('completed');
    expect(p.sent.at(-1)).toMatchObject({ type: 'start', seq: 2 });
    p.reply(done(2));
    expect(finished).toEqual([1, 2]);
    expect(p.launches()).toBe(1);
    expect(runner.list().map((j) => j.jobId)).toEqual([2, 1]);
    expect(events.filter((e) => e.type === 'job').length).toBeGreaterThanOrEqual(6);
  });

  it('cancels a queued job without starting it and asks the running one to stop', () => {
    const p = fakeProcess();
    const runner = new JobRunner(p.launcher, () => {});
    runner.start('/p', { kind: 'prelabel' });
    const queued = runner.start('/p', { kind: 'prelabel' });
    expect(runner.cancel(queued.jobId)).toMatchObject({ state: 'cancelled', errorKind: 'cancelled' });
    runner.cancel(1);
    expect(p.sent).toContainEqual({ type: 'cancel', seq: 1 });
    p.reply(done(1, 'cancelled'));
    expect(runner.get(1)).toMatchObject({ state: 'cancelled' });
    expect(p.sent.filter((m) => m.type === 'start')).toHaveLength(1);
    expect(runner.cancel(99)).toBeNull();
  });

  it('fails the job in flight when the process dies, and starts a fresh process for the next job', () => {
    const p = fakeProcess();
    const died: boolean[] = [];
    const runner = new JobRunner(p.launcher, () => {}, (f) => died.push(f.processDied));
    runner.start('/p', { kind: 'pretrain', tasks: ['inpainting'], steps: 10, maxImages: 4, learningRate: 0.001, checkpointEvery: 5, resume: false });
    runner.start('/p', { kind: 'prelabel' });
    p.exit(137);
    expect(runner.get(1)).toMatchObject({ state: 'failed', errorKind: 'engine', message: expect.stringMatching(/ended unexpectedly.*resumed/) });
    expect(died).toEqual([true]);
    expect(p.launches()).toBe(2);
    expect(p.sent.at(-1)).toMatchObject({ type: 'start', seq: 2 });
    runner.close();
    expect(() => runner.start('/p', { kind: 'prelabel' })).toThrow(/closed/);
  });

  it('ends an idle job process after a while and starts a fresh one for the next job', async () => {
    const p = fakeProcess();
    const finished: boolean[] = [];
    const runner = new JobRunner(p.launcher, () => {}, (f) => finished.push(f.processDied), 30);
    runner.start('/p', { kind: 'prelabel' });
    p.reply(done(1));
    expect(runner.pid).toBe(1001);
    await new Promise((resolve) => setTimeout(resolve, 80));
    // Ended quietly: no job is failed by it, and it is not reported as a crash.
    expect(runner.pid).toBeNull();
    expect(finished).toEqual([false]);
    const next = runner.start('/p', { kind: 'prelabel' });
    expect(p.launches()).toBe(2);
    expect(runner.get(next.jobId)!.state).toBe('running');
    // Not while a job runs.
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(runner.pid).toBe(1002);
    runner.close();
  });
});
