import { line4, objectPixels, separateComponents, type Point } from '../raster';
import type { Tool } from '../tool';

/**
 * Drag a line across an object: the line's pixels become background and each separated piece
 * becomes its own object (the largest keeps the id). The cut is 4-connected, so pieces that
 * only touch diagonally count as separated, like the training target's connected components.
 */
export function createSplitTool(): Tool {
  let path: Point[] | null = null;
  return {
    name: 'instance-split',
    title: 'Split object',
    shortcut: 'S',
    help: 'Drag a line across an object to cut it in two.',
    cursor: 'crosshair',
    pointerDown(ctx, p) {
      path = [{ x: p.x, y: p.y }];
      ctx.setPreview({ points: path, closed: false });
    },
    pointerMove(ctx, p, pressed) {
      if (!pressed || !path) return;
      path.push({ x: p.x, y: p.y });
      ctx.setPreview({ points: path, closed: false });
    },
    pointerUp(ctx) {
      const points = path;
      path = null;
      ctx.setPreview(null);
      if (!points || points.length < 2) return;
      const { model } = ctx;
      const cut: number[] = [];
      const crossed = new Set<number>();
      for (let i = 1; i < points.length; i++) {
        for (const q of line4(points[i - 1], points[i])) {
          if (!model.contains(q.x, q.y)) continue;
          const index = q.y * model.width + q.x;
          const id = model.instances[index];
          if (id > 0) {
            crossed.add(id);
            cut.push(index);
          }
        }
      }
      if (crossed.size === 0) return;
      const objects = [...crossed].map((id) => ({ id, pixels: objectPixels(model, id)! }));
      model.beginStroke('Split object');
      for (const index of cut) {
        const x = index % model.width;
        const y = (index - x) / model.width;
        model.touch({ x, y, width: 1, height: 1 });
        model.set(index, 0, 0);
      }
      for (const { id, pixels } of objects) separateComponents(model, id, pixels.bounds);
      ctx.commit();
    },
    cancel(ctx) {
      path = null;
      ctx.setPreview(null);
    },
  };
}
