import { z } from 'zod';
import type { Ctx } from './db';
import { now } from './db';
import { StoreError } from './errors';
import { fingerprintFile, fromStoredPath, mapLimit, statOrNull, toStoredPath, walkFiles } from './files';
import {
  IMAGE_SPLITS,
  IMAGE_STATUSES,
  type AddImageResult,
  type FileFingerprint,
  type ImageCounts,
  type ImageFilter,
  type ImageRecord,
  type ImageSplit,
  type ImageStatus,
  type NewImage,
  type VerifyOptions,
  type VerifyReport,
} from './types';
import { asList, count, id, oneOrMany, parseArgument } from './validate';

interface ImageRow {
  id: number;
  path: string;
  content_hash: string;
  byte_size: number;
  mtime_ms: number;
  width: number;
  height: number;
  channels: number;
  bit_depth: number;
  pages: number;
  format: string;
  split: ImageSplit;
  status: ImageStatus;
  added_at: number;
}

export function imageFromRow(ctx: Ctx, row: ImageRow): ImageRecord {
  return {
    id: row.id,
    path: row.path,
    absolutePath: fromStoredPath(ctx.dir, row.path),
    contentHash: row.content_hash,
    byteSize: row.byte_size,
    mtimeMs: row.mtime_ms,
    width: row.width,
    height: row.height,
    channels: row.channels,
    bitDepth: row.bit_depth,
    pages: row.pages,
    format: row.format,
    split: row.split,
    status: row.status,
    addedAt: row.added_at,
  };
}

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex sha256');

const fingerprintSchema = z.object({
  contentHash: sha256,
  byteSize: count,
  mtimeMs: z.number().finite(),
});

const newImageSchema = z.object({
  path: z.string().min(1),
  width: id,
  height: id,
  channels: id,
  bitDepth: z.union([z.literal(1), z.literal(8), z.literal(16), z.literal(32), z.literal(64)]),
  pages: id.optional(),
  format: z.string().min(1),
  split: z.enum(IMAGE_SPLITS).optional(),
  fingerprint: fingerprintSchema.optional(),
});

const filterSchema = z.object({
  status: oneOrMany(IMAGE_STATUSES),
  split: oneOrMany(IMAGE_SPLITS),
  limit: count.optional(),
  offset: count.optional(),
});

export function getImage(ctx: Ctx, imageId: number): ImageRecord | null {
  const row = ctx.stmt('SELECT * FROM images WHERE id = ?').get(imageId) as ImageRow | undefined;
  return row ? imageFromRow(ctx, row) : null;
}

export function requireImage(ctx: Ctx, imageId: number): ImageRecord {
  const image = getImage(ctx, imageId);
  if (!image) throw new StoreError('argument', `no image with id ${imageId} in this project`);
  return image;
}

export function findImageByPath(ctx: Ctx, file: string): ImageRecord | null {
  const row = ctx.stmt('SELECT * FROM images WHERE path = ?').get(toStoredPath(ctx.dir, file)) as ImageRow | undefined;
  return row ? imageFromRow(ctx, row) : null;
}

export function findImagesByHash(ctx: Ctx, contentHash: string): ImageRecord[] {
  const rows = ctx.stmt('SELECT * FROM images WHERE content_hash = ? ORDER BY id').all(contentHash) as ImageRow[];
  return rows.map((r) => imageFromRow(ctx, r));
}

/**
 * Adds an image by reference (the file stays where it is). Adding the same file again returns the
 * existing record, so an interrupted import can simply be rerun; a file at a known path with new
 * content is refused ('data') until verification has dealt with it.
 */
export async function addImage(ctx: Ctx, input: NewImage): Promise<AddImageResult> {
  const image = parseArgument(newImageSchema, input, 'addImage');
  const absolute = fromStoredPath(ctx.dir, image.path);
  const stored = toStoredPath(ctx.dir, image.path);
  const fingerprint: FileFingerprint = image.fingerprint ?? (await fingerprintFile(absolute));
  return ctx.write('adding an image', () => {
    const existing = ctx.stmt('SELECT * FROM images WHERE path = ?').get(stored) as ImageRow | undefined;
    if (existing) {
      if (existing.content_hash === fingerprint.contentHash) return { image: imageFromRow(ctx, existing), added: false };
      throw new StoreError(
        'data',
        `${absolute} is already in the project (image ${existing.id}) with different content; verify the project's images to review the change`,
      );
    }
    const row = ctx
      .stmt(
        `INSERT INTO images (path, content_hash, byte_size, mtime_ms, width, height, channels, bit_depth, pages, format, split, added_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(
        stored,
        fingerprint.contentHash,
        fingerprint.byteSize,
        fingerprint.mtimeMs,
        image.width,
        image.height,
        image.channels,
        image.bitDepth,
        image.pages ?? 1,
        image.format,
        image.split ?? 'unassigned',
        now(),
      ) as ImageRow;
    return { image: imageFromRow(ctx, row), added: true };
  });
}

export function listImages(ctx: Ctx, filter: ImageFilter = {}): ImageRecord[] {
  const f = parseArgument(filterSchema, filter, 'listImages');
  const where: string[] = [];
  const params: unknown[] = [];
  const statuses = asList(f.status);
  const splits = asList(f.split);
  if (statuses) {
    where.push(`status IN (${statuses.map(() => '?').join(', ')})`);
    params.push(...statuses);
  }
  if (splits) {
    where.push(`split IN (${splits.map(() => '?').join(', ')})`);
    params.push(...splits);
  }
  const sql =
    `SELECT * FROM images${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id` +
    ` LIMIT ${f.limit ?? -1} OFFSET ${f.offset ?? 0}`;
  return (ctx.stmt(sql).all(...params) as ImageRow[]).map((r) => imageFromRow(ctx, r));
}

/** Pixels of the largest image (0 in an empty project). */
export function largestImagePixels(ctx: Ctx): number {
  return (ctx.stmt('SELECT coalesce(max(width * height), 0) AS n FROM images').get() as { n: number }).n;
}

export function countImages(ctx: Ctx): ImageCounts {
  return ctx.read('counting images', () => {
    const byStatus = Object.fromEntries(IMAGE_STATUSES.map((s) => [s, 0])) as Record<ImageStatus, number>;
    const bySplit = Object.fromEntries(IMAGE_SPLITS.map((s) => [s, 0])) as Record<ImageSplit, number>;
    let total = 0;
    for (const r of ctx.stmt('SELECT status, split, count(*) AS n FROM images GROUP BY status, split').all() as {
      status: ImageStatus;
      split: ImageSplit;
      n: number;
    }[]) {
      byStatus[r.status] += r.n;
      bySplit[r.split] += r.n;
      total += r.n;
    }
    return { total, byStatus, bySplit };
  });
}

/** Assigns a split to images; all ids must exist or nothing changes. Returns how many changed. */
export function setImageSplit(ctx: Ctx, imageIds: number | readonly number[], split: ImageSplit): number {
  const ids = parseArgument(z.array(id), asList(imageIds), 'setImageSplit ids');
  const s = parseArgument(z.enum(IMAGE_SPLITS), split, 'setImageSplit split');
  return ctx.write('assigning a split', () => {
    let changed = 0;
    const update = ctx.stmt('UPDATE images SET split = ? WHERE id = ?');
    const exists = ctx.stmt('SELECT 1 FROM images WHERE id = ?');
    for (const imageId of ids) {
      if (!exists.get(imageId)) throw new StoreError('argument', `no image with id ${imageId} in this project`);
      changed += update.run(s, imageId).changes;
    }
    return changed;
  });
}

export function setImageStatus(ctx: Ctx, imageId: number, status: ImageStatus): ImageRecord {
  parseArgument(id, imageId, 'setImageStatus id');
  const s = parseArgument(z.enum(IMAGE_STATUSES), status, 'setImageStatus status');
  return ctx.write('setting an image status', () => {
    const row = ctx.stmt('UPDATE images SET status = ? WHERE id = ? RETURNING *').get(s, imageId) as ImageRow | undefined;
    if (!row) throw new StoreError('argument', `no image with id ${imageId} in this project`);
    return imageFromRow(ctx, row);
  });
}

/** Points an image at a new file, which must have the recorded content (same sha256). */
export async function relocateImage(ctx: Ctx, imageId: number, newPath: string): Promise<ImageRecord> {
  parseArgument(id, imageId, 'relocateImage id');
  parseArgument(z.string().min(1), newPath, 'relocateImage path');
  const before = requireImage(ctx, imageId);
  const absolute = fromStoredPath(ctx.dir, newPath);
  const fingerprint = await fingerprintFile(absolute);
  if (fingerprint.contentHash !== before.contentHash) {
    throw new StoreError('data', `${absolute} does not hold image ${imageId}'s content (sha256 ${fingerprint.contentHash} vs ${before.contentHash})`);
  }
  return ctx.write('relocating an image', () => {
    const row = ctx
      .stmt('UPDATE images SET path = ?, mtime_ms = ? WHERE id = ? AND content_hash = ? RETURNING *')
      .get(toStoredPath(ctx.dir, absolute), fingerprint.mtimeMs, imageId, fingerprint.contentHash) as ImageRow | undefined;
    if (!row) throw new StoreError('argument', `image ${imageId} changed or was removed while relocating it`);
    return imageFromRow(ctx, row);
  });
}

/**
 * Checks every image file against its record. Files whose size and modification time are as
 * recorded are trusted without rehashing (unless `rehash`); others are hashed. A file that is
 * gone is looked for, by size then hash, under `searchDir`. Nothing is changed except the stored
 * modification time of files that were touched but not changed, so the next check is quick.
 */
export async function verifyImages(ctx: Ctx, options: VerifyOptions = {}): Promise<VerifyReport> {
  const opts = parseArgument(z.object({ searchDir: z.string().min(1).optional(), rehash: z.boolean().optional() }), options, 'verifyImages');
  const images = listImages(ctx);
  const report: VerifyReport = { checked: images.length, ok: 0, missing: [], changed: [], moved: [], duplicates: [] };
  const touched: { id: number; mtimeMs: number }[] = [];

  await mapLimit(images, 4, async (image) => {
    const st = await statOrNull(image.absolutePath);
    if (!st || !st.isFile()) {
      report.missing.push(image);
      return;
    }
    if (!opts.rehash && st.size === image.byteSize && st.mtimeMs === image.mtimeMs) {
      report.ok++;
      return;
    }
    let fp: FileFingerprint;
    try {
      fp = await fingerprintFile(image.absolutePath);
    } catch (error) {
      // Vanished between stat and read: as good as missing.
      if (error instanceof StoreError && error.code === 'argument') {
        report.missing.push(image);
        return;
      }
      throw error;
    }
    if (fp.contentHash === image.contentHash) {
      report.ok++;
      if (fp.mtimeMs !== image.mtimeMs) touched.push({ id: image.id, mtimeMs: fp.mtimeMs });
    } else {
      report.changed.push({ image, contentHash: fp.contentHash, byteSize: fp.byteSize });
    }
  });
  report.missing.sort((a, b) => a.id - b.id);
  report.changed.sort((a, b) => a.image.id - b.image.id);

  if (opts.searchDir && report.missing.length > 0) {
    const searchDir = fromStoredPath(ctx.dir, opts.searchDir);
    const sizes = new Set(report.missing.map((m) => m.byteSize));
    const waiting = new Map<string, ImageRecord[]>();
    for (const m of report.missing) waiting.set(m.contentHash, [...(waiting.get(m.contentHash) ?? []), m]);
    const known = new Set(images.map((i) => i.absolutePath));
    for await (const file of walkFiles(searchDir, fromStoredPath(ctx.dir, 'cache'))) {
      if (waiting.size === 0) break;
      if (known.has(file)) continue;
      const st = await statOrNull(file);
      if (!st || !sizes.has(st.size)) continue;
      let fp: FileFingerprint;
      try {
        fp = await fingerprintFile(file);
      } catch {
        continue;
      }
      const candidates = waiting.get(fp.contentHash);
      const image = candidates?.shift();
      if (!image) continue;
      if (candidates!.length === 0) waiting.delete(fp.contentHash);
      report.moved.push({ image, newPath: file });
    }
    const moved = new Set(report.moved.map((m) => m.image.id));
    report.missing = report.missing.filter((m) => !moved.has(m.id));
    report.moved.sort((a, b) => a.image.id - b.image.id);
  }

  const dupRows = ctx
    .stmt('SELECT content_hash FROM images GROUP BY content_hash HAVING count(*) > 1 ORDER BY min(id)')
    .all() as { content_hash: string }[];
  report.duplicates = dupRows.map((r) => ({ contentHash: r.content_hash, images: findImagesByHash(ctx, r.content_hash) }));

  if (touched.length > 0) {
    ctx.write('recording verified images', () => {
      const update = ctx.stmt('UPDATE images SET mtime_ms = ? WHERE id = ?');
      for (const t of touched) update.run(t.mtimeMs, t.id);
    });
  }
  return report;
}
