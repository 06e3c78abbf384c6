/**
 * The browser fallback server as a real process: its security baseline (token, loopback Host,
 * same-origin POSTs, path traversal, headers), the typed API validated by the contract's schemas,
 * and the pixel/mask endpoints on real files (8-bit ISBI EM slices, a 16-bit image with known values).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../src/imaging/decode';
import { binaryUrls, decodeMaskBlock, decodePixelBlock, type ImageSummary } from '../../src/shared';
import { DATA, fakeRenderer, startServerProcess, tempDir, type ServerProcess } from '../helpers/server';

const isbi = path.join(DATA, 'isbi2012-em', 'images');
const haveData = fs.existsSync(isbi);
if (!haveData) console.warn(`server tests skipped: ${isbi} is missing (set MASKLOOP_DATA)`);

/** A raw HTTP request with full control over headers (fetch would fix Host and Origin for us). */
function raw(port: number, pathname: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathname, method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

describe.skipIf(!haveData)('browser fallback server', () => {
  let server: ServerProcess;
  let projectDir: string;
  let sixteenDir: string;
  const known16 = new Uint16Array(64 * 48).map((_, i) => (i * 997) % 60000 + 300);

  beforeAll(async () => {
    sixteenDir = tempDir('maskloop-16bit-');
    await sharp(known16, { raw: { width: 64, height: 48, channels: 1 } })
      .toColourspace('grey16').png().toFile(path.join(sixteenDir, 'sixteen.png'));
    fs.writeFileSync(path.join(sixteenDir, 'broken.png'), 'not a png');
    projectDir = path.join(tempDir('maskloop-server-'), 'project');
    server = await startServerProcess({ state: tempDir('maskloop-state-'), renderer: fakeRenderer() });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('listens on loopback only and requires the session token everywhere', async () => {
    expect(server.origin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await raw(server.port, '/')).status).toBe(401);
    expect(JSON.parse((await raw(server.port, '/api/events', { headers: { authorization: 'Bearer nope' } })).body)).toMatchObject({ ok: false });
    const noToken = await raw(server.port, '/api/invoke/app:info', { method: 'POST', headers: { 'content-type': 'application/json', 'x-maskloop-request': '1' }, body: '{}' });
    expect(JSON.parse(noToken.body)).toMatchObject({ ok: false, error: { kind: 'argument' } });
    expect((await raw(server.port, `/?token=${'0'.repeat(64)}`)).status).toBe(401);
    // DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host.
    const rebinding = await raw(server.port, `/?token=${server.token}`, { headers: { host: `evil.example:${server.port}` } });
    expect(rebinding.status).toBe(421);
  });

  it('trades the token in the URL for an HttpOnly SameSite cookie, and serves the renderer with CSP and COOP/COEP', async () => {
    const login = await raw(server.port, `/?token=${server.token}`);
    expect(login.status).toBe(302);
    expect(login.headers.location).toBe('/');
    const cookie = String(login.headers['set-cookie']);
    expect(cookie).toMatch(new RegExp(`^maskloop_session_${server.port}=[0-9a-f]{64}; HttpOnly; SameSite=Strict`));
    const page = await raw(server.port, '/', { headers: { cookie: cookie.split(';')[0] } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>maskloop</title>');
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    expect(page.headers['content-security-policy']).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(page.headers['cross-origin-opener-policy']).toBe('same-origin');
    expect(page.headers['cross-origin-embedder-policy']).toBe('require-corp');
    expect(page.headers['x-frame-options']).toBe('DENY');
    const auth = { authorization: `Bearer ${server.token}` };
    for (const traversal of ['/../package.json', '/%2e%2e/package.json', '/..%2fpackage.json', '/%2e%2e%2f%2e%2e%2fetc%2fpasswd']) {
      const r = await raw(server.port, traversal, { headers: auth });
      expect(r.status, traversal).toBe(404);
      expect(r.body).not.toContain('"name": "maskloop"');
    }
  });

  it('refuses cross-origin and header-less POSTs, unknown channels and bad arguments with argument errors', async () => {
    const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json', 'x-maskloop-request': '1' };
    const crossOrigin = await raw(server.port, '/api/invoke/project:close', { method: 'POST', headers: { ...headers, origin: 'https://evil.example' }, body: '{}' });
    expect(crossOrigin.status).toBe(403);
    const noHeader = await raw(server.port, '/api/invoke/project:close', { method: 'POST', headers: { authorization: headers.authorization, 'content-type': 'application/json' }, body: '{}' });
    expect(noHeader.status).toBe(403);
    const formPost = await raw(server.port, '/api/invoke/project:close', { method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' });
    expect(formPost.status).toBe(403);
    const unknown = await raw(server.port, '/api/invoke/fs:deleteEverything', { method: 'POST', headers, body: '{}' });
    expect(JSON.parse(unknown.body)).toMatchObject({ ok: false, error: { kind: 'argument' } });
    const notJson = await raw(server.port, '/api/invoke/app:info', { method: 'POST', headers, body: '{oops' });
    expect(JSON.parse(notJson.body).error.kind).toBe('argument');
    for (const [channel, request] of [
      ['project:open', { dir: 'relative/dir' }],
      ['project:create', { dir: projectDir, extra: 1 }],
      ['images:get', { imageId: -1 }],
      ['jobs:start', { kind: 'shell', command: 'rm -rf /' }],
      ['labels:save', { imageId: 1, mask: { width: 2, height: 2, data: [0, 0, 0, 0] }, source: 'manual', timeSpentMs: 1 }],
    ] as const) {
      const r = await server.api.invoke(channel as 'project:open', request as never);
      expect(r.ok, channel).toBe(false);
      if (!r.ok) expect(r.error.kind).toBe('argument');
    }
    const noProject = await server.api.invoke('images:list', {});
    expect(noProject).toMatchObject({ ok: false, error: { kind: 'argument', message: expect.stringMatching(/no project is open/) } });
  });

  let images: ImageSummary[] = [];

  it('creates a project, imports real images in the job process with progress, and lists rejected files', async () => {
    const created = await server.call('project:create', { dir: projectDir, name: 'EM test' });
    expect(created).toMatchObject({ name: 'EM test', counts: { total: 0 } });
    expect(fs.existsSync(path.join(projectDir, 'project.sqlite'))).toBe(true);
    const job = await server.call('jobs:start', { kind: 'import', folder: isbi });
    expect(job).toMatchObject({ kind: 'import', state: expect.stringMatching(/queued|running/) });
    const done = await server.waitForJob(job.jobId);
    expect(done).toMatchObject({ state: 'completed', runId: expect.any(Number), message: expect.stringMatching(/^30 image\(s\) added/) });
    expect(done.backend).toMatch(/native|wasm|cpu|tensorflow/);
    expect(server.events.some((e) => e.type === 'job' && e.job.jobId === job.jobId && e.job.progress !== null)).toBe(true);
    const second = await server.call('jobs:start', { kind: 'import', folder: sixteenDir, split: 'train' });
    await server.waitForJob(second.jobId);
    const rejected = server.events.filter((e) => e.type === 'job-log' && e.jobId === second.jobId);
    expect(rejected).toEqual([expect.objectContaining({ level: 'warning', text: expect.stringMatching(/broken\.png/), path: path.join(sixteenDir, 'broken.png') })]);
    const listing = await server.call('images:list', { sort: 'path' });
    expect(listing.total).toBe(31);
    images = listing.items;
    expect(await server.call('project:recent', {})).toEqual([expect.objectContaining({ dir: projectDir, name: 'EM test', exists: true })]);
    const missing = await server.api.invoke('jobs:start', { kind: 'import', folder: path.join(projectDir, 'does-not-exist') });
    expect(missing).toMatchObject({ ok: false, error: { kind: 'argument' } });
  });

  it('serves stored pixels exactly (8 and 16 bit), contrast info and thumbnails', async () => {
    const auth = { headers: { authorization: `Bearer ${server.token}` } };
    const slice = images.find((im) => im.path.endsWith('slice00.png'))!;
    const res = await fetch(server.origin + binaryUrls.pixels(slice.id), auth);
    const block = decodePixelBlock(res.headers, await res.arrayBuffer());
    const truth = await decodeImage(path.join(isbi, 'slice00.png'));
    expect(block).toMatchObject({ width: 512, height: 512, channels: 1, dtype: 'uint8', bitDepth: 8 });
    expect(Buffer.compare(Buffer.from(block.data.buffer), Buffer.from(truth.data.buffer))).toBe(0);

    const sixteen = images.find((im) => im.path.endsWith('sixteen.png'))!;
    expect(sixteen).toMatchObject({ bitDepth: 16, split: 'train' });
    const r16 = await fetch(server.origin + binaryUrls.pixels(sixteen.id), auth);
    const b16 = decodePixelBlock(r16.headers, await r16.arrayBuffer());
    expect(b16.dtype).toBe('uint16');
    expect([...b16.data]).toEqual([...known16]);
    const region = await fetch(server.origin + binaryUrls.pixels(sixteen.id, { x: 10, y: 5, width: 4, height: 3 }), auth);
    const rb = decodePixelBlock(region.headers, await region.arrayBuffer());
    expect(rb.region).toEqual({ x: 10, y: 5, width: 4, height: 3 });
    expect([...rb.data.subarray(0, 4)]).toEqual([...known16.subarray(5 * 64 + 10, 5 * 64 + 14)]);
    expect((await fetch(server.origin + binaryUrls.pixels(sixteen.id, { x: 60, y: 0, width: 10, height: 1 }), auth)).status).toBe(400);

    const detail = await server.call('images:get', { imageId: sixteen.id });
    expect(detail.dtype).toBe('uint16');
    const [c] = detail.contrast;
    expect(c.min).toBe(Math.min(...known16));
    expect(c.max).toBe(Math.max(...known16));
    expect(c.low).toBeGreaterThan(c.min);
    expect(c.high).toBeLessThan(c.max);
    expect(c.histogram).toHaveLength(256);
    expect(c.histogram.reduce((a, b) => a + b, 0)).toBe(64 * 48);

    const thumb = await fetch(server.origin + binaryUrls.thumbnail(slice.id, 96), auth);
    expect(thumb.headers.get('content-type')).toBe('image/png');
    const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
    expect([meta.width, meta.height]).toEqual([96, 96]);
    expect(fs.readdirSync(path.join(projectDir, 'cache', 'thumbnails')).length).toBeGreaterThan(0);
    expect((await fetch(server.origin + binaryUrls.thumbnail(slice.id), {})).status).toBe(401);
  });

  it('saves whole masks and stroke patches as versions, refuses stale patches, and serves them back', async () => {
    const image = images.find((im) => im.path.endsWith('slice01.png'))!;
    const auth = { headers: { authorization: `Bearer ${server.token}` } };
    expect((await fetch(server.origin + binaryUrls.label(image.id), auth)).status).toBe(404);
    const data = new Uint8Array(512 * 512);
    data.fill(1, 0, 512 * 10);
    const v1 = await server.call('labels:save', { imageId: image.id, mask: { width: 512, height: 512, data }, source: 'manual', timeSpentMs: 4000, pixelsChanged: 5120 });
    expect(v1).toMatchObject({ version: 1, source: 'manual', dtype: 'uint8' });
    const unknown = new Uint8Array(4).fill(1);
    const v2 = await server.call('labels:patch', { imageId: image.id, baseVersion: 1, x: 100, y: 200, width: 2, height: 2, data: new Uint16Array([300, 300, 300, 300]), unknown, source: 'manual', timeSpentMs: 500 });
    expect(v2).toMatchObject({ version: 2, parentVersion: 1, dtype: 'uint16', hasUnknown: true });
    const stale = await server.api.invoke('labels:patch', { imageId: image.id, baseVersion: 1, x: 0, y: 0, width: 1, height: 1, data: new Uint8Array([0]), source: 'manual', timeSpentMs: 1 });
    expect(stale).toMatchObject({ ok: false, error: { kind: 'argument', message: expect.stringMatching(/not the latest/) } });
    const outside = await server.api.invoke('labels:patch', { imageId: image.id, baseVersion: 2, x: 511, y: 0, width: 2, height: 1, data: new Uint8Array(2), source: 'manual', timeSpentMs: 1 });
    expect(outside.ok).toBe(false);
    const res = await fetch(server.origin + binaryUrls.label(image.id), auth);
    const mask = decodeMaskBlock(res.headers, await res.arrayBuffer());
    expect(mask).toMatchObject({ width: 512, height: 512, dtype: 'uint16', version: 2 });
    expect(mask.data[200 * 512 + 100]).toBe(300);
    expect(mask.data[0]).toBe(1);
    expect(mask.unknown![200 * 512 + 101]).toBe(1);
    expect(mask.unknown![0]).toBe(0);
    const restored = await server.call('labels:restore', { imageId: image.id, version: 1 });
    expect(restored).toMatchObject({ version: 3, restoredFrom: 1 });
    expect((await server.call('labels:history', { imageId: image.id })).map((v) => v.version)).toEqual([1, 2, 3]);
    expect((await server.call('images:get', { imageId: image.id })).status).toBe('labeled');
    const stats = await server.call('stats:progress', {});
    expect(stats.annotation.byKind.annotate).toMatchObject({ count: 2, images: 1, timeMs: 4500 });
  });

  it('refuses a body larger than any real request with 413, before reading it', async () => {
    const post = { 'content-type': 'application/json', 'x-maskloop-request': '1', authorization: `Bearer ${server.token}` };
    // The project's largest image is 512 x 512: a whole label of it is under 2 MB on the wire.
    const declared = await raw(server.port, '/api/invoke/labels:save', { method: 'POST', headers: { ...post, 'content-length': String(300 * 1024 * 1024) } }).catch((e: Error) => e);
    expect(declared).toMatchObject({ status: 413 });
    expect(JSON.parse((declared as { body: string }).body)).toMatchObject({ ok: false, error: { kind: 'argument', message: expect.stringMatching(/larger than/) } });
    const sent = await raw(server.port, '/api/invoke/labels:save', { method: 'POST', headers: post, body: `"${'a'.repeat(20 * 1024 * 1024)}"` }).catch((e: Error) => e);
    // Refused as it streams in (the server may close before the client has sent everything).
    if (sent instanceof Error) expect((sent as NodeJS.ErrnoException).code).toMatch(/EPIPE|ECONNRESET/);
    else expect(sent.status).toBe(413);
    // The server is fine afterwards.
    expect((await server.call('project:summary', {})).counts.total).toBeGreaterThan(0);
  });

  it('exports inside the project folder only', async () => {
    const result = await server.call('project:export', { format: 'png', what: 'labels', folder: 'labels-png' });
    expect(result).toMatchObject({ images: 1, out: path.join(fs.realpathSync(projectDir), 'exports', 'labels-png') });
    expect(fs.readdirSync(result.out).sort()).toEqual(['README.txt', 'slice01.png']);
    for (const folder of ['../outside', '/etc', 'a/b', '..']) {
      const r = await server.api.invoke('project:export', { format: 'png', folder });
      expect(r.ok, folder).toBe(false);
    }
  });
});
