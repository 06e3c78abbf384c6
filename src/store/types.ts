import type { LabelArray, LabelDtype, LabelMask } from './codec';

// Splits, statuses and label sources are part of the app's contract too; they are defined once there.
import type { AnnotationEventKind, ImageSplit, ImageStatus, LabelSource, LabelVersionSummary } from '../shared/types';
export { ANNOTATION_EVENT_KINDS, IMAGE_SPLITS, IMAGE_STATUSES, LABEL_SOURCES, type AnnotationEventKind, type ImageSplit, type ImageStatus, type LabelSource } from '../shared/types';

export const RUN_KINDS = ['import', 'pretrain', 'train', 'prelabel', 'eval'] as const;
export type RunKind = (typeof RUN_KINDS)[number];

export const RUN_STATUSES = ['running', 'completed', 'failed', 'cancelled', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];


export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface ProjectInfo {
  /** Random id fixed at creation: lets shard results be matched to the project they came from. */
  uuid: string;
  name: string;
  createdAt: number;
}

/** sha256 of the file bytes, size, and modification time (ms) used to skip rehashing. */
export interface FileFingerprint {
  contentHash: string;
  byteSize: number;
  mtimeMs: number;
}

export interface ImageRecord extends FileFingerprint {
  id: number;
  /** As stored: relative to the project folder ('/'-separated) where possible, else absolute. */
  path: string;
  absolutePath: string;
  width: number;
  height: number;
  channels: number;
  bitDepth: number;
  pages: number;
  format: string;
  split: ImageSplit;
  status: ImageStatus;
  /** Milliseconds since the epoch, as every *At field. */
  addedAt: number;
}

export interface NewImage {
  /** Absolute, or relative to the project folder. */
  path: string;
  width: number;
  height: number;
  channels: number;
  bitDepth: number;
  pages?: number;
  format: string;
  split?: ImageSplit;
  /** Skip hashing when the caller has just hashed the file itself; it must be the file's own. */
  fingerprint?: FileFingerprint;
}

export interface AddImageResult {
  image: ImageRecord;
  /** false when the same file (path and content) was already in the project: adding is idempotent. */
  added: boolean;
}

export interface ImageFilter {
  status?: ImageStatus | readonly ImageStatus[];
  split?: ImageSplit | readonly ImageSplit[];
  limit?: number;
  offset?: number;
}

export interface ImageCounts {
  total: number;
  byStatus: Record<ImageStatus, number>;
  bySplit: Record<ImageSplit, number>;
}

export interface VerifyOptions {
  /** Folder searched (recursively) for files with the content of missing images. */
  searchDir?: string;
  /** Hash every file, not only those whose size or modification time changed. */
  rehash?: boolean;
}

export interface VerifyReport {
  checked: number;
  ok: number;
  missing: ImageRecord[];
  changed: { image: ImageRecord; contentHash: string; byteSize: number }[];
  moved: { image: ImageRecord; newPath: string }[];
  duplicates: { contentHash: string; images: ImageRecord[] }[];
}

/** A label version as the app's contract describes it (LabelVersionSummary), with its store ids. */
export interface LabelVersionInfo extends LabelVersionSummary {
  id: number;
  imageId: number;
}

export interface LabelVersion extends LabelVersionInfo {
  mask: LabelMask;
  /** Nonzero where the annotator left the pixel unlabeled (sparse labels); null: every pixel labeled. */
  unknown: Uint8Array | null;
}

export interface NewAnnotationEvent {
  imageId: number;
  labelVersion?: number | null;
  kind: AnnotationEventKind;
  timeSpentMs: number;
  pixelsChanged?: number;
}

export interface NewLabelVersion {
  imageId: number;
  mask: LabelMask;
  unknown?: Uint8Array | null;
  source: LabelSource;
  author?: string;
  /** The version this edit started from; default: the latest; null: drawn without one. */
  parentVersion?: number | null;
  /** Status the image takes; default 'labeled' (an edit after review needs a new review). */
  status?: 'labeled' | 'reviewed';
  /** Recorded in the same transaction, pointing at the new version. */
  event?: Omit<NewAnnotationEvent, 'imageId' | 'labelVersion'>;
}

/**
 * A stroke's rectangle, merged into the image's latest label to make the next version. Ids the
 * stored dtype cannot hold widen the whole label (uint8 to uint16 to int32).
 */
export interface LabelPatch {
  imageId: number;
  /** The version the stroke was drawn on: it must still be the latest. */
  baseVersion: number;
  x: number;
  y: number;
  width: number;
  height: number;
  /** The rectangle's label ids, row-major. */
  data: LabelArray;
  /** Unknown flags for the rectangle; null clears them there; omitted keeps them. */
  unknown?: Uint8Array | null;
  source: LabelSource;
  author?: string;
  event?: Omit<NewAnnotationEvent, 'imageId' | 'labelVersion'>;
}

export interface UncertaintyMap {
  width: number;
  height: number;
  data: Float32Array;
}

export interface PredictionInfo {
  id: number;
  imageId: number;
  modelId: number;
  dtype: LabelDtype;
  width: number;
  height: number;
  uncertaintyScore: number | null;
  hasUncertainty: boolean;
  createdAt: number;
}

export interface Prediction extends PredictionInfo {
  mask: LabelMask;
  uncertainty: UncertaintyMap | null;
}

export interface NewPrediction {
  imageId: number;
  modelId: number;
  mask: LabelMask;
  uncertainty?: UncertaintyMap | null;
  uncertaintyScore?: number | null;
}

export interface LabelNextOptions {
  limit?: number;
  /** Rank by this model's predictions; default: each image's latest prediction. */
  modelId?: number;
  split?: ImageSplit | readonly ImageSplit[];
}

export interface LabelNextEntry {
  image: ImageRecord;
  /** null: no prediction yet (such images come last). */
  uncertaintyScore: number | null;
  modelId: number | null;
}

export interface ModelRecord {
  id: number;
  kind: string;
  /** Relative to the project's cache folder. */
  checkpointPath: string;
  absoluteCheckpointPath: string;
  parentId: number | null;
  /** Pretext task(s) the encoder was initialised from; null: from scratch. */
  pretextInit: string | null;
  config: JsonObject;
  valMetrics: JsonObject | null;
  promoted: boolean;
  createdAt: number;
}

export interface NewModel {
  kind: string;
  /** Relative to the cache folder, or an absolute path inside it; the file must exist. */
  checkpointPath: string;
  parentId?: number | null;
  pretextInit?: string | null;
  config: JsonObject;
  valMetrics?: JsonObject | null;
}

export interface RunRecord {
  id: number;
  kind: RunKind;
  config: JsonObject;
  status: RunStatus;
  step: number;
  total: number | null;
  /** Why it failed, was cancelled or interrupted; or a closing summary. */
  message: string | null;
  modelId: number | null;
  pid: number | null;
  host: string | null;
  startedAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

export interface NewRun {
  kind: RunKind;
  config: JsonObject;
  total?: number | null;
  /** Process doing the work; default this one. */
  pid?: number;
}

export interface FinishRun {
  status: 'completed' | 'failed' | 'cancelled';
  message?: string | null;
  modelId?: number | null;
}

export interface RunFilter {
  kind?: RunKind;
  status?: RunStatus;
  limit?: number;
}

export interface AnnotationEventRecord {
  id: number;
  imageId: number;
  labelVersion: number | null;
  kind: AnnotationEventKind;
  timeSpentMs: number;
  pixelsChanged: number;
  createdAt: number;
}

export interface EventTotals {
  /** Events: an image drawn in 40 strokes is 40 'annotate' events. */
  count: number;
  /** Distinct images the events were about. */
  images: number;
  timeMs: number;
  pixelsChanged: number;
}

export interface AnnotationSummary {
  total: EventTotals;
  byKind: Record<AnnotationEventKind, EventTotals>;
  /**
   * (mean time of an 'annotate' event) x (number of 'correct' + 'accept' events) minus the time
   * those took; null until there is at least one of each to compare.
   */
  estimatedTimeSavedMs: number | null;
}
