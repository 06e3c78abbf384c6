/**
 * Labels: saving a whole mask or a stroke's rectangle, the version history and restoring, and
 * accepting or rejecting a proposal. Masks are merged, compressed and inflated in the pixel
 * worker; this thread checks the request, and tells the windows and the retrain policy.
 */
import type { LabelVersionSummary } from '../shared/types';
import type { LabelArray, LabelVersionInfo, Project } from '../store';
import type { AppContext, DomainHandlers } from './context';
import { argumentError } from './errors';
import type { BinaryBody } from './pixels';

const EVENT_FOR_SOURCE = { manual: 'annotate', edited_proposal: 'correct', accepted_proposal: 'accept' } as const;
type EditSource = keyof typeof EVENT_FOR_SOURCE;

/** The store's record without its store ids (the contract's fields must not carry extra keys). */
export function labelSummary({ id: _id, imageId: _imageId, ...summary }: LabelVersionInfo): LabelVersionSummary {
  return summary;
}

/** An edited proposal needs a proposal it was edited from. */
function checkSource(project: Project, imageId: number, source: EditSource): void {
  if (source === 'edited_proposal' && project.listPredictions(imageId).length === 0) {
    throw argumentError(`image ${imageId} has no proposal, so its label cannot be an edited proposal`);
  }
}

function saved(ctx: AppContext, project: Project, version: LabelVersionInfo): LabelVersionSummary {
  ctx.changed(['labels', 'images'], [version.imageId]);
  ctx.maybeRetrain(project);
  return labelSummary(version);
}

async function saveLabel(ctx: AppContext, project: Project, input: {
  imageId: number; data: LabelArray; width: number; height: number; unknown: Uint8Array | null; source: EditSource;
  parentVersion?: number | null; timeSpentMs: number; pixelsChanged?: number;
}): Promise<LabelVersionSummary> {
  const image = ctx.requireImage(input.imageId);
  if (input.width !== image.width || input.height !== image.height) {
    throw argumentError(`mask is ${input.width}x${input.height}, image ${image.id} is ${image.width}x${image.height}`);
  }
  if (input.unknown && input.unknown.length !== input.width * input.height) throw argumentError('unknown flags must have one byte per pixel');
  checkSource(project, input.imageId, input.source);
  const version = await ctx.pixels.call('saveLabel', {
    imageId: input.imageId, mask: { width: input.width, height: input.height, data: input.data }, unknown: input.unknown,
    source: input.source, author: project.getSetting('defaultAuthor'), parentVersion: input.parentVersion,
    event: { kind: EVENT_FOR_SOURCE[input.source], timeSpentMs: input.timeSpentMs, pixelsChanged: input.pixelsChanged ?? 0 },
  });
  return saved(ctx, project, version);
}

type LabelChannel = 'labels:save' | 'labels:patch' | 'labels:history' | 'labels:restore' | 'proposals:decide';

export function labelHandlers(ctx: AppContext): DomainHandlers<LabelChannel> {
  return {
    'labels:save': ({ projectUuid, imageId, mask, unknown, source, parentVersion, timeSpentMs, pixelsChanged }) =>
      saveLabel(ctx, ctx.projectForWrite(projectUuid), { imageId, data: mask.data, width: mask.width, height: mask.height, unknown: unknown ?? null, source, parentVersion, timeSpentMs, pixelsChanged }),
    'labels:patch': async (p) => {
      const project = ctx.projectForWrite(p.projectUuid);
      ctx.requireImage(p.imageId);
      checkSource(project, p.imageId, p.source);
      const version = await ctx.pixels.call('patchLabel', {
        imageId: p.imageId, baseVersion: p.baseVersion, x: p.x, y: p.y, width: p.width, height: p.height, data: p.data, unknown: p.unknown,
        source: p.source, author: project.getSetting('defaultAuthor'),
        event: { kind: EVENT_FOR_SOURCE[p.source], timeSpentMs: p.timeSpentMs, pixelsChanged: p.pixelsChanged ?? 0 },
      });
      return saved(ctx, project, version);
    },
    'labels:history': ({ imageId }) => {
      ctx.requireImage(imageId);
      return ctx.requireProject().labelHistory(imageId).map(labelSummary);
    },
    'labels:restore': ({ imageId, version }) => {
      ctx.requireImage(imageId);
      const project = ctx.requireProject();
      // The stored bytes are copied as they are: nothing to inflate here.
      const restored = project.restoreLabelVersion(imageId, version, { author: project.getSetting('defaultAuthor') });
      ctx.changed(['labels', 'images'], [imageId]);
      return labelSummary(restored);
    },
    'proposals:decide': async ({ projectUuid, imageId, decision, timeSpentMs }) => {
      const project = ctx.projectForWrite(projectUuid);
      ctx.requireImage(imageId);
      if (project.listPredictions(imageId).length === 0) throw argumentError(`image ${imageId} has no proposal to ${decision}`);
      if (decision === 'reject') {
        project.addAnnotationEvent({ imageId, kind: 'reject', timeSpentMs });
        ctx.changed(['images'], [imageId]);
        return null;
      }
      return saved(ctx, project, await ctx.pixels.call('acceptProposal', { imageId, author: project.getSetting('defaultAuthor'), timeSpentMs }));
    },
  };
}

// Binary resources (GET /api/images/:id/label, /proposal and /uncertainty): null where there is none.

export function imageLabel(ctx: AppContext, imageId: number, version?: number): Promise<BinaryBody | null> {
  ctx.requireImage(imageId);
  return ctx.pixels.call('labelBody', imageId, version);
}

export function imageProposal(ctx: AppContext, imageId: number, modelId?: number): Promise<BinaryBody | null> {
  ctx.requireImage(imageId);
  return ctx.pixels.call('proposalBody', imageId, modelId);
}

export function imageUncertainty(ctx: AppContext, imageId: number, modelId?: number): Promise<BinaryBody | null> {
  ctx.requireImage(imageId);
  return ctx.pixels.call('uncertaintyBody', imageId, modelId);
}
