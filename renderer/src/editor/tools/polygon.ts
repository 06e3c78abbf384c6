import { fillPolygon, type Point } from '../raster';
import { ERASE, paintValue, type PointerInput, type Tool, type ToolContext } from '../tool';

/** Screen pixels: a click this close to the first vertex closes the polygon. */
const CLOSE_DISTANCE = 8;
/**
 * Screen pixels: a press whose pointer wanders further than this from where it went down is a
 * lasso, not a polygon click, wherever it is released (a lasso round a small nucleus ends next
 * to its start).
 */
const LASSO_THRESHOLD = 4;

/**
 * Polygon by clicks (double-click, Enter or a click on the first vertex closes; Backspace drops
 * the last vertex; Escape cancels) or lasso by dragging (release closes). The inside is filled
 * with the active class, or with background when Alt is held at closing.
 */
export function createPolygonTool(): Tool {
  let vertices: Point[] = [];
  let lasso: Point[] | null = null;
  let pressedAt: Point | null = null;
  /** Furthest the pointer got from pressedAt during this press, in screen pixels. */
  let reach = 0;
  let hover: Point | null = null;

  const preview = (ctx: ToolContext) => {
    if (lasso) ctx.setPreview({ points: lasso, closed: false });
    else if (vertices.length) ctx.setPreview({ points: hover ? [...vertices, hover] : vertices, closed: false });
    else ctx.setPreview(null);
  };

  const reset = (ctx: ToolContext) => {
    vertices = [];
    lasso = null;
    pressedAt = null;
    ctx.setPreview(null);
  };

  const close = (ctx: ToolContext, points: Point[], erase: boolean) => {
    reset(ctx);
    if (points.length < 3) return;
    ctx.model.beginStroke(erase ? 'Polygon erase' : 'Polygon');
    fillPolygon(ctx.model, points, erase ? ERASE : paintValue(ctx));
    ctx.commit();
  };

  const screenDistance = (ctx: ToolContext, a: Point, b: Point) => Math.hypot(a.x - b.x, a.y - b.y) / ctx.imagePixelsPerScreenPixel;

  return {
    name: 'polygon',
    title: 'Polygon / lasso',
    shortcut: 'P',
    help: 'Click vertices (double-click, Enter or click the first vertex to close) or drag a lasso. Alt at closing erases. Backspace removes a vertex, Escape cancels.',
    cursor: 'crosshair',
    pointerDown(_ctx, p) {
      pressedAt = { x: p.x, y: p.y };
      reach = 0;
      if (vertices.length === 0) lasso = [{ x: p.x, y: p.y }];
    },
    pointerMove(ctx, p, pressed) {
      hover = { x: p.x, y: p.y };
      if (pressed && lasso && pressedAt) {
        reach = Math.max(reach, screenDistance(ctx, pressedAt, p));
        const lastPoint = lasso[lasso.length - 1];
        if (Math.hypot(p.x - lastPoint.x, p.y - lastPoint.y) >= 0.5) lasso.push({ x: p.x, y: p.y });
      }
      preview(ctx);
    },
    pointerUp(ctx, p: PointerInput) {
      const start = pressedAt;
      pressedAt = null;
      if (lasso && start && Math.max(reach, screenDistance(ctx, start, p)) > LASSO_THRESHOLD) {
        close(ctx, lasso, p.alt);
        return;
      }
      lasso = null;
      const point = { x: p.x, y: p.y };
      if (vertices.length >= 3 && (p.clicks >= 2 || screenDistance(ctx, vertices[0], point) <= CLOSE_DISTANCE)) {
        close(ctx, vertices, p.alt);
        return;
      }
      // The second click of a double-click lands on the vertex the first click just added.
      if (p.clicks < 2 || vertices.length === 0) vertices.push(point);
      preview(ctx);
    },
    key(ctx, key) {
      if (!vertices.length && !lasso) return false;
      if (key === 'Enter') close(ctx, vertices, false);
      else if (key === 'Escape') reset(ctx);
      else if (key === 'Backspace') {
        vertices.pop();
        preview(ctx);
      } else return false;
      return true;
    },
    cancel(ctx) {
      reset(ctx);
    },
  };
}
