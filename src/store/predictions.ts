import { z } from 'zod';
import { checkLabelMask, decodeArray, encodeArray, type LabelArray, type LabelDtype } from './codec';
import type { Ctx } from './db';
import { now } from './db';
import { StoreError } from './errors';
import { getImage, imageFromRow } from './images';
import { IMAGE_SPLITS, type LabelNextEntry, type LabelNextOptions, type NewPrediction, type Prediction, type PredictionInfo } from './types';
import { asList, count, id, oneOrMany, parseArgument } from './validate';

interface PredictionRow {
  id: number;
  image_id: number;
  model_id: number;
  dtype: LabelDtype;
  width: number;
  height: number;
  uncertainty_score: number | null;
  has_uncertainty: number;
  created_at: number;
}

interface PredictionBlobRow extends PredictionRow {
  mask: Buffer;
  uncertainty: Buffer | null;
}

const INFO_COLUMNS = 'id, image_id, model_id, dtype, width, height, uncertainty_score, uncertainty IS NOT NULL AS has_uncertainty, created_at';

function infoFromRow(row: PredictionRow): PredictionInfo {
  return {
    id: row.id,
    imageId: row.image_id,
    modelId: row.model_id,
    dtype: row.dtype,
    width: row.width,
    height: row.height,
    uncertaintyScore: row.uncertainty_score,
    hasUncertainty: row.has_uncertainty === 1,
    createdAt: row.created_at,
  };
}

function predictionFromRow(row: PredictionBlobRow): Prediction {
  const what = `prediction of model ${row.model_id} for image ${row.image_id}`;
  const pixels = row.width * row.height;
  return {
    ...infoFromRow(row),
    mask: { width: row.width, height: row.height, data: decodeArray(row.dtype, row.mask, pixels, what) as LabelArray },
    uncertainty: row.uncertainty
      ? { width: row.width, height: row.height, data: decodeArray('float32', row.uncertainty, pixels, `${what} (uncertainty)`) as Float32Array }
      : null,
  };
}

const newPredictionSchema = z.object({
  imageId: id,
  modelId: id,
  mask: z.any(),
  uncertainty: z.object({ width: id, height: id, data: z.instanceof(Float32Array) }).nullable().optional(),
  uncertaintyScore: z.number().finite().nullable().optional(),
});

/**
 * Stores a model's proposal for an image, replacing that model's earlier one (prelabeling again,
 * or importing the same shard twice, is idempotent). An unlabeled image becomes 'proposed'.
 */
export function addPrediction(ctx: Ctx, input: NewPrediction): PredictionInfo {
  const p = parseArgument(newPredictionSchema, input, 'addPrediction');
  const dtype = checkLabelMask(input.mask, 'addPrediction mask');
  const { width, height } = input.mask;
  if (p.uncertainty && (p.uncertainty.width !== width || p.uncertainty.height !== height || p.uncertainty.data.length !== width * height)) {
    throw new StoreError('argument', `addPrediction uncertainty: expected a ${width}x${height} map like the mask`);
  }
  const mask = encodeArray(input.mask.data);
  const uncertainty = p.uncertainty ? encodeArray(p.uncertainty.data) : null;
  return ctx.write('saving a prediction', () => {
    const image = getImage(ctx, p.imageId);
    if (!image) throw new StoreError('argument', `no image with id ${p.imageId} in this project`);
    if (image.width !== width || image.height !== height) {
      throw new StoreError('argument', `prediction is ${width}x${height} but image ${image.id} is ${image.width}x${image.height}`);
    }
    const row = ctx
      .stmt(
        `INSERT INTO predictions (image_id, model_id, dtype, width, height, encoding, mask, uncertainty, uncertainty_score, created_at)
         VALUES (?, ?, ?, ?, ?, 'zlib', ?, ?, ?, ?)
         ON CONFLICT (image_id, model_id) DO UPDATE SET
           dtype = excluded.dtype, width = excluded.width, height = excluded.height, encoding = excluded.encoding,
           mask = excluded.mask, uncertainty = excluded.uncertainty, uncertainty_score = excluded.uncertainty_score,
           created_at = excluded.created_at
         RETURNING ${INFO_COLUMNS}`,
      )
      .get(image.id, p.modelId, dtype, width, height, mask, uncertainty, p.uncertaintyScore ?? null, now()) as PredictionRow;
    ctx.stmt("UPDATE images SET status = 'proposed' WHERE id = ? AND status = 'unlabeled'").run(image.id);
    return infoFromRow(row);
  });
}

/** The given model's prediction for an image, or (no model given) the most recent one. */
export function getPrediction(ctx: Ctx, imageId: number, modelId?: number): Prediction | null {
  const row = (
    modelId === undefined
      ? ctx
          .stmt(`SELECT ${INFO_COLUMNS}, mask, uncertainty FROM predictions WHERE image_id = ? ORDER BY created_at DESC, id DESC LIMIT 1`)
          .get(imageId)
      : ctx.stmt(`SELECT ${INFO_COLUMNS}, mask, uncertainty FROM predictions WHERE image_id = ? AND model_id = ?`).get(imageId, modelId)
  ) as PredictionBlobRow | undefined;
  return row ? predictionFromRow(row) : null;
}

export function listPredictions(ctx: Ctx, imageId: number): PredictionInfo[] {
  const rows = ctx.stmt(`SELECT ${INFO_COLUMNS} FROM predictions WHERE image_id = ? ORDER BY created_at, id`).all(imageId) as PredictionRow[];
  return rows.map(infoFromRow);
}

/** Each image's latest prediction's uncertainty score, in one query, without decoding any mask. */
export function latestUncertaintyScores(ctx: Ctx): Map<number, number | null> {
  const rows = ctx
    .stmt(
      `SELECT p.image_id AS imageId, p.uncertainty_score AS score FROM predictions p
       WHERE p.id = (SELECT q.id FROM predictions q WHERE q.image_id = p.image_id ORDER BY q.created_at DESC, q.id DESC LIMIT 1)`,
    )
    .all() as { imageId: number; score: number | null }[];
  return new Map(rows.map((r) => [r.imageId, r.score]));
}

/**
 * 'Label next': images without a person's label ('unlabeled' or 'proposed'), most uncertain
 * first; images with no prediction (or no score) come last, in id order.
 */
export function labelNext(ctx: Ctx, options: LabelNextOptions = {}): LabelNextEntry[] {
  const o = parseArgument(
    z.object({ limit: count.optional(), modelId: id.optional(), split: oneOrMany(IMAGE_SPLITS) }),
    options,
    'labelNext',
  );
  const splits = asList(o.split);
  const params: unknown[] = [];
  let join: string;
  if (o.modelId !== undefined) {
    join = 'LEFT JOIN predictions p ON p.image_id = i.id AND p.model_id = ?';
    params.push(o.modelId);
  } else {
    join = `LEFT JOIN predictions p ON p.id = (
      SELECT q.id FROM predictions q WHERE q.image_id = i.id ORDER BY q.created_at DESC, q.id DESC LIMIT 1)`;
  }
  if (splits) params.push(...splits);
  const rows = ctx
    .stmt(
      `SELECT i.*, p.uncertainty_score AS next_score, p.model_id AS next_model
       FROM images i ${join}
       WHERE i.status IN ('unlabeled', 'proposed')
       ${splits ? `AND i.split IN (${splits.map(() => '?').join(', ')})` : ''}
       ORDER BY next_score IS NULL, next_score DESC, i.id
       LIMIT ${o.limit ?? 20}`,
    )
    .all(...params) as (Parameters<typeof imageFromRow>[1] & { next_score: number | null; next_model: number | null })[];
  return rows.map((r) => ({ image: imageFromRow(ctx, r), uncertaintyScore: r.next_score, modelId: r.next_model }));
}
