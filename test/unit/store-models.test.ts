import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProject, openProject, type NewModel, type Project } from '../../src/store';
import { expectStoreError } from '../helpers/store';
import { valImagesFor } from '../../src/engine/train/select';
import { ensureValidationSplit } from '../../src/jobs/workflows/trainModel';

let dir: string;
let project: Project;
const W = 8;
const H = 6;


function checkpoint(name: string): string {
  const file = project.cachePath('checkpoints', name);
  writeFileSync(file, 'MLCKPT01');
  return file;
}

function model(name: string, extra: Partial<NewModel> = {}): NewModel {
  return { kind: 'segmentation', checkpointPath: checkpoint(name), config: { depth: 4, baseFilters: 16 }, ...extra };
}

async function addImages(n: number): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    const file = path.join(dir, `img${i}.png`);
    writeFileSync(file, `image ${i}`);
    ids.push((await project.addImage({ path: file, width: W, height: H, channels: 1, bitDepth: 8, format: 'png' })).image.id);
  }
  return ids;
}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'maskloop-models-'));
  project = createProject(path.join(dir, 'proj'), { name: 'models' });
});

afterEach(() => {
  if (project.isOpen) project.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('models', () => {
  it('registers models with lineage, config and metrics, checkpoints relative to the cache', () => {
    const enc = project.addModel({ kind: 'encoder', checkpointPath: checkpoint('enc.ckpt'), pretextInit: 'inpainting', config: { task: 'inpainting' } });
    const seg = project.addModel(model('seg.ckpt', { parentId: enc.id, pretextInit: 'inpainting', valMetrics: { dice: 0.81, perClass: [0.9, 0.7] } }));
    expect(seg).toMatchObject({
      kind: 'segmentation',
      checkpointPath: 'checkpoints/seg.ckpt',
      absoluteCheckpointPath: project.cachePath('checkpoints', 'seg.ckpt'),
      parentId: enc.id,
      pretextInit: 'inpainting',
      config: { depth: 4, baseFilters: 16 },
      valMetrics: { dice: 0.81, perClass: [0.9, 0.7] },
      promoted: false,
    });
    // Relative to the cache folder works as well as absolute inside it.
    writeFileSync(project.cachePath('checkpoints', 'rel.ckpt'), 'x');
    expect(project.addModel({ kind: 'segmentation', checkpointPath: 'checkpoints/rel.ckpt', config: {} }).checkpointPath).toBe('checkpoints/rel.ckpt');
    expect(project.listModels().map((m) => m.id)).toEqual([enc.id, seg.id, 3]);
    expect(project.listModels({ kind: 'encoder' }).map((m) => m.id)).toEqual([enc.id]);
    expect(project.setModelMetrics(seg.id, { dice: 0.83 }).valMetrics).toEqual({ dice: 0.83 });
    expect(project.getModel(999)).toBeNull();
  });

  it('refuses checkpoints outside the cache or missing, unknown parents, and non-JSON config', () => {
    const outside = path.join(dir, 'outside.ckpt');
    writeFileSync(outside, 'x');
    expectStoreError(() => project.addModel({ kind: 'segmentation', checkpointPath: outside, config: {} }), 'argument', /not inside the project's cache/);
    expectStoreError(() => project.addModel({ kind: 'segmentation', checkpointPath: '../../outside.ckpt', config: {} }), 'argument', /not inside/);
    expectStoreError(() => project.addModel({ kind: 'segmentation', checkpointPath: 'checkpoints/none.ckpt', config: {} }), 'argument', /not found/);
    expectStoreError(() => project.addModel(model('a.ckpt', { parentId: 42 })), 'argument', /parent model 42/);
    expectStoreError(() => project.addModel(model('b.ckpt', { config: { lr: NaN } })), 'argument', /config/);
    expectStoreError(() => project.setModelMetrics(77, { dice: 1 }), 'argument', /no model with id 77/);
    expect(project.listModels()).toEqual([]);
  });

  it('keeps exactly one model promoted; rollback walks back through earlier promotions', () => {
    const [a, b, c] = ['a', 'b', 'c'].map((n) => project.addModel(model(`${n}.ckpt`)));
    expect(project.promotedModel()).toBeNull();
    expectStoreError(() => project.rollbackModel(), 'argument', /no model is promoted/);

    expect(project.promoteModel(a.id, { reason: 'first' }).promoted).toBe(true);
    expectStoreError(() => project.rollbackModel(), 'argument', /no earlier one/);
    project.promoteModel(b.id);
    project.promoteModel(b.id); // no-op: not a second history entry
    project.promoteModel(c.id);
    const promoted = () => project.listModels().filter((m) => m.promoted).map((m) => m.id);
    expect(promoted()).toEqual([c.id]);

    expect(project.rollbackModel().id).toBe(b.id);
    expect(promoted()).toEqual([b.id]);
    expect(project.rollbackModel().id).toBe(a.id);
    expect(promoted()).toEqual([a.id]);
    expectStoreError(() => project.rollbackModel(), 'argument', /no earlier one/);

    // A new promotion after rollbacks stacks on what is current.
    project.promoteModel(c.id);
    expect(project.rollbackModel().id).toBe(a.id);
    expect(project.listModels()).toHaveLength(3);
    expectStoreError(() => project.promoteModel(99), 'argument', /no model with id 99/);
    expect(promoted()).toEqual([a.id]);
  });

  it('the database refuses a second promoted model whatever writes it', () => {
    const [a, b] = ['a', 'b'].map((n) => project.addModel(model(`${n}.ckpt`)));
    project.promoteModel(a.id);
    expect(() => project.database.prepare('UPDATE models SET promoted = 1 WHERE id = ?').run(b.id)).toThrow(/UNIQUE/);
  });
});

describe('predictions and label next', () => {
  it('stores masks and uncertainty maps losslessly, one per image and model', async () => {
    const [img] = await addImages(1);
    const m = project.addModel(model('m.ckpt'));
    const mask = new Uint8Array(W * H).map((_, i) => i % 3);
    const unc = new Float32Array(W * H).map((_, i) => Math.fround(i / 47) + 1e-7);
    const info = project.addPrediction({ imageId: img, modelId: m.id, mask: { width: W, height: H, data: mask }, uncertainty: { width: W, height: H, data: unc }, uncertaintyScore: 0.25 });
    expect(info).toMatchObject({ imageId: img, modelId: m.id, dtype: 'uint8', uncertaintyScore: 0.25, hasUncertainty: true });
    expect(project.getImage(img)!.status).toBe('proposed');
    const back = project.getPrediction(img, m.id)!;
    expect(back.mask.data).toEqual(mask);
    expect(back.uncertainty!.data).toEqual(unc);

    // Same model again replaces (an idempotent re-import), it does not add a row.
    const mask2 = new Int32Array(W * H).fill(7);
    project.addPrediction({ imageId: img, modelId: m.id, mask: { width: W, height: H, data: mask2 }, uncertaintyScore: 0.1 });
    expect(project.listPredictions(img)).toHaveLength(1);
    const replaced = project.getPrediction(img)!;
    expect(replaced.mask.data).toEqual(mask2);
    expect(replaced.uncertainty).toBeNull();
    expect(replaced.uncertaintyScore).toBe(0.1);
  });

  it('refuses predictions for unknown images or models, or of the wrong size', async () => {
    const [img] = await addImages(1);
    const m = project.addModel(model('m.ckpt'));
    const mask = { width: W, height: H, data: new Uint8Array(W * H) };
    expectStoreError(() => project.addPrediction({ imageId: 99, modelId: m.id, mask }), 'argument', /no image with id 99/);
    expectStoreError(() => project.addPrediction({ imageId: img, modelId: 99, mask }), 'argument', /does not exist/);
    expectStoreError(() => project.addPrediction({ imageId: img, modelId: m.id, mask: { width: H, height: W, data: mask.data } }), 'argument', /is 8x6/);
    expectStoreError(
      () => project.addPrediction({ imageId: img, modelId: m.id, mask, uncertainty: { width: W, height: H, data: new Float32Array(3) } }),
      'argument',
      /uncertainty/,
    );
    expect(project.listPredictions(img)).toEqual([]);
    expect(project.getImage(img)!.status).toBe('unlabeled');
  });

  it('label next: unlabeled images by uncertainty, highest first, unscored last', async () => {
    const ids = await addImages(6);
    const old = project.addModel(model('old.ckpt'));
    const cur = project.addModel(model('cur.ckpt'));
    const mask = { width: W, height: H, data: new Uint8Array(W * H) };
    const scores: [number, number, number | null][] = [
      [ids[0], old.id, 0.9],
      [ids[0], cur.id, 0.2], // newer prediction wins by default
      [ids[1], cur.id, 0.7],
      [ids[2], cur.id, 0.95], // labeled below: excluded
      [ids[3], cur.id, 0.5],
      [ids[4], cur.id, null],
    ];
    for (const [imageId, modelId, uncertaintyScore] of scores) project.addPrediction({ imageId, modelId, mask, uncertaintyScore });
    project.addLabelVersion({ imageId: ids[2], mask, source: 'accepted_proposal' });

    const next = project.labelNext();
    expect(next.map((e) => [e.image.id, e.uncertaintyScore])).toEqual([
      [ids[1], 0.7],
      [ids[3], 0.5],
      [ids[0], 0.2],
      [ids[4], null],
      [ids[5], null],
    ]);
    expect(next[0].modelId).toBe(cur.id);
    expect(next[4].modelId).toBeNull();
    expect(project.labelNext({ limit: 2 }).map((e) => e.image.id)).toEqual([ids[1], ids[3]]);
    expect(project.labelNext({ modelId: old.id, limit: 1 }).map((e) => [e.image.id, e.uncertaintyScore])).toEqual([[ids[0], 0.9]]);
    project.setImageSplit([ids[3], ids[4]], 'val');
    expect(project.labelNext({ split: 'val' }).map((e) => e.image.id)).toEqual([ids[3], ids[4]]);
    // The plan uses the per-image index, not a scan of all predictions per image.
    const plan = project.database
      .prepare("EXPLAIN QUERY PLAN SELECT id FROM predictions WHERE image_id = 1 ORDER BY created_at DESC, id DESC LIMIT 1")
      .all() as { detail: string }[];
    expect(plan.map((p) => p.detail).join(' ')).toMatch(/predictions_by_image/);
  });

  it('survives closing and reopening', async () => {
    const [img] = await addImages(1);
    const m = project.addModel(model('m.ckpt'));
    project.promoteModel(m.id);
    project.addPrediction({ imageId: img, modelId: m.id, mask: { width: W, height: H, data: new Uint16Array(W * H).fill(300) }, uncertaintyScore: 0.4 });
    project.close();
    project = openProject(path.join(dir, 'proj'));
    expect(project.promotedModel()!.id).toBe(m.id);
    expect(project.getPrediction(img)!.mask.data).toEqual(new Uint16Array(W * H).fill(300));
  });
});

describe('the val split training judges by', () => {
  it('grows to a fifth of the labeled images as labels arrive, taking only images without a split', async () => {
    const ids = await addImages(12);
    const label = (id: number) => project.addLabelVersion({ imageId: id, mask: { width: W, height: H, data: new Uint8Array(W * H).fill(1) }, source: 'manual' });
    const valIds = () => project.labeledImages({ split: 'val' }).map((l) => l.image.id);
    expect([0, 1, 2, 4, 5, 7, 8, 12].map(valImagesFor)).toEqual([0, 0, 1, 1, 1, 1, 2, 2]);
    label(ids[0]);
    ensureValidationSplit(project);
    expect(valIds()).toEqual([]);
    label(ids[1]);
    ensureValidationSplit(project);
    const first = valIds();
    expect(first).toHaveLength(1);
    // An image the user put in train stays there; the next val image comes from the unassigned ones.
    project.setImageSplit(ids[2], 'train');
    for (const id of ids.slice(2, 8)) label(id);
    ensureValidationSplit(project);
    const grown = valIds();
    expect(grown).toHaveLength(2);
    expect(grown).toEqual(expect.arrayContaining(first));
    expect(grown).not.toContain(ids[2]);
    // Enough val images: nothing moves.
    ensureValidationSplit(project);
    expect(valIds()).toEqual(grown);
  });

  it('grows from images the promoted model cannot have trained on, before older ones', async () => {
    const ids = await addImages(10);
    const hashOf = new Map(project.listImages().map((im) => [im.id, im.contentHash]));
    // Label in hash order, so that hash order alone would pick the oldest labels.
    const byHash = [...ids].sort((a, b) => (hashOf.get(a) as string).localeCompare(hashOf.get(b) as string));
    const label = (id: number) => project.addLabelVersion({ imageId: id, mask: { width: W, height: H, data: new Uint8Array(W * H).fill(1) }, source: 'manual' });
    for (const id of byHash.slice(0, 4)) label(id);
    ensureValidationSplit(project);
    const [firstVal] = project.labeledImages({ split: 'val' }).map((l) => l.image.id);
    const trainedOn = byHash.slice(0, 4).filter((id) => id !== firstVal);
    project.promoteModel(project.addModel(model('seg.ckpt')).id);
    await new Promise((r) => setTimeout(r, 5)); // labels after the model, not in the same millisecond
    const fresh = byHash.slice(4, 10);
    for (const id of fresh) label(id);
    ensureValidationSplit(project);
    const added = project.labeledImages({ split: 'val' }).map((l) => l.image.id).filter((id) => id !== firstVal);
    expect(added).toHaveLength(1);
    expect(fresh).toContain(added[0]);
    // Without the preference, the smallest hash among the unassigned would have been a trained-on image.
    const unassignedBefore = [...trainedOn, ...fresh].sort((a, b) => (hashOf.get(a) as string).localeCompare(hashOf.get(b) as string));
    expect(trainedOn).toContain(unassignedBefore[0]);
  });
});
