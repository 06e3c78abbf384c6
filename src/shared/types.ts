/**
 * What the app's API returns: plain JSON-able records (typed arrays only where pixels travel).
 * These mirror the store's records but are defined here because the renderer may import only
 * src/shared, which stays free of Node (the store's types live next to better-sqlite3).
 */
export const IMAGE_SPLITS = ['train', 'val', 'test', 'unassigned'] as const;
export type ImageSplit = (typeof IMAGE_SPLITS)[number];

/** unlabeled: nothing yet; proposed: a model's mask exists; labeled: a person saved a label; reviewed: a second look confirmed it. */
export const IMAGE_STATUSES = ['unlabeled', 'proposed', 'labeled', 'reviewed'] as const;
export type ImageStatus = (typeof IMAGE_STATUSES)[number];

export const LABEL_SOURCES = ['manual', 'accepted_proposal', 'edited_proposal', 'imported'] as const;
export type LabelSource = (typeof LABEL_SOURCES)[number];

export const JOB_KINDS = ['import', 'pretrain', 'train', 'prelabel'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/**
 * annotate: drawn from scratch; correct: a proposal edited; accept: a proposal taken as is;
 * reject: a proposal turned down; review: a label checked; skip: an image passed over.
 */
export const ANNOTATION_EVENT_KINDS = ['annotate', 'correct', 'accept', 'reject', 'review', 'skip'] as const;
export type AnnotationEventKind = (typeof ANNOTATION_EVENT_KINDS)[number];

export const PRETEXT_TASKS = ['inpainting', 'masked', 'restoration', 'denoising', 'rotation', 'jigsaw', 'contrastive', 'cross-channel'] as const;
export type PretextTaskName = (typeof PRETEXT_TASKS)[number];
/**
 * What a pretraining trains when the user does not choose: Models Genesis-style restoration, the
 * task measured best at the budgets (docs/RESULTS.md: on ISBI after twenty minutes +0.027 Dice over
 * scratch at one label against +0.010 for 8 px inpainting, which its holes' neighbours can fill).
 */
export const DEFAULT_PRETEXT_TASKS: readonly PretextTaskName[] = ['restoration'];

export type RunStatus = 'running' | 'completed' | 'failed' | 'cancelled' | 'interrupted';
export type LabelDtype = 'uint8' | 'uint16' | 'int32';
export type PixelDtype = 'uint8' | 'uint16' | 'float32';

export interface ProjectSettings {
  /** Start a fine-tune automatically after this many new label versions; 0: only on demand. */
  autoRetrainAfterLabels: number;
  /** Recorded as the author of labels saved from the app. */
  defaultAuthor: string;
  /** Names of the label classes 1..n (0 is background), as the class picker shows them. */
  classNames: string[];
}

/** Classes a project can name: the digit keys 1-9 pick them in the annotator. */
export const MAX_CLASSES = 9;

/** Classes a semantic training target can have (imported labels may carry more than the app names): 255 marks unknown pixels. */
export const MAX_TARGET_CLASSES = 254;

export interface ImageCounts {
  total: number;
  byStatus: Record<ImageStatus, number>;
  bySplit: Record<ImageSplit, number>;
}

/** The retrain policy's state: how many images were labeled (or relabeled) since the last completed training. */
export interface RetrainStatus {
  newLabels: number;
  /** autoRetrainAfterLabels; 0 means on demand only. */
  needed: number;
  /** True when the policy would start a training now. */
  due: boolean;
  lastTrainedAt: number | null;
}

export interface ProjectSummary {
  dir: string;
  name: string;
  uuid: string;
  createdAt: number;
  counts: ImageCounts;
  promotedModel: ModelSummary | null;
  /** The model 'Roll back' would promote again; null when there is none to go back to. */
  rollbackTo: number | null;
  settings: ProjectSettings;
  retrain: RetrainStatus;
  /** Runs whose process died mid-way (app killed, machine rebooted): each can be resumed with jobs:resume. */
  resumableRuns: RunSummary[];
}

export interface RecentProject {
  dir: string;
  name: string;
  openedAt: number;
  /** false when the folder or its project.sqlite has gone since. */
  exists: boolean;
}

export interface ImageSummary {
  id: number;
  /** As stored: relative to the project folder where possible. */
  path: string;
  width: number;
  height: number;
  channels: number;
  bitDepth: number;
  pages: number;
  format: string;
  split: ImageSplit;
  status: ImageStatus;
  /** The latest prediction's uncertainty (0 certain .. 1 unsure); null without a prediction. */
  uncertaintyScore: number | null;
  addedAt: number;
}

export interface ImageListing {
  /** Images matching the filter, before offset/limit. */
  total: number;
  items: ImageSummary[];
}

/**
 * Display facts about one channel: the full data range, the automatic contrast window (1st and
 * 99.8th percentile, what the engine normalises to) and a 256-bin histogram between min and max.
 */
export interface ChannelContrast {
  min: number;
  max: number;
  low: number;
  high: number;
  histogram: number[];
}

export interface LabelVersionSummary {
  version: number;
  parentVersion: number | null;
  /** Set when this version was made by restoring an older one. */
  restoredFrom: number | null;
  source: LabelSource;
  author: string;
  createdAt: number;
  dtype: LabelDtype;
  width: number;
  height: number;
  hasUnknown: boolean;
}

export interface ProposalSummary {
  modelId: number;
  createdAt: number;
  uncertaintyScore: number | null;
  dtype: LabelDtype;
  /** Made by the model promoted now (else by an older one: a fresh proposal can be requested with a prelabel job). */
  fromPromotedModel: boolean;
}

export interface ImageDetail extends ImageSummary {
  /** Sample type of GET /api/images/:id/pixels. */
  dtype: PixelDtype;
  contrast: ChannelContrast[];
  label: LabelVersionSummary | null;
  proposal: ProposalSummary | null;
}

export interface CandidateScore {
  /** 'scratch' or the pretext task(s) the encoder started from; '+semi' when also trained on unlabeled images (consistency). */
  name: string;
  dice: number;
  /** Instance targets: val F1 at IoU 0.5, which chose among the candidates (Dice held within 0.01 of scratch). */
  f1?: number;
  /** A candidate that lost the first model's race: the step it stopped at, where `dice` was measured (no F1). */
  stoppedAt?: number;
}

export interface ModelSummary {
  id: number;
  kind: 'segmentation' | 'pretext' | string;
  parentId: number | null;
  pretextInit: string | null;
  createdAt: number;
  promoted: boolean;
  /** Val Dice when it was trained; null for pretext checkpoints. */
  valDice: number | null;
  /** The promoted model's val Dice on the same val images, measured when this one was trained; null: there was none. */
  incumbentDice: number | null;
  /** Instance targets: val F1 at IoU 0.5 of this model and of the promoted one it had to beat (promotion compares F1). */
  valF1: number | null;
  incumbentF1: number | null;
  incumbentId: number | null;
  trainImages: number | null;
  valImages: number | null;
  candidates: CandidateScore[];
  /** Fine-tuned with consistency training on the project's unlabeled images as well as on its labels. */
  semiSupervised: boolean;
  /** The promotion rule's one line ('promoted: …', 'kept model #n: …'), or null for models trained before the app recorded it. */
  decision: string | null;
}

export interface RunSummary {
  id: number;
  kind: JobKind | 'eval';
  status: RunStatus;
  step: number;
  total: number | null;
  message: string | null;
  modelId: number | null;
  startedAt: number;
  updatedAt: number;
  finishedAt: number | null;
  config: Record<string, unknown>;
}

export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

export interface JobProgress {
  /** e.g. 'import', 'pretrain:inpainting', 'finetune:scratch', 'evaluate', 'prelabel'. */
  phase: string;
  step: number;
  /** null while unknown (import counts files as it finds them). */
  total: number | null;
  loss: number | null;
  smoothedLoss: number | null;
  /** Images (or crops) per second. */
  rate: number;
  etaSeconds: number | null;
  elapsedSeconds: number;
}

/** What a finished train job decided. */
export interface TrainOutcome {
  modelId: number;
  init: string;
  valDice: number;
  incumbentId: number | null;
  incumbentDice: number | null;
  /** Instance targets: val F1 at IoU 0.5 (promotion compares it); null otherwise. */
  valF1: number | null;
  incumbentF1: number | null;
  promoted: boolean;
  /** One line: why the model was promoted or the current one kept (the promotion rule's reason). */
  decision: string;
  candidates: CandidateScore[];
}

export interface JobInfo {
  /** The app's sequence number for this job (not the store's run id). */
  jobId: number;
  /** The store's run record, once the job process has created it. */
  runId: number | null;
  kind: JobKind;
  state: JobState;
  request: Record<string, unknown>;
  progress: JobProgress | null;
  /** Compute backend of the job process ('native — AVX2/FMA addon, 2 threads', 'wasm', …); null before it started. */
  backend: string | null;
  /** Closing summary or error message. */
  message: string | null;
  /** Kind of error when state is 'failed'. */
  errorKind: string | null;
  /** Set for a completed train job. */
  trainOutcome: TrainOutcome | null;
  /** Set for a job that resumes an interrupted or cancelled run. */
  resumesRunId: number | null;
  startedAt: number;
  finishedAt: number | null;
}

export interface LearningCurvePoint {
  modelId: number;
  createdAt: number;
  /** Labeled images the model was trained on (train + unassigned splits). */
  trainImages: number;
  valDice: number;
  promoted: boolean;
}

export interface EventTotals {
  /** Events: an image drawn in 40 strokes is 40 'annotate' events. */
  count: number;
  /** Distinct images the events were about. */
  images: number;
  timeMs: number;
  pixelsChanged: number;
}

export interface ProgressStats {
  curve: LearningCurvePoint[];
  annotation: {
    total: EventTotals;
    byKind: Record<AnnotationEventKind, EventTotals>;
    /** Mean from-scratch time x (accepted + corrected images) minus the time those took; null until both kinds exist. */
    estimatedTimeSavedMs: number | null;
  };
}

export interface FolderListing {
  dir: string;
  parent: string | null;
  folders: { name: string; path: string; isProject: boolean }[];
  /** Image files (by extension) directly in this folder. */
  imageFiles: number;
  isProject: boolean;
}

export interface ExportResult {
  out: string;
  images: number;
  format: string;
}

export interface AppInfo {
  version: string;
  shell: 'electron' | 'browser';
  platform: string;
  /** The job process's compute backend, once it started; null before. */
  engineBackend: string | null;
  project: ProjectSummary | null;
}

/** Everything the main side pushes to the renderer (SSE in the browser, 'maskloop:event' IPC in Electron). */
export type AppEvent =
  | { type: 'job'; job: JobInfo }
  | { type: 'job-log'; jobId: number; level: 'info' | 'warning'; text: string; path?: string }
  | { type: 'project-changed'; what: ProjectChange[]; imageIds?: number[] }
  | { type: 'project-closed' };

export type ProjectChange = 'images' | 'labels' | 'predictions' | 'models' | 'runs' | 'settings';
