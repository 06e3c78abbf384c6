import { z } from 'zod';
import type { Ctx } from './db';
import { now } from './db';
import {
  ANNOTATION_EVENT_KINDS,
  type AnnotationEventKind,
  type AnnotationEventRecord,
  type AnnotationSummary,
  type EventTotals,
  type NewAnnotationEvent,
} from './types';
import { count, id, parseArgument } from './validate';

const newEventSchema = z.object({
  imageId: id,
  labelVersion: id.nullable().optional(),
  kind: z.enum(ANNOTATION_EVENT_KINDS),
  timeSpentMs: count,
  pixelsChanged: count.optional(),
});

interface EventRow {
  id: number;
  image_id: number;
  label_version: number | null;
  kind: AnnotationEventKind;
  time_spent_ms: number;
  pixels_changed: number;
  created_at: number;
}

function eventFromRow(row: EventRow): AnnotationEventRecord {
  return {
    id: row.id,
    imageId: row.image_id,
    labelVersion: row.label_version,
    kind: row.kind,
    timeSpentMs: row.time_spent_ms,
    pixelsChanged: row.pixels_changed,
    createdAt: row.created_at,
  };
}

export function newEventFields(input: NewAnnotationEvent): NewAnnotationEvent {
  return parseArgument(newEventSchema, input, 'annotation event');
}

/** Inside a caller's transaction; the foreign keys reject an unknown image or label version. */
export function insertAnnotationEvent(ctx: Ctx, e: NewAnnotationEvent): AnnotationEventRecord {
  const row = ctx
    .stmt(
      `INSERT INTO annotation_events (image_id, label_version, kind, time_spent_ms, pixels_changed, created_at)
       VALUES (?, ?, ?, ?, ?, ?) RETURNING *`,
    )
    .get(e.imageId, e.labelVersion ?? null, e.kind, Math.round(e.timeSpentMs), e.pixelsChanged ?? 0, now()) as EventRow;
  return eventFromRow(row);
}

export function addAnnotationEvent(ctx: Ctx, input: NewAnnotationEvent): AnnotationEventRecord {
  const e = newEventFields(input);
  return ctx.write('recording an annotation event', () => insertAnnotationEvent(ctx, e));
}

export function annotationEvents(ctx: Ctx, imageId: number): AnnotationEventRecord[] {
  return (ctx.stmt('SELECT * FROM annotation_events WHERE image_id = ? ORDER BY id').all(imageId) as EventRow[]).map(eventFromRow);
}

export function annotationSummary(ctx: Ctx, options: { sinceMs?: number } = {}): AnnotationSummary {
  const since = parseArgument(z.number().finite().optional(), options.sinceMs, 'annotationSummary since') ?? Number.MIN_SAFE_INTEGER;
  const rows = ctx
    .stmt(
      `SELECT kind, count(*) AS n, count(DISTINCT image_id) AS i, sum(time_spent_ms) AS t, sum(pixels_changed) AS p
       FROM annotation_events WHERE created_at >= ? GROUP BY kind`,
    )
    .all(since) as { kind: AnnotationEventKind; n: number; i: number; t: number; p: number }[];
  const empty = (): EventTotals => ({ count: 0, images: 0, timeMs: 0, pixelsChanged: 0 });
  const byKind = Object.fromEntries(ANNOTATION_EVENT_KINDS.map((k) => [k, empty()])) as Record<AnnotationEventKind, EventTotals>;
  const total = empty();
  for (const r of rows) {
    byKind[r.kind] = { count: r.n, images: r.i, timeMs: r.t, pixelsChanged: r.p };
    total.count += r.n;
    total.timeMs += r.t;
    total.pixelsChanged += r.p;
  }
  total.images = (ctx.stmt('SELECT count(DISTINCT image_id) AS n FROM annotation_events WHERE created_at >= ?').get(since) as { n: number }).n;
  // Time saved per image, not per event: one image takes many saves (every stroke is one).
  const perImage = ctx
    .stmt(
      `SELECT sum(time_spent_ms) AS t, max(kind IN ('correct', 'accept')) AS assisted, max(kind = 'annotate') AS scratch
       FROM annotation_events WHERE created_at >= ? AND kind IN ('annotate', 'correct', 'accept') GROUP BY image_id`,
    )
    .all(since) as { t: number; assisted: number; scratch: number }[];
  const scratch = perImage.filter((r) => r.scratch && !r.assisted);
  const assisted = perImage.filter((r) => r.assisted);
  const meanScratch = scratch.length ? scratch.reduce((sum, r) => sum + r.t, 0) / scratch.length : null;
  const estimatedTimeSavedMs =
    meanScratch !== null && assisted.length ? Math.round(meanScratch * assisted.length - assisted.reduce((sum, r) => sum + r.t, 0)) : null;
  return { total, byKind, estimatedTimeSavedMs };
}
