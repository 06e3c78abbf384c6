/**
 * What every domain's handlers share: the open project, the job runner, the pixel worker, events
 * to the windows, and the checks that turn a request's ids into records. One AppContext per
 * AppService; the handlers of each domain (projects.ts, images.ts, labels.ts, models.ts, jobs.ts,
 * stats.ts) are functions of it.
 */
import type { JobProcessLauncher, JobRunner } from '../jobs/runner';
import { retrainPolicyState } from '../jobs/workflows/trainModel';
import type { Channel, ChannelResponse, ParsedRequest } from '../shared/ipc';
import type { AppEvent, ProjectChange } from '../shared/types';
import type { ImageRecord, Project } from '../store';
import { argumentError } from './errors';
import type { PixelWorker } from './pixelWorker';
import type { RecentProjects } from './recent';

/** What the shell (Electron or the browser server) gives the app service. */
export interface AppServiceOptions {
  shell: 'electron' | 'browser';
  /** Starts the job process (Node child process or Electron utilityProcess). */
  launcher: JobProcessLauncher;
  /** Where app state (recent projects) lives; not inside any project. */
  stateDir: string;
  version?: string;
  /** Steps of a training the retrain policy starts by itself (default: its time budget). */
  autoTrainSteps?: number;
  /** After a training that promoted a new model, refresh every proposal with it. */
  prelabelAfterPromotion?: boolean;
  /** The native folder picker (Electron only). */
  chooseFolder?: (title?: string) => Promise<string | null>;
}

export type Handler<C extends Channel> = (request: ParsedRequest<C>) => Promise<ChannelResponse<C>> | ChannelResponse<C>;
export type Handlers = { [C in Channel]: Handler<C> };
/** The handlers of one domain: the channels it answers. */
export type DomainHandlers<C extends Channel> = Pick<Handlers, C>;

export class AppContext {
  private current: Project | null = null;
  private readonly listeners = new Set<(event: AppEvent) => void>();

  constructor(
    readonly options: AppServiceOptions,
    readonly runner: JobRunner,
    readonly pixels: PixelWorker,
    readonly recent: RecentProjects,
  ) {}

  get project(): Project | null {
    return this.current;
  }

  /** Makes `project` the open one (closing any other) in this thread and in the pixel worker. */
  async setProject(project: Project | null): Promise<void> {
    if (this.current !== project) this.current?.close();
    this.current = project;
    if (project) await this.pixels.open(project.dir);
    else await this.pixels.closeProject();
  }

  onEvent(listener: (event: AppEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: AppEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // One broken subscriber (a closed event stream) must not stop the others.
      }
    }
  }

  changed(what: ProjectChange[], imageIds?: number[]): void {
    this.emit({ type: 'project-changed', what, ...(imageIds ? { imageIds } : {}) });
  }

  requireProject(): Project {
    if (!this.current) throw argumentError('no project is open: create or open one first');
    return this.current;
  }

  /**
   * The open project, for a write the renderer aimed at `projectUuid`: another window (or tab) may
   * have switched projects since, and image ids repeat across projects.
   */
  projectForWrite(projectUuid: string | undefined): Project {
    const project = this.requireProject();
    if (projectUuid !== undefined && projectUuid !== project.info.uuid) {
      throw argumentError(`this edit belongs to another project than the one open now (${project.info.name}): reopen that project to save it`);
    }
    return project;
  }

  requireImage(imageId: number): ImageRecord {
    const image = this.requireProject().getImage(imageId);
    if (!image) throw argumentError(`image ${imageId} is not in this project`);
    return image;
  }

  /** The retrain policy: after N new labels a training starts by itself (one at a time). */
  maybeRetrain(project: Project): void {
    if (!retrainPolicyState(project).due || this.runner.pending('train', project.dir)) return;
    const steps = this.options.autoTrainSteps;
    this.runner.start(project.dir, { kind: 'train', ...(steps ? { steps } : {}), target: 'semantic', warmStart: true, semiSupervised: false, when: 'ifDue' });
  }
}
