/**
 * The application service in-process, on a real project database: path checks against the
 * project root (symlinks included), argument errors before any handler runs, stroke patches that
 * widen the label type, and the retrain policy queuing a training.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { AppService } from '../../src/app/service';
import type { JobProcessHandle } from '../../src/jobs/runner';
import type { ToJobProcess } from '../../src/jobs/protocol';
import { unwrap } from '../../src/shared';
import { openProject } from '../../src/store';

const temp = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

function service() {
  const sent: ToJobProcess[] = [];
  const launcher = (): JobProcessHandle => ({ pid: 1, send: (m) => sent.push(m), onMessage: () => {}, onExit: () => {}, kill: () => {} });
  return { app: new AppService({ shell: 'browser', launcher, stateDir: temp('maskloop-state-') }), sent };
}

let open: AppService | null = null;
afterEach(async () => {
  await open?.close();
  open = null;
});

async function projectWithImage() {
  const { app, sent } = service();
  open = app;
  const dir = path.join(temp('maskloop-svc-'), 'p');
  unwrap(await app.invoke('project:create', { dir }));
  await sharp(new Uint8Array(16 * 8).map((_, i) => i), { raw: { width: 16, height: 8, channels: 1 } }).png().toFile(path.join(dir, 'a.png'));
  // Images come in through the job process; here the store adds one directly, as that process would.
  const p = openProject(dir);
  const { image } = await p.addImage({ path: path.join(dir, 'a.png'), width: 16, height: 8, channels: 1, bitDepth: 8, format: 'png' });
  p.close();
  return { app, dir, imageId: image.id, sent };
}

describe('AppService', () => {
  it('refuses bad arguments before any handler runs, with the kind argument', async () => {
    const { app } = service();
    open = app;
    expect(await app.invoke('images:get', { imageId: 1 })).toMatchObject({ ok: false, error: { kind: 'argument', message: expect.stringMatching(/no project is open/) } });
    expect(await app.invoke('project:open', { dir: '/definitely/not/here' })).toMatchObject({ ok: false, error: { kind: 'argument' } });
    expect(await app.invoke('project:open', null)).toMatchObject({ ok: false, error: { kind: 'argument' } });
    expect(await app.invoke('dialog:chooseFolder', {})).toMatchObject({ ok: false, error: { kind: 'argument', message: expect.stringMatching(/fs:listFolders/) } });
  });

  it('refuses a label write aimed at another project than the open one (image ids repeat across projects)', async () => {
    const { app, imageId } = await projectWithImage();
    const { uuid } = unwrap(await app.invoke('project:summary', {}));
    const mask = { width: 16, height: 8, data: new Uint8Array(128).fill(1) };
    const elsewhere = '6f0b3c1e-2d4a-4b8c-9e7f-0a1b2c3d4e5f';
    for (const [channel, request] of [
      ['labels:save', { projectUuid: elsewhere, imageId, mask, source: 'manual', timeSpentMs: 0 }],
      ['proposals:decide', { projectUuid: elsewhere, imageId, decision: 'reject', timeSpentMs: 0 }],
    ] as const) {
      expect(await app.invoke(channel, request), channel).toMatchObject({ ok: false, error: { kind: 'argument', message: expect.stringMatching(/another project/) } });
    }
    const saved = unwrap(await app.invoke('labels:save', { projectUuid: uuid, imageId, mask, source: 'manual', timeSpentMs: 0 }));
    expect(await app.invoke('labels:patch', { projectUuid: elsewhere, imageId, baseVersion: saved.version, x: 0, y: 0, width: 1, height: 1, data: new Uint8Array(1), source: 'manual', timeSpentMs: 0 }))
      .toMatchObject({ ok: false, error: { kind: 'argument', message: expect.stringMatching(/another project/) } });
    expect(unwrap(await app.invoke('labels:history', { imageId }))).toHaveLength(1);
  });

  it('keeps the class names in the project: a reopened project shows them, bad lists are refused', async () => {
    const { app, dir } = await projectWithImage();
    expect(unwrap(await app.invoke('project:summary', {})).settings.classNames).toEqual(['foreground']);
    unwrap(await app.invoke('project:setSettings', { classNames: ['nucleus', 'cytoplasm', 'débris 细胞'] }));
    for (const bad of [[], ['  '], Array.from({ length: 10 }, (_, i) => `c${i}`), [42]]) {
      expect(await app.invoke('project:setSettings', { classNames: bad }), JSON.stringify(bad)).toMatchObject({ ok: false, error: { kind: 'argument' } });
    }
    unwrap(await app.invoke('project:close', {}));
    const reopened = unwrap(await app.invoke('project:open', { dir }));
    expect(reopened.settings.classNames).toEqual(['nucleus', 'cytoplasm', 'débris 细胞']);
  });

  it('provenance cannot be forged: accepted proposals come from the decision only, edited ones need a proposal', async () => {
    const { app, imageId } = await projectWithImage();
    const mask = { width: 16, height: 8, data: new Uint8Array(128).fill(1) };
    expect(await app.invoke('labels:save', { imageId, mask, source: 'accepted_proposal', timeSpentMs: 0 })).toMatchObject({ ok: false, error: { kind: 'argument' } });
    expect(await app.invoke('labels:save', { imageId, mask, source: 'edited_proposal', timeSpentMs: 0 }))
      .toMatchObject({ ok: false, error: { kind: 'argument', message: expect.stringMatching(/no proposal/) } });
    expect(unwrap(await app.invoke('labels:history', { imageId }))).toEqual([]);
  });

  it('removes a class only while no label uses it', async () => {
    const { app, imageId } = await projectWithImage();
    unwrap(await app.invoke('project:setSettings', { classNames: ['nucleus', 'cytoplasm', 'debris'] }));
    const data = new Uint8Array(128);
    data[5] = 2;
    unwrap(await app.invoke('labels:save', { imageId, mask: { width: 16, height: 8, data }, source: 'manual', timeSpentMs: 0 }));
    // Class 3 is unused: it goes. Class 2 is painted: it stays, and the refusal names the image.
    expect(unwrap(await app.invoke('project:setSettings', { classNames: ['nucleus', 'cytoplasm'] })).classNames).toEqual(['nucleus', 'cytoplasm']);
    expect(await app.invoke('project:setSettings', { classNames: ['nucleus'] })).toMatchObject({ ok: false, error: { kind: 'argument', message: expect.stringMatching(/class 2 is used in 1 image.*a\.png/) } });
    expect(unwrap(await app.invoke('project:summary', {})).settings.classNames).toEqual(['nucleus', 'cytoplasm']);
  });

  it('keeps exports inside the project folder, symlinks included', async () => {
    const { app, dir } = await projectWithImage();
    const outside = temp('maskloop-outside-');
    fs.mkdirSync(path.join(dir, 'exports'), { recursive: true });
    fs.symlinkSync(outside, path.join(dir, 'exports', 'link'));
    const escaped = await app.invoke('project:export', { format: 'png', folder: 'link' });
    expect(escaped).toMatchObject({ ok: false, error: { kind: 'argument', message: expect.stringMatching(/outside the project/) } });
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(unwrap(await app.invoke('project:export', { format: 'coco', folder: 'fine' }))).toMatchObject({ images: 0 });
  });

  it('lists folders for the browser folder picker', async () => {
    const { app, dir } = await projectWithImage();
    const listing = unwrap(await app.invoke('fs:listFolders', { dir: path.dirname(dir) }));
    expect(listing.folders).toEqual([{ name: 'p', path: dir, isProject: true }]);
    const inside = unwrap(await app.invoke('fs:listFolders', { dir }));
    expect(inside).toMatchObject({ isProject: true, imageFiles: 1 });
  });

  it('applies stroke patches, widening uint8 labels to uint16 when the ids need it', async () => {
    const { app, imageId } = await projectWithImage();
    const v1 = unwrap(await app.invoke('labels:save', { imageId, mask: { width: 16, height: 8, data: new Uint8Array(128).fill(2) }, source: 'manual', timeSpentMs: 10 }));
    expect(v1.dtype).toBe('uint8');
    // The mask was compressed and stored by the pixel worker thread, not on the service's thread.
    expect(app.pixelWorkerThreadId).not.toBeNull();
    const wrongSize = await app.invoke('labels:save', { imageId, mask: { width: 8, height: 16, data: new Uint8Array(128) }, source: 'manual', timeSpentMs: 10 });
    expect(wrongSize).toMatchObject({ ok: false, error: { kind: 'argument' } });
    const v2 = unwrap(await app.invoke('labels:patch', { imageId, baseVersion: 1, x: 3, y: 2, width: 2, height: 1, data: new Uint16Array([700, 701]), source: 'manual', timeSpentMs: 10 }));
    expect(v2).toMatchObject({ version: 2, dtype: 'uint16' });
    const body = (await app.imageLabel(imageId))!;
    const data = new Uint16Array(body.body.buffer.slice(body.body.byteOffset, body.body.byteOffset + 256));
    expect([data[2 * 16 + 3], data[2 * 16 + 4], data[0]]).toEqual([700, 701, 2]);
  });

  it('queues a training when the retrain policy is due (counting images, not strokes)', async () => {
    const { app, dir, imageId, sent } = await projectWithImage();
    unwrap(await app.invoke('project:setSettings', { autoRetrainAfterLabels: 2 }));
    const mask = { width: 16, height: 8, data: new Uint8Array(128) };
    // Strokes on one image are one new label, however many.
    for (let stroke = 0; stroke < 3; stroke++) unwrap(await app.invoke('labels:save', { imageId, mask, source: 'manual', timeSpentMs: 10 }));
    expect(sent).toHaveLength(0);
    expect(unwrap(await app.invoke('project:summary', {})).retrain).toMatchObject({ newLabels: 1, needed: 2, due: false });
    fs.copyFileSync(path.join(dir, 'a.png'), path.join(dir, 'b.png'));
    const p = openProject(dir);
    const { image: second } = await p.addImage({ path: path.join(dir, 'b.png'), width: 16, height: 8, channels: 1, bitDepth: 8, format: 'png' });
    p.close();
    unwrap(await app.invoke('labels:save', { imageId: second.id, mask, source: 'manual', timeSpentMs: 10 }));
    expect(sent).toEqual([expect.objectContaining({ type: 'start', request: expect.objectContaining({ kind: 'train', when: 'ifDue' }) })]);
    // Not twice while one is pending.
    unwrap(await app.invoke('labels:save', { imageId, mask, source: 'manual', timeSpentMs: 10 }));
    expect(sent).toHaveLength(1);
    expect(unwrap(await app.invoke('jobs:list', {}))[0]).toMatchObject({ kind: 'train', state: 'running' });
  });
});
