/**
 * Hostile headers: files whose headers claim what their bytes cannot hold, or that point outside
 * themselves. Each is rejected with a reason, and nothing allocates the pixels a header claims.
 * Times are printed, not asserted (a busy machine is slow, not broken); memory growth is asserted.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectImageFile } from '../../src/imaging/import';

const scratch = mkdtempSync(join(tmpdir(), 'maskloop-hostile-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), Buffer.from(data)]);
  const out = Buffer.alloc(8 + data.length + 4);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}

/** A PNG whose IHDR says width x height, with one tiny deflated row of data. */
function png(width: number, height: number, bitDepth = 8, colourType = 0): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colourType;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(64))), chunk('IEND', new Uint8Array(0))]);
}

/** A little-endian TIFF with one IFD of the given (tag, type, values) entries and `data` after it. */
function tiff(entries: [number, number, number[]][], options: { data?: Uint8Array; nextIfd?: number } = {}): Buffer {
  const ifdAt = 8;
  const ifdBytes = 2 + entries.length * 12 + 4;
  const dataAt = ifdAt + ifdBytes;
  const out = Buffer.alloc(dataAt + (options.data?.length ?? 0));
  out.write('II', 0, 'latin1');
  out.writeUInt16LE(42, 2);
  out.writeUInt32LE(ifdAt, 4);
  out.writeUInt16LE(entries.length, ifdAt);
  entries.sort((a, b) => a[0] - b[0]).forEach(([tag, type, values], i) => {
    const at = ifdAt + 2 + i * 12;
    out.writeUInt16LE(tag, at);
    out.writeUInt16LE(type, at + 2);
    out.writeUInt32LE(values.length, at + 4);
    if (type === 3) values.slice(0, 2).forEach((v, k) => out.writeUInt16LE(v, at + 8 + 2 * k));
    else out.writeUInt32LE(values[0], at + 8);
  });
  out.writeUInt32LE(options.nextIfd ?? 0, ifdAt + 2 + entries.length * 12);
  if (options.data) out.set(options.data, dataAt);
  return out;
}

const SHORT = 3;
const LONG = 4;
/** A grey strip TIFF: width, height, bits, and where its one strip is. */
function stripTiff(width: number, height: number, bits: number, strip: { offset?: number; count?: number } = {}, nextIfd?: number): Buffer {
  const data = new Uint8Array(64);
  const dataAt = 8 + 2 + 9 * 12 + 4;
  return tiff([
    [256, LONG, [width]], [257, LONG, [height]], [258, SHORT, [bits]], [259, SHORT, [1]], [262, SHORT, [1]],
    [273, LONG, [strip.offset ?? dataAt]], [277, SHORT, [1]], [278, LONG, [height]], [279, LONG, [strip.count ?? data.length]],
  ], { data, nextIfd });
}

async function jpegClaiming(width: number, height: number): Promise<Buffer> {
  const jpeg = await sharp(Buffer.alloc(16 * 16 * 3, 128), { raw: { width: 16, height: 16, channels: 3 } }).jpeg().toBuffer();
  // The frame header (SOF0, FF C0): length, precision, then height and width.
  for (let i = 0; i + 9 < jpeg.length; i++) {
    if (jpeg[i] === 0xff && jpeg[i + 1] === 0xc0) {
      jpeg.writeUInt16BE(height, i + 5);
      jpeg.writeUInt16BE(width, i + 7);
      return jpeg;
    }
  }
  throw new Error('no SOF0 marker');
}

describe('hostile headers', () => {
  it('rejects every file with a reason, without allocating what its header claims', async () => {
    const cases: [string, Buffer | Promise<Buffer>, RegExp][] = [
      ['huge.png', png(60000, 60000), /over the limit|more than a \d+-byte PNG/],
      ['claims-much.png', png(12000, 12000), /more than a \d+-byte PNG can hold/],
      ['zero.png', png(0, 10), /./],
      ['bad-depth.png', png(64, 64, 7), /./],
      ['huge.jpg', jpegClaiming(65000, 65000), /over the limit/],
      ['zero.jpg', jpegClaiming(0, 16), /./],
      ['huge.tif', stripTiff(100000, 100000, 8), /over the limit|strip|truncat/i],
      ['zero.tif', stripTiff(0, 16, 8), /./],
      ['strip-outside.tif', stripTiff(8, 8, 8, { offset: 1 << 30 }), /./],
      ['strip-count-huge.tif', stripTiff(8, 8, 8, { count: 0xfffffff0 }), /./],
      ['twelve-bit.tif', stripTiff(8, 8, 12), /./],
      ['ifd-loop.tif', stripTiff(8, 8, 8, {}, 8), /./],
    ];
    const before = process.memoryUsage().rss;
    for (const [name, content, reason] of cases) {
      const file = join(scratch, name);
      writeFileSync(file, await content);
      const started = performance.now();
      const result = await inspectImageFile(file);
      const ms = performance.now() - started;
      console.log(`[hostile] ${name}: ${result.kind === 'rejected' ? `${result.reason}: ${result.message}` : 'accepted'} (${ms.toFixed(0)} ms)`);
      if (name === 'ifd-loop.tif' && result.kind === 'image') {
        // A loop back to the first IFD may be read as that one page; it must not hang or repeat forever.
        expect(result.pages).toBe(1);
        continue;
      }
      expect(result.kind, name).toBe('rejected');
      if (result.kind === 'rejected') expect(result.message, name).toMatch(reason);
    }
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 2 ** 20);
  });
});
