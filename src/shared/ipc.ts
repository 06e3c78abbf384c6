/**
 * The one typed IPC contract (DESIGN.md convention 2): channel names, zod request schemas and
 * response types. Electron's main registers a handler per channel from CHANNELS, the preload
 * builds `window.api` from it, the browser fallback server serves the same channels over HTTP
 * and validates with the same schemas; the renderer sees only the types. Requests are strict
 * objects: an unknown key is an argument error, not silently ignored.
 */
import { z } from 'zod';
import type { Result } from './result';
import { MAX_BUDGET_SECONDS } from './training';
import { parseTarget } from './target';
import {
  IMAGE_SPLITS,
  MAX_CLASSES,
  DEFAULT_PRETEXT_TASKS,
  PRETEXT_TASKS,
  type AppEvent,
  type AppInfo,
  type ExportResult,
  type FolderListing,
  type ImageDetail,
  type ImageListing,
  type JobInfo,
  type LabelVersionSummary,
  type ModelSummary,
  type ProgressStats,
  type ProjectSettings,
  type ProjectSummary,
  type RecentProject,
  type RunSummary,
} from './types';

const id = z.number().int().positive();
const count = z.number().int().nonnegative();
const budgetSeconds = z.number().positive().max(MAX_BUDGET_SECONDS);
const projectUuid = z.string().uuid();

/** Absolute on POSIX ('/…') or Windows ('C:\…', '\\server\…'); no NUL bytes. The main side resolves and checks it again. */
export const absolutePath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes('\0'), 'path contains a NUL byte')
  .refine((p) => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\'), 'path must be absolute');

/** One folder name (no separators, not '.' or '..'): where an export goes inside <project>/exports/. */
export const folderName = z
  .string()
  .min(1)
  .max(120)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._ -]*$/, 'a folder name of letters, digits, spaces, . _ - (no path separators)');

const split = z.enum(IMAGE_SPLITS);
// z.custom rather than z.instanceof: the latter narrows to Uint8Array<ArrayBuffer>, refusing at
// compile time arrays that are views of any ArrayBufferLike (as masks decoded from fetch bodies are).
const uint8Array = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected a Uint8Array');
const labelArray = z.union([
  uint8Array,
  z.custom<Uint16Array>((v) => v instanceof Uint16Array, 'expected a Uint16Array'),
  z.custom<Int32Array>((v) => v instanceof Int32Array, 'expected an Int32Array'),
]);
const maxSide = 1 << 16;
const side = z.number().int().positive().max(maxSide);

/** A label mask: class or object id per pixel, row-major; its length must be width x height. */
export const labelMaskSchema = z
  .strictObject({ width: side, height: side, data: labelArray })
  .refine((m) => m.data.length === m.width * m.height, 'mask data length must be width x height');

/** Sources a person's save can have (imports come from the CLI or an import job). */
/**
 * What a saved mask is. 'accepted_proposal' is not among them: only proposals:decide makes one,
 * from the stored proposal, so no client (and no undo) can call its own mask the model's.
 */
const saveSource = z.enum(['manual', 'edited_proposal']);

/** A segmentation target in its text form (parseTarget): 'semantic', 'semantic:K' or 'instance'. */
export const segmentationTarget = z.string().superRefine((text, ctx) => {
  try {
    parseTarget(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

/** What jobs:start accepts; each kind is one of the engine workflows the CLI runs too (src/jobs). */
export const jobRequestSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('import'),
    folder: absolutePath,
    split: split.default('unassigned'),
  }),
  z.strictObject({
    kind: z.literal('pretrain'),
    tasks: z.array(z.enum(PRETEXT_TASKS)).min(1).max(PRETEXT_TASKS.length).default([...DEFAULT_PRETEXT_TASKS]),
    /** Wall-clock seconds (default TRAINING.pretrainSeconds unless steps are given); with steps, whichever ends first. */
    budgetSeconds: budgetSeconds.optional(),
    steps: z.number().int().min(1).max(1_000_000).optional(),
    maxImages: z.number().int().min(1).max(100_000).optional(),
    learningRate: z.number().positive().max(1).optional(),
    /** Steps between resumable checkpoints. */
    checkpointEvery: z.number().int().min(1).max(100_000).optional(),
    /** Seconds of the quick fine-tune that says what the pretraining is worth (default TRAINING.pretrainProbeSeconds; 0: none). */
    probeSeconds: z.number().int().min(0).max(MAX_BUDGET_SECONDS).optional(),
    /** Continue the last cancelled or interrupted pretraining of the same tasks from its checkpoint. */
    resume: z.boolean().default(false),
  }),
  z.strictObject({
    kind: z.literal('train'),
    /** Wall-clock seconds for the run (default TRAINING.firstModelSeconds, or retrainSeconds for a warm start). */
    budgetSeconds: budgetSeconds.optional(),
    /** Steps per candidate instead of a budget. */
    steps: z.number().int().min(1).max(1_000_000).optional(),
    target: segmentationTarget.default('semantic'),
    learningRate: z.number().positive().max(1).optional(),
    /** Continue the promoted model (false: choose the initialisation again, from scratch and each pretext checkpoint). */
    warmStart: z.boolean().default(true),
    /** Learn from the unlabeled images too (consistency training as a candidate, where there are any); off by default (TrainModelOptions). */
    semiSupervised: z.boolean().default(false),
    /** 'now': on demand; 'ifDue': only if the retrain policy says enough new labels arrived. */
    when: z.enum(['now', 'ifDue']).default('now'),
  }),
  z.strictObject({
    kind: z.literal('prelabel'),
    /** Images to propose masks for; default: every image without a proposal from the promoted model. */
    imageIds: z.array(id).min(1).max(1_000_000).optional(),
  }),
]);
export type JobRequest = z.output<typeof jobRequestSchema>;
export type JobRequestInput = z.input<typeof jobRequestSchema>;

/** Request schema of every channel. */
export const CHANNELS = {
  /** Versions, shell, engine backend, the open project. */
  'app:info': z.strictObject({}),

  /** Creates a project in `dir` (made if missing) and opens it; the previously open one is closed. */
  'project:create': z.strictObject({ dir: absolutePath, name: z.string().trim().min(1).max(200).optional() }),
  'project:open': z.strictObject({ dir: absolutePath }),
  'project:close': z.strictObject({}),
  'project:recent': z.strictObject({}),
  'project:summary': z.strictObject({}),
  'project:setSettings': z.strictObject({
    autoRetrainAfterLabels: count.max(100_000).optional(),
    defaultAuthor: z.string().max(200).optional(),
    classNames: z.array(z.string().trim().min(1).max(60)).min(1).max(MAX_CLASSES).optional(),
  }),
  /** Writes labels or proposals into <project>/exports/<folder>. */
  'project:export': z.strictObject({
    format: z.enum(['png', 'tiff', 'coco', 'overlay']),
    what: z.enum(['labels', 'proposals']).default('labels'),
    folder: folderName,
  }),

  /** Sub-folders of `dir` (default: the home folder), for choosing a folder where no native dialog exists. */
  'fs:listFolders': z.strictObject({ dir: absolutePath.optional() }),
  /** Electron only: the native folder picker; null when cancelled. The browser uses fs:listFolders. */
  'dialog:chooseFolder': z.strictObject({ title: z.string().max(200).optional() }),

  'images:list': z.strictObject({
    status: z.array(z.enum(['unlabeled', 'proposed', 'labeled', 'reviewed'])).optional(),
    split: z.array(split).optional(),
    /** 'labelNext': most uncertain proposal first, images without a proposal last. */
    sort: z.enum(['added', 'path', 'labelNext']).default('added'),
    offset: count.default(0),
    limit: z.number().int().min(1).max(100_000).default(100_000),
  }),
  'images:get': z.strictObject({ imageId: id }),
  'images:setSplit': z.strictObject({ imageIds: z.array(id).min(1).max(100_000), split }),
  /** 'reviewed' after a second look; back to 'labeled' to ask for another review. */
  'images:setStatus': z.strictObject({ imageId: id, status: z.enum(['labeled', 'reviewed']) }),

  /**
   * Saves a whole mask as a new label version (nothing is overwritten). source and the event
   * recorded with it: manual -> 'annotate', edited_proposal -> 'correct' (refused for an image
   * without a proposal).
   */
  'labels:save': z.strictObject({
    /** The project the caller is editing: refused when another project is open now (a stroke must never land in the wrong project). */
    projectUuid: projectUuid.optional(),
    imageId: id,
    mask: labelMaskSchema,
    /** Nonzero = the annotator left this pixel unlabeled ('unknown' brush); length width x height. */
    unknown: uint8Array.nullable().optional(),
    source: saveSource,
    /** The version this edit started from; null: drawn without one; omitted: the latest. */
    parentVersion: z.number().int().positive().nullable().optional(),
    timeSpentMs: count.max(86_400_000),
    pixelsChanged: count.optional(),
  }),
  /**
   * One stroke: replaces a rectangle of `baseVersion` and saves the result as a new version.
   * Refused (argument error) when baseVersion is no longer the latest, so two windows cannot
   * silently overwrite each other. data/unknown cover the rectangle row-major.
   */
  'labels:patch': z.strictObject({
    /** The project the caller is editing: refused when another project is open now (a stroke must never land in the wrong project). */
    projectUuid: projectUuid.optional(),
    imageId: id,
    baseVersion: z.number().int().positive(),
    x: count,
    y: count,
    width: side,
    height: side,
    data: labelArray,
    unknown: uint8Array.nullable().optional(),
    source: saveSource,
    timeSpentMs: count.max(86_400_000),
    pixelsChanged: count.optional(),
  }),
  'labels:history': z.strictObject({ imageId: id }),
  /** Makes an old version the latest again (as a new version: history is kept). */
  'labels:restore': z.strictObject({ imageId: id, version: z.number().int().positive() }),

  /**
   * accept: the proposal becomes a label version (source accepted_proposal, event 'accept').
   * reject: recorded as a 'reject' annotation event; the proposal stays for comparison.
   */
  'proposals:decide': z.strictObject({
    projectUuid: projectUuid.optional(),
    imageId: id,
    decision: z.enum(['accept', 'reject']),
    timeSpentMs: count.max(86_400_000),
  }),

  'models:list': z.strictObject({}),
  'models:promote': z.strictObject({ modelId: id }),
  /** Promotes the previously promoted model again. */
  'models:rollback': z.strictObject({}),

  'jobs:start': jobRequestSchema,
  'jobs:cancel': z.strictObject({ jobId: id }),
  /** Jobs of this session, newest first. */
  'jobs:list': z.strictObject({}),
  /** Starts a job that continues an interrupted or cancelled run (pretrain from its checkpoint; import and prelabel skip what is done; train starts over). */
  'jobs:resume': z.strictObject({ runId: id }),

  'runs:list': z.strictObject({ kind: z.enum(['import', 'pretrain', 'train', 'prelabel', 'eval']).optional(), limit: z.number().int().min(1).max(1000).default(50) }),
  /** Learning curve (val Dice against labeled images) and time spent against time saved. */
  'stats:progress': z.strictObject({}),
} as const;

export type Channel = keyof typeof CHANNELS;
export const CHANNEL_NAMES = Object.keys(CHANNELS) as Channel[];

/** What each channel answers (inside Result). */
export interface ChannelResponses {
  'app:info': AppInfo;
  'project:create': ProjectSummary;
  'project:open': ProjectSummary;
  'project:close': null;
  'project:recent': RecentProject[];
  'project:summary': ProjectSummary;
  'project:setSettings': ProjectSettings;
  'project:export': ExportResult;
  'fs:listFolders': FolderListing;
  'dialog:chooseFolder': string | null;
  'images:list': ImageListing;
  'images:get': ImageDetail;
  'images:setSplit': { changed: number };
  'images:setStatus': ImageDetail;
  'labels:save': LabelVersionSummary;
  'labels:patch': LabelVersionSummary;
  'labels:history': LabelVersionSummary[];
  'labels:restore': LabelVersionSummary;
  'proposals:decide': LabelVersionSummary | null;
  'models:list': ModelSummary[];
  'models:promote': ModelSummary;
  'models:rollback': ModelSummary;
  'jobs:start': JobInfo;
  'jobs:cancel': JobInfo;
  'jobs:list': JobInfo[];
  'jobs:resume': JobInfo;
  'runs:list': RunSummary[];
  'stats:progress': ProgressStats;
}

// Compile-time check that CHANNELS and ChannelResponses name the same channels.
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never] ? true : never;
const _channelsMatch: SameKeys<typeof CHANNELS, ChannelResponses> = true;
void _channelsMatch;

/** What the caller passes (defaults may be omitted). */
export type ChannelRequest<C extends Channel> = z.input<(typeof CHANNELS)[C]>;
/** What a handler receives after validation (defaults filled in). */
export type ParsedRequest<C extends Channel> = z.output<(typeof CHANNELS)[C]>;
export type ChannelResponse<C extends Channel> = ChannelResponses[C];

/**
 * `window.api` in Electron (built by the preload) and the HTTP client in the browser fallback
 * both have this shape, so the renderer codes against one interface.
 */
export interface MaskloopApi {
  readonly shell: 'electron' | 'browser';
  invoke<C extends Channel>(channel: C, request: ChannelRequest<C>): Promise<Result<ChannelResponse<C>>>;
  /** Subscribes to pushed events; returns the unsubscribe function. */
  onEvent(listener: (event: AppEvent) => void): () => void;
}

/** Validates a request; the error message names the channel and the first bad field. */
export function parseRequest<C extends Channel>(channel: C, request: unknown): { ok: true; value: ParsedRequest<C> } | { ok: false; message: string } {
  const schema = CHANNELS[channel] as z.ZodType;
  const parsed = schema.safeParse(request ?? {});
  if (parsed.success) return { ok: true, value: parsed.data as ParsedRequest<C> };
  const issue = parsed.error.issues[0];
  const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
  return { ok: false, message: `${channel}: invalid request${where}: ${issue?.message ?? 'rejected'}` };
}

export function isChannel(name: string): name is Channel {
  return Object.hasOwn(CHANNELS, name);
}

export { ELECTRON_EVENT_CHANNEL, electronChannel } from './electron';
