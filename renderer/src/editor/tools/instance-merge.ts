import { objectPixels, writeIndices } from '../raster';
import type { Tool, ToolContext } from '../tool';

/** Click one object, then another: the second becomes part of the first. Escape forgets the first. */
export function createMergeTool(): Tool {
  let first = 0;
  const forget = (ctx: ToolContext) => {
    first = 0;
    ctx.setPreview(null);
  };
  return {
    name: 'instance-merge',
    title: 'Merge objects',
    shortcut: 'M',
    help: 'Click an object, then the object to merge into it.',
    cursor: 'crosshair',
    pointerDown(ctx, p) {
      const hit = ctx.model.pixelUnder(p);
      if (!hit) return;
      const id = hit.instance;
      if (id === 0) return forget(ctx);
      if (first === 0 || first === id) {
        first = id;
        ctx.setActiveInstance(id);
        ctx.setPreview({ points: [], closed: false, highlightInstance: id });
        return;
      }
      const target = first;
      const other = objectPixels(ctx.model, id);
      forget(ctx);
      if (!other) return;
      const targetPixel = objectPixels(ctx.model, target);
      const cls = targetPixel ? ctx.model.classes[targetPixel.indices[0]] : ctx.model.classAt(hit.x, hit.y);
      ctx.model.beginStroke('Merge objects');
      writeIndices(ctx.model, other.indices, other.bounds, { cls, instance: target });
      ctx.commit();
    },
    pointerMove() {},
    pointerUp() {},
    key(ctx, key) {
      if (key !== 'Escape' || first === 0) return false;
      forget(ctx);
      return true;
    },
    cancel: forget,
  };
}
