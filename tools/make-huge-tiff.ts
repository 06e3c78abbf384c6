/**
 * Writes a large 16-bit tiled TIFF of synthetic nuclei (default 10000x10000) for measuring
 * prelabel's memory on huge images:  npx tsx tools/make-huge-tiff.ts <file> [size]
 */
import sharp from 'sharp';
import { syntheticNuclei } from '../src/imaging/synthetic';

const [file, sizeArg] = process.argv.slice(2);
if (!file) throw new Error('usage: make-huge-tiff.ts <file.tif> [size]');
const size = Number(sizeArg ?? 10000);
const block = 1000;
const tile = syntheticNuclei({ width: block, height: block, seed: 7 }).image.data as Uint16Array;
const data = new Uint16Array(size * size);
for (let y = 0; y < size; y++) {
  const row = tile.subarray((y % block) * block, (y % block) * block + block);
  for (let x = 0; x < size; x += block) data.set(row.subarray(0, Math.min(block, size - x)), y * size + x);
}
await sharp(Buffer.from(data.buffer), { raw: { width: size, height: size, channels: 1 }, limitInputPixels: false })
  .toColourspace('grey16')
  .tiff({ tile: true, tileWidth: 256, tileHeight: 256, compression: 'none' })
  .toFile(file);
console.log(`wrote ${file} (${size}x${size}, 16-bit, tiled)`);
