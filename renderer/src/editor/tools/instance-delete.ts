import { objectPixels, writeIndices } from '../raster';
import { ERASE, type Tool } from '../tool';

/** Click an object to remove it entirely (its pixels become background). */
export const deleteInstanceTool: Tool = {
  name: 'instance-delete',
  title: 'Delete object',
  shortcut: 'D',
  help: 'Click an object to delete it.',
  cursor: 'crosshair',
  pointerDown(ctx, p) {
    const x = Math.floor(p.x);
    const y = Math.floor(p.y);
    if (!ctx.model.contains(x, y)) return;
    const id = ctx.model.instanceAt(x, y);
    const object = objectPixels(ctx.model, id);
    if (!object) return;
    ctx.model.beginStroke('Delete object');
    writeIndices(ctx.model, object.indices, object.bounds, ERASE);
    if (ctx.settings.activeInstance === id) ctx.setActiveInstance(0);
    ctx.commit();
  },
  pointerMove() {},
  pointerUp() {},
};
