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
    const hit = ctx.model.pixelUnder(p);
    if (!hit) return;
    const id = hit.instance;
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
