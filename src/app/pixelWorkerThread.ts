/**
 * The app's pixel worker (a worker thread): everything the app does that touches whole images or
 * masks runs here, so that Electron's main process, which also relays the windows' input, never
 * stalls on it. Decoding images, contrast and thumbnails, inflating masks to serve them, merging a
 * stroke into the latest label and compressing the new version, accepting a proposal, and export.
 * The thread holds its own connection to the open project (SQLite in WAL mode serves both); the
 * main thread keeps the small queries, the job runner and the events.
 *
 * Requests are handled in arrival order; those that write or depend on the open project wait for
 * the one before them, so two strokes are stored in the order they were sent.
 */
import path from 'node:path';
import { parentPort } from 'node:worker_threads';
import { exportMasks, type ExportOptions } from '../jobs/workflows/exportMasks';
import type { Region } from '../shared/binary';
import { openProject, type ImageRecord, type LabelPatch, type NewLabelVersion, type Project } from '../store';
import { argumentError, errorKind } from './errors';
import { PixelCache, floatBody, maskBody, pixelDtype } from './pixels';

let project: Project | null = null;
const pixels = new PixelCache();

function requireProject(): Project {
  if (!project) throw argumentError('no project is open: create or open one first');
  return project;
}

/** The given model's proposal, or the promoted model's, or the latest. */
function proposal(imageId: number, modelId?: number) {
  const p = requireProject();
  if (modelId) return p.getPrediction(imageId, modelId);
  const promoted = p.promotedModel();
  return (promoted && p.getPrediction(imageId, promoted.id)) || p.getPrediction(imageId);
}

export const operations = {
  open(dir: string) {
    project?.close();
    project = null;
    project = openProject(dir);
    return null;
  },
  close() {
    project?.close();
    project = null;
    return null;
  },
  saveLabel: (input: NewLabelVersion) => requireProject().addLabelVersion(input),
  patchLabel: (patch: LabelPatch) => requireProject().patchLabelVersion(patch),
  /** Saves the proposal shown for an image as its label, unchanged. */
  acceptProposal(input: { imageId: number; author: string; timeSpentMs: number }) {
    const p = requireProject();
    const shown = proposal(input.imageId);
    if (!shown) throw argumentError(`image ${input.imageId} has no proposal to accept`);
    return p.addLabelVersion({
      imageId: input.imageId, mask: shown.mask, unknown: null, source: 'accepted_proposal', author: input.author,
      event: { kind: 'accept', timeSpentMs: input.timeSpentMs, pixelsChanged: 0 },
    });
  },
  /** File names of the labeled images whose class masks use a class above `keep`. */
  imagesUsingClassesAbove(keep: number): string[] {
    const p = requireProject();
    const using: string[] = [];
    for (const { image } of p.labeledImages()) {
      // Object masks (uint16/int32) are all class 1; only class masks (uint8) can use others.
      const label = p.latestLabel(image.id);
      if (label?.mask.data instanceof Uint8Array && label.mask.data.some((v) => v > keep)) using.push(path.basename(image.path));
    }
    return using;
  },
  exportMasks: (options: ExportOptions) => exportMasks(requireProject(), options),
  async imageFacts(record: ImageRecord) {
    return { dtype: pixelDtype(await pixels.decoded(record)), contrast: await pixels.contrast(record) };
  },
  imagePixels: (record: ImageRecord, region?: Region) => pixels.pixels(record, region),
  imageThumbnail: (record: ImageRecord, size: number) => pixels.thumbnail(requireProject(), record, size),
  labelBody(imageId: number, version?: number) {
    const p = requireProject();
    const label = version ? p.getLabelVersion(imageId, version) : p.latestLabel(imageId);
    if (!label) return null;
    return maskBody(label.mask, { 'x-maskloop-label-version': String(label.version) }, label.unknown);
  },
  proposalBody(imageId: number, modelId?: number) {
    const p = proposal(imageId, modelId);
    if (!p) return null;
    return maskBody(p.mask, { 'x-maskloop-model-id': String(p.modelId), 'x-maskloop-uncertainty-score': p.uncertaintyScore === null ? '' : String(p.uncertaintyScore) });
  },
  uncertaintyBody(imageId: number, modelId?: number) {
    const p = proposal(imageId, modelId);
    if (!p?.uncertainty) return null;
    return floatBody(p.uncertainty.width, p.uncertainty.height, p.uncertainty.data, { 'x-maskloop-model-id': String(p.modelId) });
  },
};

export type PixelOperations = typeof operations;
export type PixelOperation = keyof PixelOperations;

/** Reads of image files only: they need no project and may run beside the queue. */
const UNQUEUED: ReadonlySet<PixelOperation> = new Set(['imageFacts', 'imagePixels']);

export interface PixelRequest { id: number; op: PixelOperation; args: unknown[] }
export type PixelReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; kind: string; message: string };

/**
 * Operations whose bodies are built for the one answer: they move to the main thread instead of
 * being copied. Image pixels are not among them: a whole image is served from the decode cache,
 * and moving its buffer would empty the cached image.
 */
const FRESH_BODIES: ReadonlySet<PixelOperation> = new Set(['labelBody', 'proposalBody', 'imageThumbnail']);

function transferable(op: PixelOperation, value: unknown): ArrayBuffer[] {
  if (!FRESH_BODIES.has(op)) return [];
  const body = (value as { body?: unknown } | null)?.body;
  if (body instanceof Uint8Array && body.byteOffset === 0 && body.byteLength === body.buffer.byteLength && body.buffer instanceof ArrayBuffer) return [body.buffer];
  return [];
}

let queue: Promise<unknown> = Promise.resolve();

async function run({ op, args }: PixelRequest): Promise<unknown> {
  const fn = operations[op] as (...a: unknown[]) => unknown;
  if (typeof fn !== 'function') throw new Error(`the pixel worker has no operation ${String(op)}`);
  return fn(...args);
}

parentPort?.on('message', (request: PixelRequest) => {
  const result = UNQUEUED.has(request.op) ? run(request) : (queue = queue.then(() => run(request), () => run(request)));
  result.then(
    (value) => parentPort!.postMessage({ id: request.id, ok: true, value } satisfies PixelReply, transferable(request.op, value)),
    (error) => parentPort!.postMessage({ id: request.id, ok: false, kind: errorKind(error), message: error instanceof Error ? error.message : String(error) } satisfies PixelReply),
  );
});
