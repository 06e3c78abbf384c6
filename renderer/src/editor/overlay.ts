import { UNKNOWN, type MaskModel, type Rect } from './model';

export type OverlayMode = 'fill' | 'outline';

/** RGB per class value: class 1 is the common foreground, so it gets the most visible colour. */
export const CLASS_COLORS: [number, number, number][] = [
  [0, 0, 0],
  [255, 214, 0],
  [0, 200, 255],
  [255, 64, 160],
  [90, 230, 90],
  [255, 128, 0],
  [170, 110, 255],
  [0, 255, 200],
  [255, 90, 90],
];

export function classColor(cls: number): [number, number, number] {
  if (cls < CLASS_COLORS.length) return CLASS_COLORS[cls];
  return instanceColor(cls * 7);
}

/** Distinct, stable colours for object ids (golden-angle hues), so neighbours rarely look alike. */
export function instanceColor(id: number): [number, number, number] {
  const hue = (id * 137.508) % 360;
  const s = 0.85;
  const l = 0.55;
  const k = (n: number) => (n + hue / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => Math.round(255 * (l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)))));
  return [f(0), f(8), f(4)];
}

const INSTANCE_TABLE_SIZE = 4096;
let instanceTable: Uint8Array | null = null;

/** instanceColor for ids modulo 4096, computed once: HSL per pixel would dominate a full redraw. */
function instanceTable4096(): Uint8Array {
  if (instanceTable) return instanceTable;
  instanceTable = new Uint8Array(INSTANCE_TABLE_SIZE * 3);
  for (let id = 0; id < INSTANCE_TABLE_SIZE; id++) instanceTable.set(instanceColor(id), id * 3);
  return instanceTable;
}

/**
 * RGBA of the mask over `rect`, into `out` (rect.width * rect.height * 4 bytes). Background is
 * transparent; 'unknown' is a grey hatch so it reads as 'not labeled' rather than as a class;
 * objects are coloured by id, plain classes by class. Outline mode keeps only pixels with a
 * 4-neighbour of a different value, so the image under a mask stays visible.
 */
export function renderOverlay(model: MaskModel, rect: Rect, mode: OverlayMode, out: Uint8ClampedArray): void {
  const { width, height, classes, instances } = model;
  if (out.length < rect.width * rect.height * 4) throw new Error('overlay buffer too small for the rectangle');
  const table = instanceTable4096();
  let o = 0;
  for (let y = rect.y; y < rect.y + rect.height; y++) {
    for (let x = rect.x; x < rect.x + rect.width; x++, o += 4) {
      const i = y * width + x;
      const cls = classes[i];
      const inst = instances[i];
      if (cls === 0 && inst === 0) {
        out[o + 3] = 0;
        continue;
      }
      if (mode === 'outline') {
        const same = (j: number) => classes[j] === cls && instances[j] === inst;
        const edge = x === 0 || y === 0 || x === width - 1 || y === height - 1 || !same(i - 1) || !same(i + 1) || !same(i - width) || !same(i + width);
        if (!edge) {
          out[o + 3] = 0;
          continue;
        }
      }
      if (cls === UNKNOWN) {
        const stripe = ((x + y) & 7) < 3;
        out[o] = out[o + 1] = out[o + 2] = stripe ? 200 : 90;
        out[o + 3] = 255;
        continue;
      }
      if (inst > 0) {
        const t = (inst % INSTANCE_TABLE_SIZE) * 3;
        out[o] = table[t];
        out[o + 1] = table[t + 1];
        out[o + 2] = table[t + 2];
      } else {
        const [r, g, b] = classColor(cls);
        out[o] = r;
        out[o + 1] = g;
        out[o + 2] = b;
      }
      out[o + 3] = 255;
    }
  }
}
