import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProject, openProject, type LabelArray, type Project } from '../../src/store';
import { expectStoreError } from '../helpers/store';

let dir: string;
let project: Project;
let imageId: number;
const W = 37;
const H = 23;


/** Values covering each type's extremes, so any truncation or byte-order slip shows. */
function pattern<T extends LabelArray>(ctor: { new (n: number): T }, seed: number): T {
  const a = new ctor(W * H);
  const extremes =
    a instanceof Uint8Array ? [0, 1, 255, 128] : a instanceof Uint16Array ? [0, 1, 65535, 256, 4095] : [0, -1, 2147483647, -2147483648, 65536, 70000];
  for (let i = 0; i < a.length; i++) a[i] = i % 7 === 0 ? extremes[(i / 7 + seed) % extremes.length] : Math.floor(i / 50 + seed) % 5;
  return a;
}

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'maskloop-labels-'));
  project = createProject(path.join(dir, 'proj'), { name: 'labels' });
  writeFileSync(path.join(dir, 'a.tif'), 'image bytes');
  ({
    image: { id: imageId },
  } = await project.addImage({ path: path.join(dir, 'a.tif'), width: W, height: H, channels: 1, bitDepth: 16, format: 'tiff' }));
});

afterEach(() => {
  if (project.isOpen) project.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('label versions', () => {
  it.each([
    ['uint8', Uint8Array],
    ['uint16', Uint16Array],
    ['int32', Int32Array],
  ] as const)('round-trip %s masks and unknown-pixel masks exactly', (dtype, ctor) => {
    const data = pattern(ctor as unknown as { new (n: number): LabelArray }, 3);
    const unknown = new Uint8Array(W * H);
    for (let i = 0; i < unknown.length; i += 3) unknown[i] = i % 2 ? 1 : 255;
    const info = project.addLabelVersion({ imageId, mask: { width: W, height: H, data }, unknown, source: 'manual', author: 'zoë' });
    expect(info).toMatchObject({ imageId, version: 1, parentVersion: null, dtype, width: W, height: H, author: 'zoë', hasUnknown: true });
    project.close();
    project = openProject(path.join(dir, 'proj'));
    const back = project.latestLabel(imageId)!;
    expect(back.mask.data).toBeInstanceOf(ctor);
    expect(back.mask.data).toEqual(data);
    expect(back.unknown).toEqual(unknown);
    expect(back.mask.width).toBe(W);
    expect(back.mask.height).toBe(H);
  });

  it('round-trips subarray views (non-zero byteOffset) and stores no unknown mask when none is given', () => {
    const backing = new Uint16Array(W * H + 5);
    backing.set(pattern(Uint16Array, 1), 5);
    const view = backing.subarray(5);
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data: view }, source: 'imported' });
    const back = project.latestLabel(imageId)!;
    expect(back.mask.data).toEqual(new Uint16Array(view));
    expect(back.unknown).toBeNull();
    expect(back.hasUnknown).toBe(false);
  });

  it('numbers versions, links parents, and never loses an earlier one', () => {
    const masks = [1, 2, 3].map((s) => pattern(Int32Array, s));
    for (const [i, data] of masks.entries()) {
      project.addLabelVersion({ imageId, mask: { width: W, height: H, data }, source: i === 0 ? 'accepted_proposal' : 'edited_proposal' });
    }
    const history = project.labelHistory(imageId);
    expect(history.map((h) => [h.version, h.parentVersion, h.source])).toEqual([
      [1, null, 'accepted_proposal'],
      [2, 1, 'edited_proposal'],
      [3, 2, 'edited_proposal'],
    ]);
    for (const [i, data] of masks.entries()) expect(project.getLabelVersion(imageId, i + 1)!.mask.data).toEqual(data);
    expect(project.getLabelVersion(imageId, 4)).toBeNull();
    expect(project.getImage(imageId)!.status).toBe('labeled');
  });

  it('records an explicit parent (an edit begun from an older version) and refuses one that does not exist', () => {
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data: pattern(Uint8Array, 0) }, source: 'manual' });
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data: pattern(Uint8Array, 1) }, source: 'manual' });
    const branch = project.addLabelVersion({ imageId, mask: { width: W, height: H, data: pattern(Uint8Array, 2) }, source: 'manual', parentVersion: 1 });
    expect(branch).toMatchObject({ version: 3, parentVersion: 1 });
    const scratch = project.addLabelVersion({ imageId, mask: { width: W, height: H, data: pattern(Uint8Array, 2) }, source: 'manual', parentVersion: null });
    expect(scratch).toMatchObject({ version: 4, parentVersion: null });
    expectStoreError(
      () => project.addLabelVersion({ imageId, mask: { width: W, height: H, data: pattern(Uint8Array, 2) }, source: 'manual', parentVersion: 9 }),
      'argument',
      /no label version 9/,
    );
    expect(project.labelHistory(imageId)).toHaveLength(4);
  });

  it('restoring creates a new version equal to the old one, and the restore can itself be undone', () => {
    const a = pattern(Uint16Array, 1);
    const b = pattern(Uint16Array, 2);
    const unknownA = new Uint8Array(W * H).fill(1, 0, 40);
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data: a }, unknown: unknownA, source: 'manual', author: 'ann' });
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data: b }, source: 'manual', author: 'bob' });
    const restored = project.restoreLabelVersion(imageId, 1, { author: 'cy' });
    expect(restored).toMatchObject({ version: 3, parentVersion: 2, restoredFrom: 1, source: 'manual', author: 'cy', hasUnknown: true });
    const latest = project.latestLabel(imageId)!;
    expect(latest.mask.data).toEqual(a);
    expect(latest.unknown).toEqual(unknownA);
    const again = project.restoreLabelVersion(imageId, 2);
    expect(again).toMatchObject({ version: 4, restoredFrom: 2, author: 'bob' });
    expect(project.latestLabel(imageId)!.mask.data).toEqual(b);
    expect(project.labelHistory(imageId).map((h) => h.version)).toEqual([1, 2, 3, 4]);
    expect(project.getLabelVersion(imageId, 1)!.mask.data).toEqual(a);
    expectStoreError(() => project.restoreLabelVersion(imageId, 7), 'argument', /no label version 7/);
  });

  it('the database itself refuses to update or delete a label version', () => {
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data: pattern(Uint8Array, 0) }, source: 'manual' });
    expect(() => project.database.prepare("UPDATE label_versions SET author = 'x'").run()).toThrow(/immutable/);
    expect(() => project.database.prepare('DELETE FROM label_versions').run()).toThrow(/never deleted/);
    expect(() => project.database.prepare('DELETE FROM images').run()).toThrow(/FOREIGN KEY/);
    expect(project.labelHistory(imageId)).toHaveLength(1);
  });

  it('records an annotation event with the version in the same transaction', () => {
    const v = project.addLabelVersion({
      imageId,
      mask: { width: W, height: H, data: pattern(Uint8Array, 0) },
      source: 'edited_proposal',
      event: { kind: 'correct', timeSpentMs: 4200, pixelsChanged: 310 },
    });
    expect(project.annotationEvents(imageId)).toEqual([
      expect.objectContaining({ imageId, labelVersion: v.version, kind: 'correct', timeSpentMs: 4200, pixelsChanged: 310 }),
    ]);
  });

  it('sets the image status (reviewed on request, back to labeled on a later edit)', () => {
    const data = pattern(Uint8Array, 0);
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data }, source: 'manual', status: 'reviewed' });
    expect(project.getImage(imageId)!.status).toBe('reviewed');
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data }, source: 'manual' });
    expect(project.getImage(imageId)!.status).toBe('labeled');
  });

  it('refuses bad input with argument errors and writes nothing', () => {
    const good = { width: W, height: H, data: pattern(Uint8Array, 0) };
    expectStoreError(() => project.addLabelVersion({ imageId: 999, mask: good, source: 'manual' }), 'argument', /no image with id 999/);
    expectStoreError(() => project.addLabelVersion({ imageId, mask: { width: W, height: H + 1, data: new Uint8Array(W * (H + 1)) }, source: 'manual' }), 'argument', /is 37x23/);
    expectStoreError(() => project.addLabelVersion({ imageId, mask: { width: W, height: H, data: new Uint8Array(5) }, source: 'manual' }), 'argument', /expected 37x23/);
    expectStoreError(
      () => project.addLabelVersion({ imageId, mask: { width: W, height: H, data: new Float32Array(W * H) as unknown as Uint8Array }, source: 'manual' }),
      'argument',
      /Uint8Array, Uint16Array or Int32Array/,
    );
    expectStoreError(() => project.addLabelVersion({ imageId, mask: good, unknown: new Uint8Array(3), source: 'manual' }), 'argument', /unknown/);
    expectStoreError(() => project.addLabelVersion({ imageId, mask: good, source: 'guessed' as 'manual' }), 'argument', /source/);
    expectStoreError(
      () => project.addLabelVersion({ imageId, mask: good, source: 'manual', event: { kind: 'annotate', timeSpentMs: -1 } }),
      'argument',
      /timeSpentMs/,
    );
    expect(project.labelHistory(imageId)).toEqual([]);
    expect(project.latestLabel(imageId)).toBeNull();
  });

  it('merges a stroke rectangle into the latest version, keeping every other pixel and the unknown flags outside it', () => {
    const base = pattern(Uint8Array, 1);
    const unknown = new Uint8Array(W * H).fill(1);
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data: base }, unknown, source: 'manual' });
    const info = project.patchLabelVersion({ imageId, baseVersion: 1, x: 5, y: 3, width: 4, height: 2, data: new Uint8Array(8).fill(9), unknown: null, source: 'manual' });
    expect(info).toMatchObject({ version: 2, parentVersion: 1, dtype: 'uint8', hasUnknown: true });
    const back = project.latestLabel(imageId)!;
    const expected = base.slice();
    const expectedUnknown = unknown.slice();
    for (let y = 3; y < 5; y++) for (let x = 5; x < 9; x++) { expected[y * W + x] = 9; expectedUnknown[y * W + x] = 0; }
    expect(back.mask.data).toEqual(expected);
    expect(back.unknown).toEqual(expectedUnknown);
    // Omitted unknown flags stay as they were.
    project.patchLabelVersion({ imageId, baseVersion: 2, x: 0, y: 0, width: 1, height: 1, data: new Uint8Array([4]), source: 'manual' });
    expect(project.latestLabel(imageId)!.unknown).toEqual(expectedUnknown);
  });

  it('widens the stored type when a stroke brings an id it cannot hold', () => {
    const base = pattern(Uint8Array, 2);
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data: base }, source: 'manual' });
    const info = project.patchLabelVersion({ imageId, baseVersion: 1, x: W - 2, y: H - 1, width: 2, height: 1, data: new Int32Array([70000, 0]), source: 'manual' });
    expect(info.dtype).toBe('int32');
    const back = project.latestLabel(imageId)!.mask.data;
    expect(back).toBeInstanceOf(Int32Array);
    expect([back[W * H - 2], back[W * H - 1], back[0]]).toEqual([70000, 0, base[0]]);
  });

  it('refuses a stroke on a stale version or outside the image, and writes nothing', () => {
    const base = pattern(Uint8Array, 0);
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data: base }, source: 'manual' });
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data: base }, source: 'manual' });
    const stroke = { imageId, x: 0, y: 0, width: 2, height: 2, data: new Uint8Array(4).fill(3), source: 'manual' as const };
    expectStoreError(() => project.patchLabelVersion({ ...stroke, baseVersion: 1 }), 'argument', /not the latest/);
    expectStoreError(() => project.patchLabelVersion({ ...stroke, baseVersion: 2, x: W - 1 }), 'argument', /outside/);
    expectStoreError(() => project.patchLabelVersion({ ...stroke, baseVersion: 2, data: new Uint8Array(3) }), 'argument', /length/);
    expectStoreError(() => project.patchLabelVersion({ ...stroke, imageId: 999, baseVersion: 1 }), 'argument', /no label/);
    expect(project.labelHistory(imageId)).toHaveLength(2);
  });

  it('lists labeled images per split with their latest version, and counts images labeled since a time', () => {
    const data = pattern(Uint8Array, 0);
    const t0 = Date.now() - 1;
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data }, source: 'manual' });
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data }, source: 'manual' });
    project.setImageSplit(imageId, 'train');
    expect(project.labeledImages({ split: 'train' }).map((x) => [x.image.id, x.version])).toEqual([[imageId, 2]]);
    expect(project.labeledImages({ split: ['val', 'test'] })).toEqual([]);
    // Two versions of one image are one newly labeled image.
    expect(project.countLabeledImagesSince(t0)).toBe(1);
    expect(project.countLabeledImagesSince(Date.now() + 1000)).toBe(0);
  });

  it('compresses: a 1024x1024 Int32 mask of a few objects stores far below its 4 MiB', async () => {
    writeFileSync(path.join(dir, 'big.tif'), 'big');
    const { image } = await project.addImage({ path: path.join(dir, 'big.tif'), width: 1024, height: 1024, channels: 1, bitDepth: 8, format: 'tiff' });
    const data = new Int32Array(1024 * 1024);
    for (let y = 0; y < 1024; y++) for (let x = 0; x < 1024; x++) data[y * 1024 + x] = ((x >> 6) + (y >> 6) * 16) % 40;
    project.addLabelVersion({ imageId: image.id, mask: { width: 1024, height: 1024, data }, source: 'manual' });
    const size = project.database.prepare('SELECT length(mask) AS n FROM label_versions WHERE image_id = ?').get(image.id) as { n: number };
    expect(size.n).toBeLessThan(200_000);
    const back = project.latestLabel(image.id)!.mask.data;
    // Byte comparison: toEqual walks a million elements one by one, which takes seconds.
    expect(back).toBeInstanceOf(Int32Array);
    expect(Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(Buffer.from(data.buffer))).toBe(true);
  });

  it('reports a damaged stored mask as a data error', () => {
    project.addLabelVersion({ imageId, mask: { width: W, height: H, data: pattern(Uint8Array, 0) }, source: 'manual' });
    project.database.exec('DROP TRIGGER label_versions_no_update');
    project.database.prepare("UPDATE label_versions SET mask = x'00112233'").run();
    expectStoreError(() => project.latestLabel(imageId), 'data', /not valid zlib/);
  });
});
