/**
 * The app's pixel worker thread on a real project: answers and error kinds cross the thread
 * boundary intact, a thread that dies fails the calls it held with an engine error instead of
 * hanging, and the next call starts a new thread that reopens the project.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/app/errors';
import { PixelWorker } from '../../src/app/pixelWorker';
import { createProject } from '../../src/store';

let worker: PixelWorker | null = null;
afterEach(async () => {
  await worker?.terminate();
  worker = null;
});

async function projectWithLabel() {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-pixw-')), 'p');
  const project = createProject(dir, { name: 'pixels' });
  fs.writeFileSync(path.join(dir, 'a.png'), 'not decoded here');
  const { image } = await project.addImage({ path: path.join(dir, 'a.png'), width: 4, height: 2, channels: 1, bitDepth: 8, format: 'png' });
  project.addLabelVersion({ imageId: image.id, mask: { width: 4, height: 2, data: new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]) }, source: 'manual' });
  project.close();
  return { dir, imageId: image.id };
}

async function failure(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

describe('PixelWorker', () => {
  it('serves a label from its own connection and passes error kinds back', async () => {
    const { dir, imageId } = await projectWithLabel();
    worker = new PixelWorker();
    expect((await failure(worker.call('labelBody', imageId))).kind).toBe('argument');
    await worker.open(dir);
    const body = (await worker.call('labelBody', imageId))!;
    expect([...body.body]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const stale = await failure(worker.call('patchLabel', { imageId, baseVersion: 5, x: 0, y: 0, width: 1, height: 1, data: new Uint8Array([9]), source: 'manual' }));
    expect(stale.kind).toBe('argument');
    expect(stale.message).toMatch(/not the latest/);
  });

  it('fails the calls a dead thread held, then restarts and reopens the project on the next call', async () => {
    const { dir, imageId } = await projectWithLabel();
    worker = new PixelWorker();
    await worker.open(dir);
    const first = worker.threadId;
    await worker.kill();
    expect(worker.threadId).toBeNull();
    // A fresh thread cannot answer before it has loaded, so this call is still pending when it dies.
    const held = worker.call('labelBody', imageId);
    const second = worker.threadId;
    expect(second).not.toBeNull();
    expect(second).not.toBe(first);
    await worker.kill();
    const lost = await failure(held);
    expect(lost.kind).toBe('engine');
    expect(lost.message).toMatch(/pixel worker stopped/);
    const patched = await worker.call('patchLabel', { imageId, baseVersion: 1, x: 3, y: 1, width: 1, height: 1, data: new Uint8Array([42]), source: 'manual' });
    expect(patched.version).toBe(2);
    expect([...(await worker.call('labelBody', imageId))!.body]).toEqual([0, 1, 2, 3, 4, 5, 6, 42]);
  });
});
