import { z } from 'zod';
import { checkLabelMask, decodeArray, encodeArray, labelDtype, type LabelArray, type LabelDtype } from './codec';
import type { Ctx } from './db';
import { now } from './db';
import { StoreError } from './errors';
import { insertAnnotationEvent, newEventFields } from './events';
import { getImage, imageFromRow } from './images';
import {
  IMAGE_SPLITS,
  LABEL_SOURCES,
  type ImageRecord,
  type ImageSplit,
  type LabelPatch,
  type LabelSource,
  type LabelVersion,
  type LabelVersionInfo,
  type NewLabelVersion,
} from './types';
import { asList, count, id, oneOrMany, parseArgument } from './validate';

interface LabelRow {
  id: number;
  image_id: number;
  version: number;
  parent_version: number | null;
  restored_from: number | null;
  source: LabelSource;
  author: string;
  created_at: number;
  dtype: LabelDtype;
  width: number;
  height: number;
  has_unknown: number;
}

interface LabelBlobRow extends LabelRow {
  mask: Buffer;
  unknown: Buffer | null;
}

const INFO_COLUMNS = `id, image_id, version, parent_version, restored_from, source, author, created_at, dtype, width, height,
  unknown IS NOT NULL AS has_unknown`;

function infoFromRow(row: LabelRow): LabelVersionInfo {
  return {
    id: row.id,
    imageId: row.image_id,
    version: row.version,
    parentVersion: row.parent_version,
    restoredFrom: row.restored_from,
    source: row.source,
    author: row.author,
    createdAt: row.created_at,
    dtype: row.dtype,
    width: row.width,
    height: row.height,
    hasUnknown: row.has_unknown === 1,
  };
}

function versionFromRow(row: LabelBlobRow): LabelVersion {
  const what = `label version ${row.version} of image ${row.image_id}`;
  const pixels = row.width * row.height;
  return {
    ...infoFromRow(row),
    mask: { width: row.width, height: row.height, data: decodeArray(row.dtype, row.mask, pixels, what) as LabelArray },
    unknown: row.unknown ? (decodeArray('uint8', row.unknown, pixels, `${what} (unknown pixels)`) as Uint8Array) : null,
  };
}

const newLabelSchema = z.object({
  imageId: id,
  mask: z.any(),
  unknown: z.instanceof(Uint8Array).nullable().optional(),
  source: z.enum(LABEL_SOURCES),
  author: z.string().optional(),
  parentVersion: id.nullable().optional(),
  status: z.enum(['labeled', 'reviewed']).optional(),
  event: z.any().optional(),
});

function latestVersionNumber(ctx: Ctx, imageId: number): number {
  const row = ctx.stmt('SELECT max(version) AS v FROM label_versions WHERE image_id = ?').get(imageId) as { v: number | null };
  return row.v ?? 0;
}

/**
 * Saves a new label version; earlier versions stay as they were. The mask is compressed before
 * the write transaction so the lock is held only for the inserts. The version number is taken
 * inside the transaction, so concurrent writers never collide.
 */
export function addLabelVersion(ctx: Ctx, input: NewLabelVersion): LabelVersionInfo {
  return insertLabelVersion(ctx, input, false);
}

/** `parentMustBeLatest`: a patch merged into the latest version fails if another edit came first. */
function insertLabelVersion(ctx: Ctx, input: NewLabelVersion, parentMustBeLatest: boolean): LabelVersionInfo {
  const label = parseArgument(newLabelSchema, input, 'addLabelVersion');
  const dtype = checkLabelMask(input.mask, 'addLabelVersion mask');
  const { width, height } = input.mask;
  if (label.unknown && label.unknown.length !== width * height) {
    throw new StoreError('argument', `addLabelVersion unknown: ${label.unknown.length} values, expected ${width}x${height} = ${width * height}`);
  }
  const event = input.event ? newEventFields({ ...input.event, imageId: label.imageId }) : null;
  const mask = encodeArray(input.mask.data);
  const unknown = label.unknown ? encodeArray(label.unknown) : null;
  return ctx.write('saving a label', () => {
    const image = getImage(ctx, label.imageId);
    if (!image) throw new StoreError('argument', `no image with id ${label.imageId} in this project`);
    if (image.width !== width || image.height !== height) {
      throw new StoreError('argument', `label is ${width}x${height} but image ${image.id} is ${image.width}x${image.height}`);
    }
    const latest = latestVersionNumber(ctx, image.id);
    const parent = label.parentVersion === undefined ? (latest || null) : label.parentVersion;
    if (parent !== null && parent > latest) {
      throw new StoreError('argument', `image ${image.id} has no label version ${parent} (latest is ${latest})`);
    }
    if (parentMustBeLatest && parent !== latest) throw notLatest(parent ?? 0, latest);
    const row = ctx
      .stmt(
        `INSERT INTO label_versions (image_id, version, parent_version, source, author, created_at, dtype, width, height, encoding, mask, unknown)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'zlib', ?, ?) RETURNING ${INFO_COLUMNS}`,
      )
      .get(image.id, latest + 1, parent, label.source, label.author ?? '', now(), dtype, width, height, mask, unknown) as LabelRow;
    ctx.stmt('UPDATE images SET status = ? WHERE id = ?').run(label.status ?? 'labeled', image.id);
    if (event) insertAnnotationEvent(ctx, { ...event, labelVersion: row.version });
    return infoFromRow(row);
  });
}

const notLatest = (version: number, latest: number) =>
  new StoreError('argument', `label version ${version} is not the latest (${latest}): reload the label`);

const patchSchema = z.object({
  imageId: id,
  baseVersion: id,
  x: count,
  y: count,
  width: id,
  height: id,
  unknown: z.instanceof(Uint8Array).nullable().optional(),
});

/** A label array wide enough for both: a patch may bring ids the stored dtype cannot hold. */
function widen(base: LabelArray, patch: LabelArray): LabelArray {
  const rank = (a: LabelArray) => (a instanceof Uint8Array ? 0 : a instanceof Uint16Array ? 1 : 2);
  if (rank(patch) <= rank(base)) return base.slice();
  return rank(patch) === 1 ? Uint16Array.from(base) : Int32Array.from(base);
}

/**
 * Merges a stroke's rectangle into the latest label and saves the result as a new version whose
 * parent is `baseVersion`. Refused when `baseVersion` is not the latest (another window saved in
 * between: its edit would be overwritten) or the rectangle leaves the image.
 */
export function patchLabelVersion(ctx: Ctx, patch: LabelPatch): LabelVersionInfo {
  const p = parseArgument(patchSchema, patch, 'patchLabelVersion');
  if (!labelDtype(patch.data)) throw new StoreError('argument', 'patchLabelVersion data: expected a Uint8Array, Uint16Array or Int32Array');
  const base = latestLabel(ctx, p.imageId);
  if (!base) throw new StoreError('argument', `image ${p.imageId} has no label yet: save the whole mask first`);
  if (base.version !== p.baseVersion) throw notLatest(p.baseVersion, base.version);
  const { width, height } = base.mask;
  if (p.x + p.width > width || p.y + p.height > height) {
    throw new StoreError('argument', `patch ${p.x},${p.y} ${p.width}x${p.height} lies outside the ${width}x${height} image`);
  }
  if (patch.data.length !== p.width * p.height) throw new StoreError('argument', 'patch data length must be width x height');
  if (p.unknown && p.unknown.length !== p.width * p.height) throw new StoreError('argument', 'patch unknown flags must have one byte per pixel');
  const data = widen(base.mask.data, patch.data);
  let unknown = base.unknown;
  if (p.unknown !== undefined && (p.unknown || unknown)) unknown = unknown ? unknown.slice() : new Uint8Array(width * height);
  for (let row = 0; row < p.height; row++) {
    const at = (p.y + row) * width + p.x;
    data.set(patch.data.subarray(row * p.width, (row + 1) * p.width), at);
    if (unknown && p.unknown !== undefined) {
      if (p.unknown) unknown.set(p.unknown.subarray(row * p.width, (row + 1) * p.width), at);
      else unknown.fill(0, at, at + p.width);
    }
  }
  return insertLabelVersion(ctx, {
    imageId: p.imageId, mask: { width, height, data }, unknown: unknown && unknown.some((v) => v !== 0) ? unknown : null,
    source: patch.source, author: patch.author, parentVersion: base.version, event: patch.event,
  }, true);
}

/** The latest version's record without decoding its mask. */
export function latestLabelInfo(ctx: Ctx, imageId: number): LabelVersionInfo | null {
  const row = ctx.stmt(`SELECT ${INFO_COLUMNS} FROM label_versions WHERE image_id = ? ORDER BY version DESC LIMIT 1`).get(imageId) as LabelRow | undefined;
  return row ? infoFromRow(row) : null;
}

export function latestLabel(ctx: Ctx, imageId: number): LabelVersion | null {
  const row = ctx
    .stmt(`SELECT ${INFO_COLUMNS}, mask, unknown FROM label_versions WHERE image_id = ? ORDER BY version DESC LIMIT 1`)
    .get(imageId) as LabelBlobRow | undefined;
  return row ? versionFromRow(row) : null;
}

export function getLabelVersion(ctx: Ctx, imageId: number, version: number): LabelVersion | null {
  const row = ctx
    .stmt(`SELECT ${INFO_COLUMNS}, mask, unknown FROM label_versions WHERE image_id = ? AND version = ?`)
    .get(imageId, version) as LabelBlobRow | undefined;
  return row ? versionFromRow(row) : null;
}

/** Every version of an image's label, oldest first, without the masks (fetch one with getLabelVersion). */
export function labelHistory(ctx: Ctx, imageId: number): LabelVersionInfo[] {
  const rows = ctx.stmt(`SELECT ${INFO_COLUMNS} FROM label_versions WHERE image_id = ? ORDER BY version`).all(imageId) as LabelRow[];
  return rows.map(infoFromRow);
}

/**
 * Makes an old version current again by copying it into a new version (its compressed bytes
 * as they are), so restoring is itself an edit that can be undone.
 */
export function restoreLabelVersion(ctx: Ctx, imageId: number, version: number, options: { author?: string } = {}): LabelVersionInfo {
  parseArgument(id, imageId, 'restoreLabelVersion image id');
  parseArgument(id, version, 'restoreLabelVersion version');
  const author = parseArgument(z.string().optional(), options.author, 'restoreLabelVersion author');
  return ctx.write('restoring a label version', () => {
    const old = ctx
      .stmt('SELECT source, author, dtype, width, height, encoding, mask, unknown FROM label_versions WHERE image_id = ? AND version = ?')
      .get(imageId, version) as { source: string; author: string; dtype: string; width: number; height: number; encoding: string; mask: Buffer; unknown: Buffer | null } | undefined;
    if (!old) throw new StoreError('argument', `image ${imageId} has no label version ${version}`);
    const latest = latestVersionNumber(ctx, imageId);
    const row = ctx
      .stmt(
        `INSERT INTO label_versions (image_id, version, parent_version, restored_from, source, author, created_at, dtype, width, height, encoding, mask, unknown)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${INFO_COLUMNS}`,
      )
      .get(imageId, latest + 1, latest, version, old.source, author ?? old.author, now(), old.dtype, old.width, old.height, old.encoding, old.mask, old.unknown) as LabelRow;
    ctx.stmt("UPDATE images SET status = 'labeled' WHERE id = ? AND status IN ('unlabeled', 'proposed')").run(imageId);
    return infoFromRow(row);
  });
}

/**
 * Images given a new label version after a time: what an 'auto-retrain after N new labels' rule
 * counts. Images, not versions: every stroke saves a version, and a label is an image's mask.
 */
export function countLabeledImagesSince(ctx: Ctx, sinceMs: number): number {
  parseArgument(z.number().finite(), sinceMs, 'countLabeledImagesSince');
  return (ctx.stmt('SELECT count(DISTINCT image_id) AS n FROM label_versions WHERE created_at > ?').get(sinceMs) as { n: number }).n;
}

/**
 * Images that have a label, with their latest version number: the training set of a split. And
 * when the image was first labeled: a model created before then cannot have learned from it.
 */
export function labeledImages(
  ctx: Ctx,
  filter: { split?: ImageSplit | readonly ImageSplit[]; limit?: number } = {},
): { image: ImageRecord; version: number; firstLabeledAt: number }[] {
  const f = parseArgument(z.object({ split: oneOrMany(IMAGE_SPLITS), limit: count.optional() }), filter, 'labeledImages');
  const splits = asList(f.split);
  const rows = ctx
    .stmt(
      `SELECT i.*, (SELECT max(version) FROM label_versions l WHERE l.image_id = i.id) AS latest_version,
              (SELECT min(created_at) FROM label_versions l WHERE l.image_id = i.id) AS first_labeled_at
       FROM images i
       WHERE EXISTS (SELECT 1 FROM label_versions l WHERE l.image_id = i.id)
       ${splits ? `AND i.split IN (${splits.map(() => '?').join(', ')})` : ''}
       ORDER BY i.id LIMIT ${f.limit ?? -1}`,
    )
    .all(...(splits ?? [])) as (Parameters<typeof imageFromRow>[1] & { latest_version: number; first_labeled_at: number })[];
  return rows.map((r) => ({ image: imageFromRow(ctx, r), version: r.latest_version, firstLabeledAt: r.first_labeled_at }));
}
