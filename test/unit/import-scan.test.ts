import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../src/imaging/decode';
import {
  importFolder,
  inspectImageFile,
  scanFolder,
  sniffFormat,
  type RejectedFile,
  type ScanEntry,
  type ScannedImage,
} from '../../src/imaging/import';
import { encodeTiff } from '../../src/imaging/tiff';
import { Rng } from '../../src/shared/rng';

const scratch = mkdtempSync(join(tmpdir(), 'maskloop-import-scan-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const W = 96;
const H = 64;

function values16(n: number): Uint16Array {
  const v = new Uint16Array(n);
  for (let i = 0; i < n; i++) v[i] = (i * 977 + 13) % 4096;
  v[0] = 0;
  v[1] = 65535;
  v[2] = 256;
  return v;
}

/** One file of each kind the scanner must accept, with the pixels it must decode to. */
async function goodFiles(): Promise<Record<string, Buffer>> {
  const grey16 = values16(W * H);
  const rgb = new Uint8Array(W * H * 3).map((_, i) => (i * 7 + (i >> 5)) % 256);
  const ome =
    '<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0">' +
    '<Pixels DimensionOrder="XYCZT" Type="uint16" SizeX="96" SizeY="64" SizeC="2" SizeZ="1" SizeT="1" PhysicalSizeX="0.5" PhysicalSizeY="0.5">' +
    '<Channel Name="DNA"/><Channel Name="actin"/><TiffData/></Pixels></Image></OME>';
  return {
    'grey16.png': await sharp(grey16, { raw: { width: W, height: H, channels: 1 } }).toColourspace('grey16').png().toBuffer(),
    'rgb.jpg': await sharp(rgb, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 90 }).toBuffer(),
    'lzw16.tif': await sharp(grey16, { raw: { width: W, height: H, channels: 1 } }).toColourspace('grey16').tiff({ compression: 'lzw' }).toBuffer(),
    'tiled.tiff': await sharp(rgb, { raw: { width: W, height: H, channels: 3 } })
      .tiff({ compression: 'deflate', tile: true, tileWidth: 32, tileHeight: 32 })
      .toBuffer(),
    'two-channel.ome.tif': encodeTiff([
      { width: W, height: H, channels: 1, bitDepth: 16, data: grey16, description: ome },
      { width: W, height: H, channels: 1, bitDepth: 16, data: grey16.map((v) => 4095 - (v % 4096)) },
    ], { rowsPerStrip: 16 }),
  };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function collect(root: string, options = {}): Promise<ScanEntry[]> {
  const out: ScanEntry[] = [];
  for await (const entry of scanFolder(root, options)) out.push(entry);
  return out;
}

describe('scanFolder', () => {
  let good: Record<string, Buffer>;
  const root = join(scratch, 'plate 1 — Ünïcødé 細胞');

  beforeAll(async () => {
    good = await goodFiles();
    mkdirSync(join(root, 'sub dir', 'deeper'), { recursive: true });
    mkdirSync(join(root, 'empty folder'));
    writeFileSync(join(root, 'grey16.png'), good['grey16.png']);
    writeFileSync(join(root, 'sub dir', 'rgb.jpg'), good['rgb.jpg']);
    writeFileSync(join(root, 'sub dir', 'deeper', 'lzw16.tif'), good['lzw16.tif']);
    writeFileSync(join(root, 'sub dir', 'tiled image (copy).tiff'), good['tiled.tiff']);
    writeFileSync(join(root, 'two-channel.ome.tif'), good['two-channel.ome.tif']);
    // Passed over: not images by name or content, hidden, or macOS resource forks.
    writeFileSync(join(root, 'notes.txt'), 'plate map: A1 = control');
    writeFileSync(join(root, 'results.csv'), 'a,b\n1,2\n');
    writeFileSync(join(root, '._grey16.png'), Buffer.from([0, 5, 22, 7, 0, 2, 0, 0]));
    // Image content whatever the name says.
    writeFileSync(join(root, 'no-extension'), good['grey16.png']);
    writeFileSync(join(root, 'really-a-png.tif'), good['grey16.png']);
    // Rejections.
    writeFileSync(join(root, 'empty.png'), Buffer.alloc(0));
    writeFileSync(join(root, 'text.tif'), 'this is a text file, not an image');
    writeFileSync(join(root, 'anim.gif'), Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'));
    writeFileSync(join(root, 'stack.lif'), Buffer.from([0x70, 0, 0, 0, 1, 2, 3, 4, 5, 6]));
    writeFileSync(join(root, 'cut.png'), good['grey16.png'].subarray(0, 300));
    // A link loop back to the root, a link to a file, a broken link.
    symlinkSync(root, join(root, 'sub dir', 'loop'));
    symlinkSync(join(root, 'grey16.png'), join(root, 'sub dir', 'link to grey16.png'));
    symlinkSync(join(root, 'missing.tif'), join(root, 'broken.tif'));
  });

  it('walks nested unicode and spaced paths in a stable order, accepting images and rejecting the rest with reasons', async () => {
    const entries = await collect(root);
    const byPath = new Map(entries.map((e) => [e.relativePath, e]));
    expect(entries.map((e) => e.relativePath)).toEqual([
      'anim.gif',
      'broken.tif',
      'cut.png',
      'empty.png',
      'grey16.png',
      'no-extension',
      'really-a-png.tif',
      'stack.lif',
      'sub dir/deeper/lzw16.tif',
      'sub dir/link to grey16.png',
      'sub dir/rgb.jpg',
      'sub dir/tiled image (copy).tiff',
      'text.tif',
      'two-channel.ome.tif',
    ]);
    const reason = (p: string) => (byPath.get(p) as RejectedFile).reason;
    expect(reason('anim.gif')).toBe('unsupported');
    expect((byPath.get('stack.lif') as RejectedFile).message).toMatch(/Leica LIF.*OME-TIFF/);
    expect(reason('broken.tif')).toBe('unreadable');
    expect(reason('cut.png')).toBe('truncated');
    expect(reason('empty.png')).toBe('empty');
    expect(reason('text.tif')).toBe('not-an-image');
    for (const e of entries) if (e.kind === 'rejected') expect(e.message.length).toBeGreaterThan(5);

    const png = byPath.get('grey16.png') as ScannedImage;
    expect(png).toMatchObject({ kind: 'image', format: 'png', width: W, height: H, channels: 1, bitDepth: 16, pages: 1, verified: 'decoded' });
    expect(png.sha256).toBe(sha256(good['grey16.png']));
    expect((byPath.get('sub dir/link to grey16.png') as ScannedImage).sha256).toBe(png.sha256);
    expect(byPath.get('sub dir/rgb.jpg')).toMatchObject({ format: 'jpeg', channels: 3, bitDepth: 8 });
    expect(byPath.get('sub dir/deeper/lzw16.tif')).toMatchObject({ format: 'tiff', bitDepth: 16, planes: { source: 'single' } });
    expect(byPath.get('sub dir/tiled image (copy).tiff')).toMatchObject({ format: 'tiff', channels: 3 });
    expect((byPath.get('really-a-png.tif') as ScannedImage).warnings.join()).toMatch(/name says TIFF, the content is PNG/);
    expect(byPath.get('no-extension')).toMatchObject({ kind: 'image', format: 'png', warnings: ['the name has no extension, the content is PNG'] });

    const ome = byPath.get('two-channel.ome.tif') as ScannedImage;
    expect(ome).toMatchObject({ ome: true, pages: 2, planes: { source: 'ome', sizeC: 2, sizeZ: 1, sizeT: 1, planeIfds: [0, 1] } });
    expect(ome.planes.channelNames).toEqual(['DNA', 'actin']);
    expect(ome.planes.physicalSizeX).toEqual({ value: 0.5, unit: 'µm' });
  });

  it('resumes: files the caller already has are skipped unread, the rest scanned', async () => {
    const first = await collect(root);
    const known = new Map(first.filter((e) => e.kind === 'image').map((e) => [e.relativePath, e as ScannedImage]));
    const seen: string[] = [];
    const summary = await importFolder(
      root,
      (e) => {
        seen.push(`${e.kind}:${e.relativePath}`);
      },
      { skip: (f) => known.get(f.relativePath)?.size === f.size },
    );
    expect(summary).toMatchObject({ images: 0, skipped: known.size, rejected: 6 });
    expect(summary.byReason).toEqual({ unsupported: 2, unreadable: 1, truncated: 1, empty: 1, 'not-an-image': 1 });
    expect(seen.filter((s) => s.startsWith('skipped:')).length).toBe(known.size);
  });

  it('refuses a missing root instead of reporting an empty folder', async () => {
    await expect(collect(join(scratch, 'no such folder'))).rejects.toThrow(/cannot scan .*no such file/);
  });

  it('stops when aborted', async () => {
    const controller = new AbortController();
    let n = 0;
    await expect(
      (async () => {
        for await (const _ of scanFolder(root, { signal: controller.signal, concurrency: 1 })) {
          if (++n === 2) controller.abort();
        }
      })(),
    ).rejects.toThrow(/abort/i);
    expect(n).toBe(2);
  });

  it('checks structure only above the decode budget, still catching truncation', async () => {
    const path = join(root, 'grey16.png');
    expect(await inspectImageFile(path, { maxDecodePixels: 100 })).toMatchObject({ kind: 'image', verified: 'structure' });
    expect(await inspectImageFile(join(root, 'cut.png'), { maxDecodePixels: 100 })).toMatchObject({ reason: 'truncated' });
    // Streamed hashing and positional reads for files above the in-memory limit give the same answer.
    const streamed = await inspectImageFile(join(root, 'sub dir', 'deeper', 'lzw16.tif'), { inMemoryBytes: 0 });
    expect(streamed).toMatchObject({ kind: 'image', sha256: sha256(good['lzw16.tif']) });
  });
});

describe('scanner fuzz: bad input never stops the scan, never yields wrong pixels', () => {
  it('rejects truncated, random, empty and mislabelled files with reasons and imports every good file', async () => {
    const good = await goodFiles();
    const dir = join(scratch, 'fuzz');
    mkdirSync(dir);
    const expectations = new Map<string, { accept: boolean; original?: string }>();
    const rng = new Rng(7);
    for (const [name, bytes] of Object.entries(good)) {
      writeFileSync(join(dir, `good-${name}`), bytes);
      expectations.set(`good-${name}`, { accept: true });
      // Cut points: inside the signature, the header, and across the data, up to one byte short.
      const cuts = new Set([1, 4, 7, 8, 12, 20, 33, 64, 100, 200, bytes.length - 1, bytes.length - 2, bytes.length - 17]);
      for (const fraction of [0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.95, 0.99]) cuts.add(Math.floor(bytes.length * fraction));
      for (const cut of cuts) {
        if (cut <= 0 || cut >= bytes.length) continue;
        const file = `cut${String(cut).padStart(6, '0')}-${name}`;
        writeFileSync(join(dir, file), bytes.subarray(0, cut));
        // A cut may remove only bytes nothing refers to; then the file must decode to the original.
        expectations.set(file, { accept: false, original: `good-${name}` });
      }
      // The right signature followed by garbage.
      for (let k = 0; k < 4; k++) {
        const junk = Buffer.from(bytes);
        for (let i = 16; i < junk.length; i++) junk[i] = rng.int(256);
        writeFileSync(join(dir, `junk${k}-${name}`), junk);
        expectations.set(`junk${k}-${name}`, { accept: false });
      }
    }
    for (let k = 0; k < 12; k++) {
      const ext = ['png', 'tif', 'jpg', 'tiff', 'ome.tif', 'jpeg'][k % 6];
      const random = Buffer.from(Array.from({ length: 1 + rng.int(5000) }, () => rng.int(256)));
      writeFileSync(join(dir, `random${k}.${ext}`), random);
      expectations.set(`random${k}.${ext}`, { accept: false });
      writeFileSync(join(dir, `empty${k}.${ext}`), Buffer.alloc(0));
      expectations.set(`empty${k}.${ext}`, { accept: false });
    }
    writeFileSync(join(dir, 'jpeg-named.png'), good['rgb.jpg']);
    expectations.set('jpeg-named.png', { accept: true });
    writeFileSync(join(dir, 'tiff-named.jpg'), good['lzw16.tif']);
    expectations.set('tiff-named.jpg', { accept: true });
    writeFileSync(join(dir, 'html.tif'), '<html><body>404 Not Found</body></html>');
    expectations.set('html.tif', { accept: false });

    const started = performance.now();
    const entries = await collect(dir, { concurrency: 3 });
    const seconds = (performance.now() - started) / 1000;
    expect(new Set(entries.map((e) => e.relativePath))).toEqual(new Set(expectations.keys()));

    let silentlyComplete = 0;
    for (const entry of entries) {
      const expected = expectations.get(entry.relativePath)!;
      if (expected.accept) {
        expect(entry.kind, `${entry.relativePath}: ${(entry as RejectedFile).message}`).toBe('image');
        continue;
      }
      if (entry.kind === 'image' && expected.original) {
        // Accepted despite the cut: only acceptable when the pixels are all there.
        const [cut, whole] = await Promise.all([decodeImage(entry.path), decodeImage(join(dir, expected.original))]);
        expect(Array.from(cut.data), entry.relativePath).toEqual(Array.from(whole.data));
        silentlyComplete++;
        continue;
      }
      expect(entry.kind, entry.relativePath).toBe('rejected');
      const rejected = entry as RejectedFile;
      expect(['empty', 'truncated', 'corrupt', 'not-an-image', 'unsupported']).toContain(rejected.reason);
      if (entry.relativePath.startsWith('empty')) expect(rejected.reason).toBe('empty');
      if (entry.relativePath.startsWith('random') || entry.relativePath === 'html.tif') expect(rejected.reason).toBe('not-an-image');
      if (entry.relativePath.startsWith('cut')) expect(['truncated', 'corrupt', 'not-an-image']).toContain(rejected.reason);
    }
    // Cuts that leave every referenced byte are rare (trailing padding); most must be caught.
    expect(silentlyComplete).toBeLessThanOrEqual(5);
    expect(seconds).toBeLessThan(30);
  });

  it('sniffs formats by content', () => {
    expect(sniffFormat(Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'))).toBe('png');
    expect(sniffFormat(Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).toBe('jpeg');
    expect(sniffFormat(Buffer.from('II*\0', 'latin1'))).toBe('tiff');
    expect(sniffFormat(Buffer.from('MM\0+', 'latin1'))).toBe('tiff');
    expect(sniffFormat(Buffer.from('ZISRAWFILE', 'latin1'))).toEqual({ other: 'Zeiss CZI', image: true });
    expect(sniffFormat(Buffer.from('hello'))).toBeNull();
  });
});
