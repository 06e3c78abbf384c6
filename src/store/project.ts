import { randomUUID } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { connect, Ctx, now, type Db } from './db';
import { StoreError } from './errors';
import * as events from './events';
import * as images from './images';
import * as labels from './labels';
import { migrate, schemaVersion } from './migrate';
import * as models from './models';
import * as predictions from './predictions';
import * as runs from './runs';
import * as settings from './settings';
import type { SettingKey, Settings } from './settings';
import type {
  AddImageResult,
  AnnotationEventRecord,
  AnnotationSummary,
  FinishRun,
  ImageCounts,
  ImageFilter,
  ImageRecord,
  ImageSplit,
  ImageStatus,
  JsonObject,
  LabelNextEntry,
  LabelNextOptions,
  LabelVersion,
  LabelPatch,
  LabelVersionInfo,
  ModelRecord,
  NewAnnotationEvent,
  NewImage,
  NewLabelVersion,
  NewModel,
  NewPrediction,
  NewRun,
  Prediction,
  PredictionInfo,
  ProjectInfo,
  RunFilter,
  RunRecord,
  VerifyOptions,
  VerifyReport,
} from './types';
import { parseArgument } from './validate';

export const DATABASE_FILE = 'project.sqlite';
/** What the cache holds; all of it can be rebuilt from the images and the database except checkpoints. */
export const CACHE_SUBDIRS = ['thumbnails', 'tiles', 'checkpoints'] as const;

export interface OpenOptions {
  /** Create the project when the folder has none (named after the folder unless `name` is given). */
  create?: boolean;
  name?: string;
  /** How long a write waits for another process's write to finish; default BUSY_TIMEOUT_MS. */
  busyTimeoutMs?: number;
}

const timeoutSchema = z.number().int().nonnegative().max(600_000).optional();

function ensureCache(dir: string): void {
  for (const sub of CACHE_SUBDIRS) mkdirSync(path.join(dir, models.CACHE_DIR, sub), { recursive: true });
}

function readInfo(ctx: Ctx): ProjectInfo {
  const row = ctx.stmt('SELECT uuid, name, created_at FROM project WHERE id = 1').get() as
    | { uuid: string; name: string; created_at: number }
    | undefined;
  if (!row) throw new StoreError('data', `${path.join(ctx.dir, DATABASE_FILE)} has no project record; it was not created by maskloop`);
  return { uuid: row.uuid, name: row.name, createdAt: row.created_at };
}

/**
 * An open project: one folder with project.sqlite and cache/. Every method is synchronous except
 * those that read image files. Several processes may open the same project; writes are short
 * IMMEDIATE transactions that queue on the busy timeout.
 */
export class Project {
  readonly dir: string;
  readonly databaseFile: string;
  readonly cacheDir: string;
  readonly info: ProjectInfo;
  /** Runs found 'running' at open whose process had died, now marked 'interrupted'. */
  readonly interruptedRuns: readonly RunRecord[];
  private readonly ctx: Ctx;
  private closed = false;

  /** Use openProject / createProject. */
  constructor(ctx: Ctx, interruptedRuns: readonly RunRecord[]) {
    this.ctx = ctx;
    this.dir = ctx.dir;
    this.databaseFile = path.join(ctx.dir, DATABASE_FILE);
    this.cacheDir = path.join(ctx.dir, models.CACHE_DIR);
    this.info = readInfo(ctx);
    this.interruptedRuns = interruptedRuns;
  }

  private get c(): Ctx {
    if (this.closed) throw new StoreError('argument', `project ${this.dir} is closed`);
    return this.ctx;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  get schemaVersion(): number {
    return schemaVersion(this.c.db);
  }

  /** The better-sqlite3 connection, for tests and diagnostics; writes should go through the methods. */
  get database(): Db {
    return this.c.db;
  }

  /** A path inside the cache folder, e.g. cachePath('checkpoints', 'model-3.ckpt'). */
  cachePath(...parts: string[]): string {
    return path.join(this.cacheDir, ...parts);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.ctx.db.pragma('optimize');
    } catch {
      // Only a hint for the query planner; a busy database must not stop closing.
    }
    this.ctx.db.close();
  }

  integrityCheck(): string[] {
    return (this.c.db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check);
  }

  // Images
  addImage(input: NewImage): Promise<AddImageResult> { return images.addImage(this.c, input); }
  getImage(imageId: number): ImageRecord | null { return images.getImage(this.c, imageId); }
  findImageByPath(file: string): ImageRecord | null { return images.findImageByPath(this.c, file); }
  findImagesByHash(contentHash: string): ImageRecord[] { return images.findImagesByHash(this.c, contentHash); }
  listImages(filter?: ImageFilter): ImageRecord[] { return images.listImages(this.c, filter); }
  countImages(): ImageCounts { return images.countImages(this.c); }
  largestImagePixels(): number { return images.largestImagePixels(this.c); }
  setImageSplit(imageIds: number | readonly number[], split: ImageSplit): number { return images.setImageSplit(this.c, imageIds, split); }
  setImageStatus(imageId: number, status: ImageStatus): ImageRecord { return images.setImageStatus(this.c, imageId, status); }
  relocateImage(imageId: number, newPath: string): Promise<ImageRecord> { return images.relocateImage(this.c, imageId, newPath); }
  verifyImages(options?: VerifyOptions): Promise<VerifyReport> { return images.verifyImages(this.c, options); }

  // Labels
  addLabelVersion(input: NewLabelVersion): LabelVersionInfo { return labels.addLabelVersion(this.c, input); }
  patchLabelVersion(patch: LabelPatch): LabelVersionInfo { return labels.patchLabelVersion(this.c, patch); }
  latestLabel(imageId: number): LabelVersion | null { return labels.latestLabel(this.c, imageId); }
  latestLabelInfo(imageId: number): LabelVersionInfo | null { return labels.latestLabelInfo(this.c, imageId); }
  getLabelVersion(imageId: number, version: number): LabelVersion | null { return labels.getLabelVersion(this.c, imageId, version); }
  labelHistory(imageId: number): LabelVersionInfo[] { return labels.labelHistory(this.c, imageId); }
  restoreLabelVersion(imageId: number, version: number, options?: { author?: string }): LabelVersionInfo {
    return labels.restoreLabelVersion(this.c, imageId, version, options);
  }
  countLabeledImagesSince(sinceMs: number): number { return labels.countLabeledImagesSince(this.c, sinceMs); }
  labeledImages(filter?: { split?: ImageSplit | readonly ImageSplit[]; limit?: number }): { image: ImageRecord; version: number; firstLabeledAt: number }[] {
    return labels.labeledImages(this.c, filter);
  }

  // Predictions
  addPrediction(input: NewPrediction): PredictionInfo { return predictions.addPrediction(this.c, input); }
  getPrediction(imageId: number, modelId?: number): Prediction | null { return predictions.getPrediction(this.c, imageId, modelId); }
  listPredictions(imageId: number): PredictionInfo[] { return predictions.listPredictions(this.c, imageId); }
  latestUncertaintyScores(): Map<number, number | null> { return predictions.latestUncertaintyScores(this.c); }
  labelNext(options?: LabelNextOptions): LabelNextEntry[] { return predictions.labelNext(this.c, options); }

  // Models
  addModel(input: NewModel): ModelRecord { return models.addModel(this.c, input); }
  getModel(modelId: number): ModelRecord | null { return models.getModel(this.c, modelId); }
  listModels(filter?: { kind?: string }): ModelRecord[] { return models.listModels(this.c, filter); }
  promotedModel(): ModelRecord | null { return models.promotedModel(this.c); }
  setModelMetrics(modelId: number, metrics: JsonObject): ModelRecord { return models.setModelMetrics(this.c, modelId, metrics); }
  promoteModel(modelId: number, options?: { reason?: string }): ModelRecord { return models.promoteModel(this.c, modelId, options); }
  rollbackModel(): ModelRecord { return models.rollbackModel(this.c); }
  rollbackTarget(): number | null { return models.rollbackTarget(this.c); }

  // Runs
  startRun(input: NewRun): RunRecord { return runs.startRun(this.c, input); }
  getRun(runId: number): RunRecord | null { return runs.getRun(this.c, runId); }
  listRuns(filter?: RunFilter): RunRecord[] { return runs.listRuns(this.c, filter); }
  updateRunProgress(runId: number, progress: { step: number; total?: number | null }): RunRecord {
    return runs.updateRunProgress(this.c, runId, progress);
  }
  appendRunLog(runId: number, text: string): void { runs.appendRunLog(this.c, runId, text); }
  runLog(runId: number): string { return runs.runLog(this.c, runId); }
  finishRun(runId: number, result: FinishRun): RunRecord { return runs.finishRun(this.c, runId, result); }

  // Annotation events
  addAnnotationEvent(input: NewAnnotationEvent): AnnotationEventRecord { return events.addAnnotationEvent(this.c, input); }
  annotationEvents(imageId: number): AnnotationEventRecord[] { return events.annotationEvents(this.c, imageId); }
  annotationSummary(options?: { sinceMs?: number }): AnnotationSummary { return events.annotationSummary(this.c, options); }

  // Settings
  getSetting<K extends SettingKey>(key: K): Settings[K] { return settings.getSetting(this.c, key); }
  setSetting<K extends SettingKey>(key: K, value: Settings[K]): void { settings.setSetting(this.c, key, value); }
  getSettings(): Settings { return settings.getSettings(this.c); }
}

function openExisting(dir: string, busyTimeoutMs?: number): Project {
  const file = path.join(dir, DATABASE_FILE);
  const db = connect(file, { mustExist: true, busyTimeoutMs });
  try {
    // Version 0 with tables in it is some other program's database: adding ours would mix them.
    if (schemaVersion(db) === 0 && (db.prepare('SELECT count(*) AS n FROM sqlite_schema').get() as { n: number }).n > 0) {
      throw new StoreError('data', `${file} is a SQLite database but not a maskloop project; it was left as it is`);
    }
    migrate(db);
    const ctx = new Ctx(db, dir);
    ensureCache(dir);
    return new Project(ctx, runs.markInterruptedRuns(ctx));
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Creates a project in `dir` (made if needed). A folder that already holds a project is refused.
 * The database is built under a temporary name and linked into place only when complete, so a
 * crash mid-creation never leaves a project.sqlite without its project record, and of two
 * processes creating the same project at once exactly one succeeds.
 */
export function createProject(dir: string, options: { name: string; busyTimeoutMs?: number }): Project {
  const name = parseArgument(z.string().trim().min(1), options?.name, 'createProject name');
  const busyTimeoutMs = parseArgument(timeoutSchema, options.busyTimeoutMs, 'createProject busyTimeoutMs');
  const root = path.resolve(dir);
  const file = path.join(root, DATABASE_FILE);
  const exists = () => new StoreError('argument', `${root} already holds a maskloop project (${DATABASE_FILE})`);
  if (existsSync(file)) throw exists();
  if (existsSync(root) && !statSync(root).isDirectory()) throw new StoreError('argument', `${root} is not a folder`);
  mkdirSync(root, { recursive: true });
  const temporary = path.join(root, `${DATABASE_FILE}.creating-${process.pid}-${randomUUID().slice(0, 8)}`);
  try {
    const db = connect(temporary, { mustExist: false });
    try {
      migrate(db);
      db.transaction(() => {
        db.prepare('INSERT INTO project (id, uuid, name, created_at) VALUES (1, ?, ?, ?)').run(randomUUID(), name, now());
      }).immediate();
    } finally {
      // Closing the last connection checkpoints the WAL into the file and removes it.
      db.close();
    }
    try {
      linkSync(temporary, file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw exists();
      // Some file systems (FAT, exFAT, some network shares) have no hard links: rename instead,
      // which is atomic too but would replace a project created in the instant since the check.
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') {
        throw new StoreError('db', `creating ${file}: ${(error as Error).message}`, { cause: error });
      }
      if (existsSync(file)) throw exists();
      renameSync(temporary, file);
    }
  } finally {
    for (const suffix of ['', '-wal', '-shm']) rmSync(temporary + suffix, { force: true });
  }
  ensureCache(root);
  return openExisting(root, busyTimeoutMs);
}

/**
 * Opens the project in `dir`: applies pending migrations (refusing a database newer than this
 * code), and marks runs whose process died as interrupted.
 */
export function openProject(dir: string, options: OpenOptions = {}): Project {
  const root = path.resolve(dir);
  const busyTimeoutMs = parseArgument(timeoutSchema, options.busyTimeoutMs, 'openProject busyTimeoutMs');
  if (!existsSync(path.join(root, DATABASE_FILE))) {
    if (options.create) return createProject(root, { name: options.name ?? path.basename(root), busyTimeoutMs });
    throw new StoreError('argument', `${root} is not a maskloop project: it has no ${DATABASE_FILE}`);
  }
  return openExisting(root, busyTimeoutMs);
}
