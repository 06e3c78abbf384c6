import type { PaintValue, Point } from '../raster';
import { stampDisc, stampSegment } from '../raster';
import type { PointerInput, Tool, ToolContext, ToolName } from '../tool';

/**
 * The freehand painting behaviour that brush, eraser, unknown brush and new-object share: a
 * stroke from press to release, discs joined by segments so fast drags leave no gaps.
 */
export function paintingTool(spec: {
  name: ToolName;
  title: string;
  shortcut: string;
  help: string;
  /** Decided once per stroke (e.g. the new object's id). */
  valueForStroke(ctx: ToolContext, p: PointerInput): PaintValue;
}): Tool {
  let last: Point | null = null;
  let value: PaintValue | null = null;
  return {
    name: spec.name,
    title: spec.title,
    shortcut: spec.shortcut,
    help: spec.help,
    cursor: 'brush',
    pointerDown(ctx, p) {
      value = spec.valueForStroke(ctx, p);
      ctx.model.beginStroke(spec.title);
      stampDisc(ctx.model, p.x, p.y, ctx.settings.brushRadius, value);
      ctx.model.flush();
      last = { x: p.x, y: p.y };
    },
    pointerMove(ctx, p, pressed) {
      if (!pressed || !last || !value) return;
      stampSegment(ctx.model, last, p, ctx.settings.brushRadius, value);
      ctx.model.flush();
      last = { x: p.x, y: p.y };
    },
    pointerUp(ctx) {
      if (!last) return;
      last = null;
      value = null;
      ctx.commit();
    },
    cancel(ctx) {
      if (!last) return;
      last = null;
      value = null;
      ctx.commit();
    },
  };
}
