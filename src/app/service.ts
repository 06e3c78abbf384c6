/**
 * The application service: one handler per channel of the IPC contract, grouped by domain
 * (projects.ts, images.ts, labels.ts, models.ts, jobs.ts, stats.ts) over the project store, the
 * pixel worker and the job runner. Both shells call `invoke` with whatever the renderer sent: it
 * validates against the contract's zod schemas before any handler runs (DESIGN.md convention 3)
 * and answers `{ok, value | error}` with the error's kind. One AppService owns the open project's
 * database connection on this thread; its pixel worker and the job process open their own.
 */
import { JobRunner } from '../jobs/runner';
import { parseRequest, type Channel, type ChannelResponse } from '../shared/ipc';
import type { Region } from '../shared/binary';
import { ok, type Result } from '../shared/result';
import type { AppEvent } from '../shared/types';
import { AppContext, type AppServiceOptions, type Handler, type Handlers } from './context';
import { toFailure } from './errors';
import { imageHandlers, imagePixels, imageThumbnail } from './images';
import { jobFinished, jobHandlers } from './jobs';
import { imageLabel, imageProposal, imageUncertainty, labelHandlers } from './labels';
import { modelHandlers } from './models';
import { PixelWorker } from './pixelWorker';
import type { BinaryBody } from './pixels';
import { projectHandlers } from './projects';
import { RecentProjects } from './recent';
import { statsHandlers } from './stats';

export type { AppServiceOptions } from './context';

export class AppService {
  private readonly ctx: AppContext;
  private readonly handlers: Handlers;

  constructor(options: AppServiceOptions) {
    const runner = new JobRunner(options.launcher, (e) => this.ctx.emit(e), (f) => void jobFinished(this.ctx, f));
    this.ctx = new AppContext(options, runner, new PixelWorker(), new RecentProjects(options.stateDir));
    this.handlers = {
      ...projectHandlers(this.ctx),
      ...imageHandlers(this.ctx),
      ...labelHandlers(this.ctx),
      ...modelHandlers(this.ctx),
      ...jobHandlers(this.ctx),
      ...statsHandlers(this.ctx),
    };
  }

  /** Validates the request against the contract, runs the handler, and classes any error. */
  async invoke<C extends Channel>(channel: C, request: unknown): Promise<Result<ChannelResponse<C>>> {
    const parsed = parseRequest(channel, request);
    if (!parsed.ok) return { ok: false, error: { kind: 'argument', message: parsed.message } };
    try {
      const handler = this.handlers[channel] as Handler<C>;
      return ok(await handler(parsed.value));
    } catch (error) {
      return toFailure(error);
    }
  }

  onEvent(listener: (event: AppEvent) => void): () => void {
    return this.ctx.onEvent(listener);
  }

  /** The job process's pid, for tests that kill it. */
  get jobProcessPid(): number | null {
    return this.ctx.runner.pid;
  }

  /** The pixel worker's thread id while it runs, for tests. */
  get pixelWorkerThreadId(): number | null {
    return this.ctx.pixels.threadId;
  }

  /** Pixels of the open project's largest image (0 without a project): what bounds a real request's size. */
  largestImagePixels(): number {
    return this.ctx.project?.largestImagePixels() ?? 0;
  }

  get projectDir(): string | null {
    return this.ctx.project?.dir ?? null;
  }

  /** Stops the job process and the pixel worker and closes the project. */
  async close(): Promise<void> {
    this.ctx.runner.close();
    this.ctx.project?.close();
    await this.ctx.pixels.terminate();
  }

  // Binary resources (GET /api/images/:id/...), shared by the HTTP server and Electron's app:// protocol.

  imagePixels(imageId: number, region?: Region): Promise<BinaryBody> {
    return imagePixels(this.ctx, imageId, region);
  }

  imageThumbnail(imageId: number, size?: number): Promise<BinaryBody> {
    return imageThumbnail(this.ctx, imageId, size);
  }

  imageLabel(imageId: number, version?: number): Promise<BinaryBody | null> {
    return imageLabel(this.ctx, imageId, version);
  }

  imageProposal(imageId: number, modelId?: number): Promise<BinaryBody | null> {
    return imageProposal(this.ctx, imageId, modelId);
  }

  imageUncertainty(imageId: number, modelId?: number): Promise<BinaryBody | null> {
    return imageUncertainty(this.ctx, imageId, modelId);
  }
}
