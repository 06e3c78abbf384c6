import { regionAt, writeIndices } from '../raster';
import { ERASE, paintValue, type Tool } from '../tool';

/** Fills the 4-connected region of equal pixels under the click; Alt fills with background. */
export const fillTool: Tool = {
  name: 'fill',
  title: 'Flood fill',
  shortcut: 'F',
  help: 'Fill the connected region under the cursor with the active class. Alt-click fills with background.',
  cursor: 'crosshair',
  pointerDown(ctx, p) {
    const region = regionAt(ctx.model, p.x, p.y);
    if (!region) return;
    const value = p.alt ? ERASE : paintValue(ctx);
    const seed = Math.floor(p.y) * ctx.model.width + Math.floor(p.x);
    if (ctx.model.classes[seed] === value.cls && ctx.model.instances[seed] === value.instance) return;
    ctx.model.beginStroke('Flood fill');
    writeIndices(ctx.model, region.indices, region.bounds, value);
    ctx.commit();
  },
  pointerMove() {},
  pointerUp() {},
};
