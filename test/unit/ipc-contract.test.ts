import { describe, expect, it } from 'vitest';
import { CHANNEL_NAMES, CHANNELS, decodeMaskBlock, decodePixelBlock, fromWire, isChannel, parseRequest, toWire } from '../../src/shared';

describe('IPC contract', () => {
  it('names every channel once, as namespace:action', () => {
    expect(new Set(CHANNEL_NAMES).size).toBe(CHANNEL_NAMES.length);
    for (const name of CHANNEL_NAMES) expect(name).toMatch(/^[a-z]+:[a-zA-Z]+$/);
    expect(isChannel('images:get')).toBe(true);
    expect(isChannel('constructor')).toBe(false);
  });

  it('fills defaults and rejects unknown keys, wrong types and relative paths', () => {
    const list = parseRequest('images:list', {});
    expect(list).toEqual({ ok: true, value: { sort: 'added', offset: 0, limit: 100_000 } });
    const extra = parseRequest('images:get', { imageId: 1, evil: true });
    expect(extra.ok).toBe(false);
    const wrongType = parseRequest('images:get', { imageId: '1' });
    expect(wrongType.ok).toBe(false);
    if (!wrongType.ok) expect(wrongType.message).toMatch(/images:get: invalid request at imageId/);
    expect(parseRequest('project:open', { dir: 'relative/path' }).ok).toBe(false);
    expect(parseRequest('project:open', { dir: '/abs/\0bad' }).ok).toBe(false);
    expect(parseRequest('project:open', { dir: 'C:\\Users\\me\\project' }).ok).toBe(true);
    expect(parseRequest('project:export', { format: 'png', folder: '../escape' }).ok).toBe(false);
    expect(parseRequest('project:export', { format: 'png', folder: 'labels 2026-01' }).ok).toBe(true);
  });

  it('checks mask sizes and job requests by kind', () => {
    const mask = { width: 2, height: 2, data: new Uint8Array(4) };
    expect(parseRequest('labels:save', { imageId: 1, mask, source: 'manual', timeSpentMs: 10 }).ok).toBe(true);
    expect(parseRequest('labels:save', { imageId: 1, mask: { ...mask, data: new Uint8Array(3) }, source: 'manual', timeSpentMs: 10 }).ok).toBe(false);
    expect(parseRequest('labels:save', { imageId: 1, mask: { ...mask, data: new Float32Array(4) }, source: 'manual', timeSpentMs: 10 }).ok).toBe(false);
    expect(parseRequest('labels:save', { imageId: 1, mask, source: 'imported', timeSpentMs: 10 }).ok).toBe(false);
    const train = parseRequest('jobs:start', { kind: 'train', steps: 20 });
    expect(train).toEqual({ ok: true, value: { kind: 'train', steps: 20, target: 'semantic', warmStart: true, semiSupervised: false, when: 'now' } });
    expect(parseRequest('jobs:start', { kind: 'pretrain', tasks: ['not-a-task'] }).ok).toBe(false);
    // The target in its one text form, with the engine's class limit.
    expect(parseRequest('jobs:start', { kind: 'train', target: 'semantic:254' }).ok).toBe(true);
    const tooMany = parseRequest('jobs:start', { kind: 'train', target: 'semantic:255' });
    expect(tooMany.ok).toBe(false);
    if (!tooMany.ok) expect(tooMany.message).toMatch(/1 to 254 classes, not 255/);
    expect(parseRequest('jobs:start', { kind: 'train', target: { kind: 'semantic', classes: 2 } }).ok).toBe(false);
    expect(parseRequest('jobs:start', { kind: 'rm -rf' }).ok).toBe(false);
    expect(Object.keys(CHANNELS)).toContain('jobs:resume');
  });

  it('carries typed arrays through JSON and back', () => {
    const value = { a: new Uint16Array([0, 1, 65535]), b: [new Int32Array([-5, 7])], c: new Float32Array([0.5]), d: 'text', e: null };
    const back = fromWire(JSON.parse(JSON.stringify(toWire(value)))) as typeof value;
    expect(back.a).toBeInstanceOf(Uint16Array);
    expect([...back.a]).toEqual([0, 1, 65535]);
    expect([...back.b[0]]).toEqual([-5, 7]);
    expect(back.c[0]).toBe(0.5);
    expect(back.d).toBe('text');
    expect(back.e).toBeNull();
    // A large array survives the chunked base64 path.
    const big = new Uint8Array(200_000).map((_, i) => i % 251);
    expect((fromWire(JSON.parse(JSON.stringify(toWire(big)))) as Uint8Array).every((v, i) => v === i % 251)).toBe(true);
    // A malformed record stays an object, which schema validation then refuses.
    expect(fromWire({ $typed: 'uint16', base64: 'AAAA' })).toEqual({ $typed: 'uint16', base64: 'AAAA' });
  });

  it('decodes binary pixel and mask responses from their headers', () => {
    const headers = new Headers({
      'x-maskloop-width': '2', 'x-maskloop-height': '1', 'x-maskloop-channels': '1', 'x-maskloop-bit-depth': '16',
      'x-maskloop-dtype': 'uint16', 'x-maskloop-region': '3,4,2,1', 'x-maskloop-image-width': '10', 'x-maskloop-image-height': '8',
    });
    const block = decodePixelBlock(headers, new Uint16Array([1000, 65535]).buffer);
    expect([...block.data]).toEqual([1000, 65535]);
    expect(block.region).toEqual({ x: 3, y: 4, width: 2, height: 1 });
    const maskHeaders = new Headers({ 'x-maskloop-width': '2', 'x-maskloop-height': '1', 'x-maskloop-dtype': 'uint8', 'x-maskloop-has-unknown': '1', 'x-maskloop-label-version': '3' });
    const mask = decodeMaskBlock(maskHeaders, new Uint8Array([1, 0, 0, 1]).buffer);
    expect([...mask.data]).toEqual([1, 0]);
    expect([...(mask.unknown ?? [])]).toEqual([0, 1]);
    expect(mask.version).toBe(3);
  });
});
