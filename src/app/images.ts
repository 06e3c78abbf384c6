/** Images: the gallery's list and 'label next' order, one image's details, split and review status, and its pixels. */
import type { Region } from '../shared/binary';
import type { ImageDetail, ImageSummary } from '../shared/types';
import type { ImageRecord } from '../store';
import type { AppContext, DomainHandlers } from './context';
import { argumentError } from './errors';
import { labelSummary } from './labels';
import { DEFAULT_THUMBNAIL, MAX_THUMBNAIL, type BinaryBody } from './pixels';

function imageSummary(image: ImageRecord, score: number | null): ImageSummary {
  return {
    id: image.id, path: image.path, width: image.width, height: image.height, channels: image.channels, bitDepth: image.bitDepth,
    pages: image.pages, format: image.format, split: image.split, status: image.status, uncertaintyScore: score, addedAt: image.addedAt,
  };
}

export async function imageDetail(ctx: AppContext, imageId: number): Promise<ImageDetail> {
  const project = ctx.requireProject();
  const image = ctx.requireImage(imageId);
  const label = project.latestLabelInfo(imageId);
  const promoted = project.promotedModel();
  const predictions = project.listPredictions(imageId);
  const proposal = (promoted && predictions.find((p) => p.modelId === promoted.id)) || predictions.sort((a, b) => b.createdAt - a.createdAt)[0] || null;
  const { dtype, contrast } = await ctx.pixels.call('imageFacts', image);
  return {
    ...imageSummary(image, proposal?.uncertaintyScore ?? null),
    dtype,
    contrast,
    label: label ? labelSummary(label) : null,
    proposal: proposal
      ? { modelId: proposal.modelId, createdAt: proposal.createdAt, uncertaintyScore: proposal.uncertaintyScore, dtype: proposal.dtype, fromPromotedModel: proposal.modelId === promoted?.id }
      : null,
  };
}

/** Unlabeled and proposed images first, most uncertain proposal first, no proposal after; labeled ones last. */
function labelNextOrder(images: ImageRecord[], scores: Map<number, number | null>): ImageRecord[] {
  const open = (im: ImageRecord) => im.status === 'unlabeled' || im.status === 'proposed';
  const key = (im: ImageRecord) => scores.get(im.id) ?? null;
  return images.sort((a, b) => {
    if (open(a) !== open(b)) return open(a) ? -1 : 1;
    const sa = key(a);
    const sb = key(b);
    if ((sa === null) !== (sb === null)) return sa === null ? 1 : -1;
    return (sb ?? 0) - (sa ?? 0) || a.id - b.id;
  });
}

export function imageHandlers(ctx: AppContext): DomainHandlers<'images:list' | 'images:get' | 'images:setSplit' | 'images:setStatus'> {
  return {
    'images:list': ({ status, split, sort, offset, limit }) => {
      const project = ctx.requireProject();
      const scores = project.latestUncertaintyScores();
      let images = project.listImages({ status, split });
      if (sort === 'path') images = images.sort((a, b) => a.path.localeCompare(b.path));
      if (sort === 'labelNext') images = labelNextOrder(images, scores);
      return { total: images.length, items: images.slice(offset, offset + limit).map((im) => imageSummary(im, scores.get(im.id) ?? null)) };
    },
    'images:get': ({ imageId }) => imageDetail(ctx, imageId),
    'images:setSplit': ({ imageIds, split }) => {
      const project = ctx.requireProject();
      for (const imageId of imageIds) ctx.requireImage(imageId);
      const changed = project.setImageSplit(imageIds, split);
      ctx.changed(['images'], imageIds);
      return { changed };
    },
    'images:setStatus': ({ imageId, status }) => {
      const project = ctx.requireProject();
      if (!project.latestLabelInfo(imageId)) throw argumentError(`image ${imageId} has no label to ${status === 'reviewed' ? 'review' : 'reopen'}`);
      project.setImageStatus(imageId, status);
      if (status === 'reviewed') project.addAnnotationEvent({ imageId, kind: 'review', timeSpentMs: 0 });
      ctx.changed(['images'], [imageId]);
      return imageDetail(ctx, imageId);
    },
  };
}

// Binary resources (GET /api/images/:id/pixels and /thumbnail).

export function imagePixels(ctx: AppContext, imageId: number, region?: Region): Promise<BinaryBody> {
  return ctx.pixels.call('imagePixels', ctx.requireImage(imageId), region);
}

export function imageThumbnail(ctx: AppContext, imageId: number, size = DEFAULT_THUMBNAIL): Promise<BinaryBody> {
  if (!Number.isInteger(size) || size < 16 || size > MAX_THUMBNAIL) throw argumentError(`thumbnail size must be 16..${MAX_THUMBNAIL}`);
  return ctx.pixels.call('imageThumbnail', ctx.requireImage(imageId), size);
}
