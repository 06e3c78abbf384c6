// Draws build/icon.png (1024x1024), the app icon electron-builder turns into .ico/.icns/.png
// sizes: a few segmented cells, outlined, on a dark tile. Run once; the PNG is committed.
import sharp from 'sharp';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'icon.png');
const cells = [
  [380, 420, 170, 140, -20], [640, 380, 150, 120, 25], [520, 650, 190, 130, 10], [300, 690, 110, 95, 40], [730, 640, 100, 120, -30],
];
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="1024" height="1024">
  <rect x="64" y="64" width="896" height="896" rx="200" fill="#16202b"/>
  ${cells.map(([x, y, rx, ry, a], i) => `<ellipse cx="${x}" cy="${y}" rx="${rx}" ry="${ry}" transform="rotate(${a} ${x} ${y})" fill="${i % 2 ? '#2f9e8f' : '#3fb7a5'}" fill-opacity="0.55" stroke="#e8f6f3" stroke-width="18"/>`).join('\n  ')}
</svg>`;
await sharp(Buffer.from(svg)).png().toFile(out);
console.log(out);
