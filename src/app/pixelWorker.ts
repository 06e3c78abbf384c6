/**
 * The main thread's side of the pixel worker (pixelWorkerThread.ts): typed calls that resolve
 * with the thread's answer, errors rebuilt with their kind. The thread starts with the first call
 * and, if it dies, the next call starts a new one on the same project; the calls it held fail with
 * an engine error rather than hang.
 */
import { Worker } from 'node:worker_threads';
import type { ErrorKind } from '../shared/result';
import { AppError } from './errors';
import type { PixelOperation, PixelOperations, PixelReply, PixelRequest } from './pixelWorkerThread';

const ENTRY = new URL('./pixelWorkerEntry.mjs', import.meta.url);

type Answer<K extends PixelOperation> = Awaited<ReturnType<PixelOperations[K]>>;

export class PixelWorker {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, { worker: Worker; resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  /** The project the thread must have open; reopened in a restarted thread. */
  private projectDir: string | null = null;

  call<K extends PixelOperation>(op: K, ...args: Parameters<PixelOperations[K]>): Promise<Answer<K>> {
    const worker = this.worker ?? this.start();
    return this.post(worker, op, args) as Promise<Answer<K>>;
  }

  async open(dir: string): Promise<void> {
    this.projectDir = dir;
    await this.call('open', dir);
  }

  async closeProject(): Promise<void> {
    this.projectDir = null;
    if (this.worker) await this.call('close');
  }

  /** Stops the thread (its connection closes with it). */
  async terminate(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    this.projectDir = null;
    if (worker) await worker.terminate();
  }

  /** Stops the thread as a crash would, keeping the project to reopen: for tests of the recovery. */
  async kill(): Promise<void> {
    await this.worker?.terminate();
  }

  /** The thread's id while it runs, for tests. */
  get threadId(): number | null {
    return this.worker?.threadId ?? null;
  }

  private start(): Worker {
    const worker = new Worker(ENTRY);
    this.worker = worker;
    worker.unref();
    worker.on('message', (reply: PixelReply) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (![...this.pending.values()].some((p) => p.worker === worker)) worker.unref();
      if (reply.ok) waiting.resolve(reply.value);
      else waiting.reject(new AppError(reply.kind as ErrorKind, reply.message));
    });
    const stopped = (why: string) => {
      if (this.worker === worker) this.worker = null;
      for (const [id, waiting] of this.pending) {
        if (waiting.worker !== worker) continue;
        this.pending.delete(id);
        waiting.reject(new AppError('engine', `the pixel worker stopped (${why}): try again`));
      }
    };
    worker.on('error', (error) => stopped(error.message));
    worker.on('exit', (code) => stopped(`exit code ${code}`));
    if (this.projectDir) void this.post(worker, 'open', [this.projectDir]).catch(() => undefined);
    return worker;
  }

  private post(worker: Worker, op: PixelOperation, args: unknown[]): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { worker, resolve, reject });
      // Held open while it owes an answer, so a process waiting only for it does not exit.
      worker.ref();
      worker.postMessage({ id, op, args } satisfies PixelRequest);
    });
  }
}
