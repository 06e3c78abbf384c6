import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { Ctx } from './db';
import { now } from './db';
import { StoreError } from './errors';
import type { JsonObject, ModelRecord, NewModel } from './types';
import { id, jsonObject, parseArgument, readJson } from './validate';

export const CACHE_DIR = 'cache';

interface ModelRow {
  id: number;
  kind: string;
  checkpoint_path: string;
  parent_id: number | null;
  pretext_init: string | null;
  config: string;
  val_metrics: string | null;
  promoted: number;
  created_at: number;
}

function modelFromRow(ctx: Ctx, row: ModelRow): ModelRecord {
  const what = `model ${row.id}`;
  return {
    id: row.id,
    kind: row.kind,
    checkpointPath: row.checkpoint_path,
    absoluteCheckpointPath: path.join(ctx.dir, CACHE_DIR, ...row.checkpoint_path.split('/')),
    parentId: row.parent_id,
    pretextInit: row.pretext_init,
    config: readJson(row.config, `${what} config`) as JsonObject,
    valMetrics: row.val_metrics === null ? null : (readJson(row.val_metrics, `${what} metrics`) as JsonObject),
    promoted: row.promoted === 1,
    createdAt: row.created_at,
  };
}

/**
 * Checkpoints live in the project's cache folder and are recorded relative to it, so the project
 * folder can move. A path that would leave the cache is refused.
 */
function checkpointRelative(ctx: Ctx, file: string): string {
  const cache = path.join(ctx.dir, CACHE_DIR);
  const absolute = path.resolve(cache, file);
  const relative = path.relative(cache, absolute);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) {
    throw new StoreError('argument', `checkpoint ${file} is not inside the project's cache folder ${cache}`);
  }
  if (!existsSync(absolute) || !statSync(absolute).isFile()) {
    throw new StoreError('argument', `checkpoint file not found: ${absolute}`);
  }
  return relative.split(path.sep).join('/');
}

const newModelSchema = z.object({
  kind: z.string().min(1),
  checkpointPath: z.string().min(1),
  parentId: id.nullable().optional(),
  pretextInit: z.string().min(1).nullable().optional(),
  config: jsonObject,
  valMetrics: jsonObject.nullable().optional(),
});

export function addModel(ctx: Ctx, input: NewModel): ModelRecord {
  const m = parseArgument(newModelSchema, input, 'addModel');
  const checkpoint = checkpointRelative(ctx, m.checkpointPath);
  return ctx.write('registering a model', () => {
    if (m.parentId != null && !ctx.stmt('SELECT 1 FROM models WHERE id = ?').get(m.parentId)) {
      throw new StoreError('argument', `parent model ${m.parentId} does not exist`);
    }
    const row = ctx
      .stmt(
        `INSERT INTO models (kind, checkpoint_path, parent_id, pretext_init, config, val_metrics, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(
        m.kind,
        checkpoint,
        m.parentId ?? null,
        m.pretextInit ?? null,
        JSON.stringify(m.config),
        m.valMetrics == null ? null : JSON.stringify(m.valMetrics),
        now(),
      ) as ModelRow;
    return modelFromRow(ctx, row);
  });
}

export function getModel(ctx: Ctx, modelId: number): ModelRecord | null {
  const row = ctx.stmt('SELECT * FROM models WHERE id = ?').get(modelId) as ModelRow | undefined;
  return row ? modelFromRow(ctx, row) : null;
}

export function listModels(ctx: Ctx, filter: { kind?: string } = {}): ModelRecord[] {
  const rows = (
    filter.kind === undefined
      ? ctx.stmt('SELECT * FROM models ORDER BY id').all()
      : ctx.stmt('SELECT * FROM models WHERE kind = ? ORDER BY id').all(filter.kind)
  ) as ModelRow[];
  return rows.map((r) => modelFromRow(ctx, r));
}

export function promotedModel(ctx: Ctx): ModelRecord | null {
  const row = ctx.stmt('SELECT * FROM models WHERE promoted = 1').get() as ModelRow | undefined;
  return row ? modelFromRow(ctx, row) : null;
}

/** Metrics on the val split usually arrive after the model is registered (an eval run). */
export function setModelMetrics(ctx: Ctx, modelId: number, metrics: JsonObject): ModelRecord {
  parseArgument(id, modelId, 'setModelMetrics id');
  const m = parseArgument(jsonObject, metrics, 'setModelMetrics metrics');
  return ctx.write('recording model metrics', () => {
    const row = ctx.stmt('UPDATE models SET val_metrics = ? WHERE id = ? RETURNING *').get(JSON.stringify(m), modelId) as ModelRow | undefined;
    if (!row) throw new StoreError('argument', `no model with id ${modelId}`);
    return modelFromRow(ctx, row);
  });
}

function setPromoted(ctx: Ctx, modelId: number): void {
  // Clear first: the partial unique index allows one promoted row at any moment, mid-statement too.
  ctx.stmt('UPDATE models SET promoted = 0 WHERE promoted = 1').run();
  ctx.stmt('UPDATE models SET promoted = 1 WHERE id = ?').run(modelId);
}

/**
 * Makes a model the one used for proposals. Whether it earned that is the promotion rule's answer
 * (promotionDecision in engine/train/select.ts); this records it. Promoting the promoted model is a no-op.
 */
export function promoteModel(ctx: Ctx, modelId: number, options: { reason?: string } = {}): ModelRecord {
  parseArgument(id, modelId, 'promoteModel id');
  const reason = parseArgument(z.string().optional(), options.reason, 'promoteModel reason') ?? '';
  return ctx.write('promoting a model', () => {
    const row = ctx.stmt('SELECT * FROM models WHERE id = ?').get(modelId) as ModelRow | undefined;
    if (!row) throw new StoreError('argument', `no model with id ${modelId}`);
    if (row.promoted === 1) return modelFromRow(ctx, row);
    setPromoted(ctx, modelId);
    ctx.stmt('INSERT INTO model_promotions (model_id, promoted_at, reason) VALUES (?, ?, ?)').run(modelId, now(), reason);
    return modelFromRow(ctx, { ...row, promoted: 1 });
  });
}

/**
 * Undoes the latest promotion: the model promoted before it becomes current again. Repeated
 * rollbacks walk further back (promotions form a stack); the models themselves are never removed.
 */
/** The last two promotions not rolled back, newest first: the promoted model and the one before it. */
function promotionStack(ctx: Ctx): { id: number; model_id: number }[] {
  return ctx.stmt('SELECT id, model_id FROM model_promotions WHERE rolled_back_at IS NULL ORDER BY id DESC LIMIT 2').all() as { id: number; model_id: number }[];
}

/** The model a rollback would promote again; null when there is none (no model, or only the first one promoted). */
export function rollbackTarget(ctx: Ctx): number | null {
  const stack = promotionStack(ctx);
  return stack.length === 2 ? stack[1].model_id : null;
}

export function rollbackModel(ctx: Ctx): ModelRecord {
  return ctx.write('rolling back the promoted model', () => {
    const current = ctx.stmt('SELECT id FROM models WHERE promoted = 1').get() as { id: number } | undefined;
    if (!current) throw new StoreError('argument', 'no model is promoted, so there is nothing to roll back');
    const stack = promotionStack(ctx);
    if (stack.length === 0 || stack[0].model_id !== current.id) {
      throw new StoreError('data', `promotion history does not end with the promoted model ${current.id}`);
    }
    if (stack.length < 2) throw new StoreError('argument', `model ${current.id} is the first promoted model: there is no earlier one to roll back to`);
    ctx.stmt('UPDATE model_promotions SET rolled_back_at = ? WHERE id = ?').run(now(), stack[0].id);
    setPromoted(ctx, stack[1].model_id);
    return modelFromRow(ctx, ctx.stmt('SELECT * FROM models WHERE id = ?').get(stack[1].model_id) as ModelRow);
  });
}
