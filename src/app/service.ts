/**
 * The application service: one handler per channel of the IPC contract, over the project store,
 * imaging and the job runner. Both shells call `invoke` with whatever the renderer sent: it
 * validates against the contract's zod schemas before any handler runs (DESIGN.md convention 3),
 * checks paths, and answers `{ok, value | error}` with the error's kind. One AppService owns the
 * open project's database connection; the job process opens its own for the job's duration.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { retrainPolicyState } from '../jobs/workflows/trainModel';
import { exportMasks } from '../jobs/workflows/exportMasks';
import { JobRunner, type JobFinished, type JobProcessLauncher } from '../jobs/runner';
import { parseRequest, type Channel, type ChannelResponse, type ParsedRequest } from '../shared/ipc';
import { ok, type Result } from '../shared/result';
import type {
  AppEvent,
  FolderListing,
  ImageDetail,
  ImageSummary,
  LabelVersionSummary,
  ModelSummary,
  ProgressStats,
  ProjectChange,
  ProjectSummary,
  RunSummary,
} from '../shared/types';
import {
  createProject,
  DATABASE_FILE,
  openProject,
  type ImageRecord,
  type LabelArray,
  type LabelVersionInfo,
  type ModelRecord,
  type Project,
  type RunRecord,
} from '../store';
import { AppError, argumentError, toFailure } from './errors';
import { DEFAULT_THUMBNAIL, MAX_THUMBNAIL, PixelCache, floatBody, maskBody, type BinaryBody } from './pixels';
import { RecentProjects } from './recent';
import { notYetContinued, superseded } from '../jobs/workflows/continuable';
import { formatTarget, recordedTarget } from '../shared/target';

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

type Handlers = { [C in Channel]: (request: ParsedRequest<C>) => Promise<ChannelResponse<C>> | ChannelResponse<C> };

const EVENT_FOR_SOURCE = { manual: 'annotate', edited_proposal: 'correct', accepted_proposal: 'accept' } as const;
const IMAGE_EXTENSIONS = /\.(png|jpe?g|tiff?)$/i;

/** The store's record without its store ids (the contract's fields must not carry extra keys). */
function labelSummary({ id: _id, imageId: _imageId, ...summary }: LabelVersionInfo): LabelVersionSummary {
  return summary;
}

function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export function modelSummary(m: ModelRecord): ModelSummary {
  const metrics = m.valMetrics ?? {};
  const candidates = Array.isArray(metrics.candidates)
    ? metrics.candidates.flatMap((c) => (c && typeof c === 'object' && !Array.isArray(c) && typeof c.name === 'string' && typeof c.dice === 'number'
      ? [{ name: c.name, dice: c.dice, ...(typeof c.f1 === 'number' ? { f1: c.f1 } : {}) }]
      : []))
    : [];
  return {
    id: m.id, kind: m.kind, parentId: m.parentId, pretextInit: m.pretextInit, createdAt: m.createdAt, promoted: m.promoted,
    valDice: numberOrNull(metrics.dice), incumbentDice: numberOrNull(metrics.incumbentDice),
    valF1: numberOrNull(metrics.f1), incumbentF1: numberOrNull(metrics.incumbentF1), incumbentId: numberOrNull(metrics.incumbentId),
    trainImages: numberOrNull(metrics.trainImages), valImages: numberOrNull(metrics.valImages), candidates, semiSupervised: metrics.semiSupervised === true,
    decision: typeof metrics.decision === 'string' ? metrics.decision : null,
  };
}

function runSummary(r: RunRecord): RunSummary {
  return {
    id: r.id, kind: r.kind, status: r.status, step: r.step, total: r.total, message: r.message, modelId: r.modelId,
    startedAt: r.startedAt, updatedAt: r.updatedAt, finishedAt: r.finishedAt, config: r.config,
  };
}

/** A label array wide enough for both: a patch may bring ids the stored dtype cannot hold. */
function widen(base: LabelArray, patch: LabelArray): LabelArray {
  const rank = (a: LabelArray) => (a instanceof Uint8Array ? 0 : a instanceof Uint16Array ? 1 : 2);
  if (rank(patch) <= rank(base)) return base.slice();
  return rank(patch) === 1 ? Uint16Array.from(base) : Int32Array.from(base);
}

export class AppService {
  private project: Project | null = null;
  private readonly listeners = new Set<(event: AppEvent) => void>();
  private readonly runner: JobRunner;
  private readonly pixels = new PixelCache();
  private readonly recent: RecentProjects;
  private readonly handlers: Handlers;

  constructor(private readonly options: AppServiceOptions) {
    this.recent = new RecentProjects(options.stateDir);
    this.runner = new JobRunner(options.launcher, (e) => this.emit(e), (f) => this.jobFinished(f));
    this.handlers = this.createHandlers();
  }

  /** Validates the request against the contract, runs the handler, and classes any error. */
  async invoke<C extends Channel>(channel: C, request: unknown): Promise<Result<ChannelResponse<C>>> {
    const parsed = parseRequest(channel, request);
    if (!parsed.ok) return { ok: false, error: { kind: 'argument', message: parsed.message } };
    try {
      const handler = this.handlers[channel] as (r: ParsedRequest<C>) => Promise<ChannelResponse<C>> | ChannelResponse<C>;
      return ok(await handler(parsed.value));
    } catch (error) {
      return toFailure(error);
    }
  }

  onEvent(listener: (event: AppEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The job process's pid, for tests that kill it. */
  get jobProcessPid(): number | null {
    return this.runner.pid;
  }

  /** Pixels of the open project's largest image (0 without a project): what bounds a real request's size. */
  largestImagePixels(): number {
    return this.project?.largestImagePixels() ?? 0;
  }

  get projectDir(): string | null {
    return this.project?.dir ?? null;
  }

  close(): void {
    this.runner.close();
    this.project?.close();
    this.project = null;
  }

  private emit(event: AppEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // One broken subscriber (a closed event stream) must not stop the others.
      }
    }
  }

  private changed(what: ProjectChange[], imageIds?: number[]): void {
    this.emit({ type: 'project-changed', what, ...(imageIds ? { imageIds } : {}) });
  }

  private requireProject(): Project {
    if (!this.project) throw argumentError('no project is open: create or open one first');
    return this.project;
  }

  /**
   * The open project, for a write the renderer aimed at `projectUuid`: another window (or tab) may
   * have switched projects since, and image ids repeat across projects.
   */
  private projectForWrite(projectUuid: string | undefined): Project {
    const project = this.requireProject();
    if (projectUuid !== undefined && projectUuid !== project.info.uuid) {
      throw argumentError(`this edit belongs to another project than the one open now (${project.info.name}): reopen that project to save it`);
    }
    return project;
  }

  private requireImage(imageId: number): ImageRecord {
    const image = this.requireProject().getImage(imageId);
    if (!image) throw argumentError(`image ${imageId} is not in this project`);
    return image;
  }

  private adopt(project: Project): ProjectSummary {
    this.project?.close();
    this.project = project;
    this.recent.remember(project.dir, project.info.name);
    this.changed(['images', 'labels', 'predictions', 'models', 'runs', 'settings']);
    return this.summary(project);
  }

  private summary(project: Project): ProjectSummary {
    const promoted = project.promotedModel();
    const policy = retrainPolicyState(project);
    // Interrupted or cancelled runs not yet continued by a later run are what can be resumed.
    const runs = project.listRuns({ limit: 200 });
    const resumable = notYetContinued(runs).filter((r) => (r.status === 'interrupted' || r.status === 'cancelled') && r.kind !== 'eval' && !superseded(r, runs)
      && (r.kind !== 'pretrain' || r.status === 'interrupted' || fs.existsSync(String(r.config.checkpoint))));
    return {
      dir: project.dir, name: project.info.name, uuid: project.info.uuid, createdAt: project.info.createdAt,
      counts: project.countImages(), promotedModel: promoted ? modelSummary(promoted) : null, rollbackTo: project.rollbackTarget(), settings: project.getSettings(),
      retrain: policy, resumableRuns: resumable.map(runSummary),
    };
  }

  /** Latest prediction's uncertainty per image, in one query (the store's getPrediction would decode every mask). */
  private scores(project: Project): Map<number, number | null> {
    const rows = project.database
      .prepare(
        `SELECT p.image_id AS imageId, p.uncertainty_score AS score FROM predictions p
         WHERE p.id = (SELECT q.id FROM predictions q WHERE q.image_id = p.image_id ORDER BY q.created_at DESC, q.id DESC LIMIT 1)`,
      )
      .all() as { imageId: number; score: number | null }[];
    return new Map(rows.map((r) => [r.imageId, r.score]));
  }

  private imageSummary(image: ImageRecord, score: number | null): ImageSummary {
    return {
      id: image.id, path: image.path, width: image.width, height: image.height, channels: image.channels, bitDepth: image.bitDepth,
      pages: image.pages, format: image.format, split: image.split, status: image.status, uncertaintyScore: score, addedAt: image.addedAt,
    };
  }

  private async imageDetail(imageId: number): Promise<ImageDetail> {
    const project = this.requireProject();
    const image = this.requireImage(imageId);
    const label = project.latestLabel(imageId);
    const promoted = project.promotedModel();
    const predictions = project.listPredictions(imageId);
    const proposal = (promoted && predictions.find((p) => p.modelId === promoted.id)) || predictions.sort((a, b) => b.createdAt - a.createdAt)[0] || null;
    const decoded = await this.pixels.decoded(image);
    return {
      ...this.imageSummary(image, proposal?.uncertaintyScore ?? null),
      dtype: decoded.data instanceof Uint8Array ? 'uint8' : decoded.data instanceof Uint16Array ? 'uint16' : 'float32',
      contrast: await this.pixels.contrast(image),
      label: label ? labelSummary(label) : null,
      proposal: proposal
        ? { modelId: proposal.modelId, createdAt: proposal.createdAt, uncertaintyScore: proposal.uncertaintyScore, dtype: proposal.dtype, fromPromotedModel: proposal.modelId === promoted?.id }
        : null,
    };
  }

  /** Folders are what the user points at; each is resolved and must exist. */
  private existingFolder(dir: string, what: string): string {
    const resolved = path.resolve(dir);
    const stat = fs.statSync(resolved, { throwIfNoEntry: false });
    if (!stat?.isDirectory()) throw argumentError(`${what} ${resolved} is not a folder`);
    return resolved;
  }

  /** A path inside the project folder; anything resolving outside it (.., symlinks) is refused. */
  private insideProject(project: Project, ...parts: string[]): string {
    const root = fs.realpathSync(project.dir);
    const target = path.resolve(root, ...parts);
    if (target !== root && !target.startsWith(root + path.sep)) throw argumentError(`${parts.join('/')} is outside the project folder`);
    let existing = target;
    while (!fs.existsSync(existing)) existing = path.dirname(existing);
    const real = fs.realpathSync(existing);
    if (real !== root && !real.startsWith(root + path.sep)) throw argumentError(`${parts.join('/')} leads outside the project folder`);
    return target;
  }

  private saveLabel(project: Project, input: {
    imageId: number; data: LabelArray; width: number; height: number; unknown: Uint8Array | null; source: keyof typeof EVENT_FOR_SOURCE;
    parentVersion?: number | null; timeSpentMs: number; pixelsChanged?: number;
  }): LabelVersionSummary {
    const image = this.requireImage(input.imageId);
    if (input.width !== image.width || input.height !== image.height) {
      throw argumentError(`mask is ${input.width}x${input.height}, image ${image.id} is ${image.width}x${image.height}`);
    }
    if (input.unknown && input.unknown.length !== input.width * input.height) throw argumentError('unknown flags must have one byte per pixel');
    if (input.source === 'edited_proposal' && project.listPredictions(input.imageId).length === 0) {
      throw argumentError(`image ${input.imageId} has no proposal, so its label cannot be an edited proposal`);
    }
    const saved = project.addLabelVersion({
      imageId: input.imageId, mask: { width: input.width, height: input.height, data: input.data }, unknown: input.unknown,
      source: input.source, author: project.getSetting('defaultAuthor'), parentVersion: input.parentVersion,
      event: { kind: EVENT_FOR_SOURCE[input.source], timeSpentMs: input.timeSpentMs, pixelsChanged: input.pixelsChanged ?? 0 },
    });
    this.changed(['labels', 'images'], [input.imageId]);
    this.maybeRetrain(project);
    return labelSummary(saved);
  }

  /**
   * A class can be removed only while no label uses it: its pixels would otherwise stay in the
   * labels under a class nobody can see or name. Object masks are all class 1, so only class masks
   * (uint8) are read.
   */
  private refuseRemovingUsedClasses(project: Project, keep: number): void {
    if (keep >= project.getSetting('classNames').length) return;
    const using: string[] = [];
    for (const { image } of project.labeledImages()) {
      const label = project.latestLabel(image.id);
      if (label?.mask.data instanceof Uint8Array && label.mask.data.some((v) => v > keep)) using.push(path.basename(image.path));
    }
    if (using.length) {
      throw argumentError(`class ${keep + 1} is used in ${using.length} image(s) (${using.slice(0, 3).join(', ')}${using.length > 3 ? ', …' : ''}): erase it there first`);
    }
  }

  /** The retrain policy: after N new labels a training starts by itself (one at a time). */
  private maybeRetrain(project: Project): void {
    if (!retrainPolicyState(project).due || this.runner.pending('train', project.dir)) return;
    const steps = this.options.autoTrainSteps;
    this.runner.start(project.dir, { kind: 'train', ...(steps ? { steps } : {}), target: 'semantic', warmStart: true, semiSupervised: false, when: 'ifDue' });
  }

  private jobFinished(finished: JobFinished): void {
    const project = this.project;
    if (finished.processDied && project) {
      // Reopening makes the store mark the dead process's run 'interrupted', so it shows as resumable.
      const dir = project.dir;
      project.close();
      try {
        this.project = openProject(dir);
      } catch {
        this.project = null;
        this.emit({ type: 'project-closed' });
      }
    }
    const { job, imageIds } = finished;
    const what: ProjectChange[] = ['runs'];
    if (job.kind === 'import') what.push('images');
    if (job.kind === 'pretrain' || job.kind === 'train') what.push('models');
    if (job.kind === 'prelabel') what.push('predictions', 'images');
    this.changed(what, imageIds.length ? imageIds : undefined);
    if (job.kind === 'train' && job.state === 'completed' && job.trainOutcome?.promoted && this.project && (this.options.prelabelAfterPromotion ?? true)) {
      this.runner.start(this.project.dir, { kind: 'prelabel' });
    }
  }

  private progressStats(project: Project): ProgressStats {
    const models = project.listModels({ kind: 'segmentation' }).sort((a, b) => a.createdAt - b.createdAt || a.id - b.id);
    const curve = models.flatMap((m) => {
      const s = modelSummary(m);
      const trainImages = s.trainImages ?? numberOrNull((project.listRuns({ kind: 'train' }).find((r) => r.modelId === m.id)?.config ?? {}).train);
      return s.valDice === null || trainImages === null ? [] : [{ modelId: m.id, createdAt: m.createdAt, trainImages, valDice: s.valDice, promoted: m.promoted }];
    });
    const { total, byKind, estimatedTimeSavedMs } = project.annotationSummary();
    return { curve, annotation: { total, byKind, estimatedTimeSavedMs } };
  }

  private listFolders(dir: string | undefined): FolderListing {
    const resolved = this.existingFolder(dir ?? os.homedir(), 'folder');
    const entries = fs.readdirSync(resolved, { withFileTypes: true });
    const folders = entries
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => ({ name: e.name, path: path.join(resolved, e.name), isProject: fs.existsSync(path.join(resolved, e.name, DATABASE_FILE)) }))
      .sort((a, b) => a.name.localeCompare(b.name));
    const parent = path.dirname(resolved);
    return {
      dir: resolved, parent: parent === resolved ? null : parent, folders,
      imageFiles: entries.filter((e) => e.isFile() && IMAGE_EXTENSIONS.test(e.name)).length,
      isProject: fs.existsSync(path.join(resolved, DATABASE_FILE)),
    };
  }

  private createHandlers(): Handlers {
    return {
      'app:info': () => ({
        version: this.options.version ?? '0.0.0', shell: this.options.shell, platform: process.platform,
        engineBackend: this.runner.backend, project: this.project ? this.summary(this.project) : null,
      }),
      'project:create': ({ dir, name }) => {
        const root = path.resolve(dir);
        return this.adopt(createProject(root, { name: name ?? path.basename(root) }));
      },
      'project:open': ({ dir }) => this.adopt(openProject(this.existingFolder(dir, 'project folder'))),
      'project:close': () => {
        this.project?.close();
        this.project = null;
        this.emit({ type: 'project-closed' });
        return null;
      },
      'project:recent': () => this.recent.list(),
      'project:summary': () => this.summary(this.requireProject()),
      'project:setSettings': (settings) => {
        const project = this.requireProject();
        if (settings.autoRetrainAfterLabels !== undefined) project.setSetting('autoRetrainAfterLabels', settings.autoRetrainAfterLabels);
        if (settings.defaultAuthor !== undefined) project.setSetting('defaultAuthor', settings.defaultAuthor);
        if (settings.classNames !== undefined) {
          this.refuseRemovingUsedClasses(project, settings.classNames.length);
          project.setSetting('classNames', settings.classNames);
        }
        this.changed(['settings']);
        this.maybeRetrain(project);
        return project.getSettings();
      },
      'project:export': async ({ format, what, folder }) => {
        const project = this.requireProject();
        const out = this.insideProject(project, 'exports', folder);
        return exportMasks(project, { out, format, what });
      },
      'fs:listFolders': ({ dir }) => this.listFolders(dir),
      'dialog:chooseFolder': async ({ title }) => {
        if (!this.options.chooseFolder) throw argumentError('there is no native folder dialog in the browser: use fs:listFolders');
        return this.options.chooseFolder(title);
      },
      'images:list': ({ status, split, sort, offset, limit }) => {
        const project = this.requireProject();
        const scores = this.scores(project);
        let images = project.listImages({ status, split });
        if (sort === 'path') images = images.sort((a, b) => a.path.localeCompare(b.path));
        if (sort === 'labelNext') {
          // Unlabeled and proposed images first, most uncertain proposal first, no proposal after; labeled ones last.
          const open = (im: ImageRecord) => im.status === 'unlabeled' || im.status === 'proposed';
          const key = (im: ImageRecord) => scores.get(im.id) ?? null;
          images = images.sort((a, b) => {
            if (open(a) !== open(b)) return open(a) ? -1 : 1;
            const sa = key(a);
            const sb = key(b);
            if ((sa === null) !== (sb === null)) return sa === null ? 1 : -1;
            return (sb ?? 0) - (sa ?? 0) || a.id - b.id;
          });
        }
        return { total: images.length, items: images.slice(offset, offset + limit).map((im) => this.imageSummary(im, scores.get(im.id) ?? null)) };
      },
      'images:get': ({ imageId }) => this.imageDetail(imageId),
      'images:setSplit': ({ imageIds, split }) => {
        const project = this.requireProject();
        for (const imageId of imageIds) this.requireImage(imageId);
        const changed = project.setImageSplit(imageIds, split);
        this.changed(['images'], imageIds);
        return { changed };
      },
      'images:setStatus': async ({ imageId, status }) => {
        const project = this.requireProject();
        if (!project.latestLabel(imageId)) throw argumentError(`image ${imageId} has no label to ${status === 'reviewed' ? 'review' : 'reopen'}`);
        project.setImageStatus(imageId, status);
        if (status === 'reviewed') project.addAnnotationEvent({ imageId, kind: 'review', timeSpentMs: 0 });
        this.changed(['images'], [imageId]);
        return this.imageDetail(imageId);
      },
      'labels:save': ({ projectUuid, imageId, mask, unknown, source, parentVersion, timeSpentMs, pixelsChanged }) =>
        this.saveLabel(this.projectForWrite(projectUuid), { imageId, data: mask.data, width: mask.width, height: mask.height, unknown: unknown ?? null, source, parentVersion, timeSpentMs, pixelsChanged }),
      'labels:patch': (p) => {
        const project = this.projectForWrite(p.projectUuid);
        const image = this.requireImage(p.imageId);
        const base = project.latestLabel(p.imageId);
        if (!base) throw argumentError(`image ${p.imageId} has no label yet: save the whole mask first (labels:save)`);
        if (base.version !== p.baseVersion) throw argumentError(`label version ${p.baseVersion} is not the latest (${base.version}): reload the label`);
        if (p.x + p.width > image.width || p.y + p.height > image.height) throw argumentError(`patch ${p.x},${p.y} ${p.width}x${p.height} lies outside the ${image.width}x${image.height} image`);
        if (p.data.length !== p.width * p.height) throw argumentError('patch data length must be width x height');
        if (p.unknown && p.unknown.length !== p.width * p.height) throw argumentError('patch unknown flags must have one byte per pixel');
        const data = widen(base.mask.data, p.data);
        // unknown given: replaces the flags in the rectangle; null: clears them there; omitted: keeps them.
        let unknown = base.unknown ? base.unknown.slice() : null;
        if (p.unknown !== undefined && (p.unknown || unknown)) unknown ??= new Uint8Array(image.width * image.height);
        for (let row = 0; row < p.height; row++) {
          const at = (p.y + row) * image.width + p.x;
          data.set(p.data.subarray(row * p.width, (row + 1) * p.width), at);
          if (unknown && p.unknown !== undefined) {
            if (p.unknown) unknown.set(p.unknown.subarray(row * p.width, (row + 1) * p.width), at);
            else unknown.fill(0, at, at + p.width);
          }
        }
        return this.saveLabel(project, {
          imageId: p.imageId, data, width: image.width, height: image.height, unknown: unknown && unknown.some((v) => v !== 0) ? unknown : null,
          source: p.source, parentVersion: base.version, timeSpentMs: p.timeSpentMs, pixelsChanged: p.pixelsChanged,
        });
      },
      'labels:history': ({ imageId }) => {
        this.requireImage(imageId);
        return this.requireProject().labelHistory(imageId).map(labelSummary);
      },
      'labels:restore': ({ imageId, version }) => {
        this.requireImage(imageId);
        const restored = this.requireProject().restoreLabelVersion(imageId, version, { author: this.requireProject().getSetting('defaultAuthor') });
        this.changed(['labels', 'images'], [imageId]);
        return labelSummary(restored);
      },
      'proposals:decide': ({ projectUuid, imageId, decision, timeSpentMs }) => {
        const project = this.projectForWrite(projectUuid);
        this.requireImage(imageId);
        const promoted = project.promotedModel();
        const prediction = (promoted && project.getPrediction(imageId, promoted.id)) || project.getPrediction(imageId);
        if (!prediction) throw argumentError(`image ${imageId} has no proposal to ${decision}`);
        if (decision === 'reject') {
          project.addAnnotationEvent({ imageId, kind: 'reject', timeSpentMs });
          this.changed(['images'], [imageId]);
          return null;
        }
        return this.saveLabel(project, {
          imageId, data: prediction.mask.data, width: prediction.width, height: prediction.height, unknown: null,
          source: 'accepted_proposal', timeSpentMs, pixelsChanged: 0,
        });
      },
      'models:list': () => this.requireProject().listModels().sort((a, b) => b.createdAt - a.createdAt || b.id - a.id).map(modelSummary),
      'models:promote': ({ modelId }) => {
        const project = this.requireProject();
        const model = project.getModel(modelId);
        if (!model) throw argumentError(`model ${modelId} is not in this project`);
        if (model.kind !== 'segmentation') throw argumentError(`model ${modelId} is a ${model.kind} checkpoint, not a segmentation model`);
        const promoted = project.promoteModel(modelId, { reason: 'promoted in the app' });
        this.changed(['models']);
        return modelSummary(promoted);
      },
      'models:rollback': () => {
        const rolled = this.requireProject().rollbackModel();
        this.changed(['models']);
        return modelSummary(rolled);
      },
      'jobs:start': (request) => {
        const project = this.requireProject();
        if (request.kind === 'import') request = { ...request, folder: this.existingFolder(request.folder, 'image folder') };
        if (request.kind === 'prelabel' && !project.promotedModel()) throw argumentError('no promoted model yet: train one first');
        if (request.kind === 'prelabel' && request.imageIds) for (const imageId of request.imageIds) this.requireImage(imageId);
        return this.runner.start(project.dir, request);
      },
      'jobs:cancel': ({ jobId }) => {
        const job = this.runner.cancel(jobId);
        if (!job) throw argumentError(`no job ${jobId}`);
        return job;
      },
      'jobs:list': () => this.runner.list(),
      'jobs:resume': ({ runId }) => {
        const project = this.requireProject();
        const run = project.getRun(runId);
        if (!run) throw argumentError(`run ${runId} is not in this project`);
        if (run.status !== 'interrupted' && run.status !== 'cancelled' && run.status !== 'failed') throw argumentError(`run ${runId} is ${run.status}: only interrupted, cancelled or failed runs can be resumed`);
        const c = run.config;
        switch (run.kind) {
          case 'import':
            return this.runner.start(project.dir, { kind: 'import', folder: this.existingFolder(String(c.folder), 'image folder'), split: (c.split as 'unassigned') ?? 'unassigned' }, runId);
          case 'pretrain':
            // The run's recorded settings (budget, steps, rate) are read back by the job.
            return this.runner.start(project.dir, { kind: 'pretrain', tasks: String(c.tasks).split('+') as ['inpainting'], resume: true }, runId);
          case 'train': {
            return this.runner.start(project.dir, {
              // The run's recorded steps, rate and use of unlabeled images are read back by the job.
              kind: 'train', when: 'now', warmStart: true, semiSupervised: false, target: formatTarget(recordedTarget(c.target)),
            }, runId);
          }
          case 'prelabel':
            if (c.folder) throw argumentError(`run ${runId} prelabeled a folder: resume it with maskloop prelabel on the command line`);
            return this.runner.start(project.dir, { kind: 'prelabel', ...(Array.isArray(c.imageIds) ? { imageIds: c.imageIds as number[] } : {}) }, runId);
          default:
            throw argumentError(`${run.kind} runs are not resumed from the app`);
        }
      },
      'runs:list': ({ kind, limit }) => this.requireProject().listRuns({ kind, limit }).map(runSummary),
      'stats:progress': () => this.progressStats(this.requireProject()),
    };
  }

  // Binary resources (GET /api/images/:id/...), shared by the HTTP server and Electron's app:// protocol.

  async imagePixels(imageId: number, region?: { x: number; y: number; width: number; height: number }): Promise<BinaryBody> {
    return this.pixels.pixels(this.requireImage(imageId), region);
  }

  async imageThumbnail(imageId: number, size = DEFAULT_THUMBNAIL): Promise<BinaryBody> {
    if (!Number.isInteger(size) || size < 16 || size > MAX_THUMBNAIL) throw argumentError(`thumbnail size must be 16..${MAX_THUMBNAIL}`);
    return this.pixels.thumbnail(this.requireProject(), this.requireImage(imageId), size);
  }

  imageLabel(imageId: number, version?: number): BinaryBody | null {
    const project = this.requireProject();
    this.requireImage(imageId);
    const label = version ? project.getLabelVersion(imageId, version) : project.latestLabel(imageId);
    if (!label) return null;
    return maskBody(label.mask, { 'x-maskloop-label-version': String(label.version) }, label.unknown);
  }

  private prediction(imageId: number, modelId?: number) {
    const project = this.requireProject();
    this.requireImage(imageId);
    if (modelId) return project.getPrediction(imageId, modelId);
    const promoted = project.promotedModel();
    return (promoted && project.getPrediction(imageId, promoted.id)) || project.getPrediction(imageId);
  }

  imageProposal(imageId: number, modelId?: number): BinaryBody | null {
    const p = this.prediction(imageId, modelId);
    if (!p) return null;
    return maskBody(p.mask, { 'x-maskloop-model-id': String(p.modelId), 'x-maskloop-uncertainty-score': p.uncertaintyScore === null ? '' : String(p.uncertaintyScore) });
  }

  imageUncertainty(imageId: number, modelId?: number): BinaryBody | null {
    const p = this.prediction(imageId, modelId);
    if (!p?.uncertainty) return null;
    return floatBody(p.uncertainty.width, p.uncertainty.height, p.uncertainty.data, { 'x-maskloop-model-id': String(p.modelId) });
  }
}

export { AppError };
