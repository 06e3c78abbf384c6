import { ERASE, paintValue } from '../tool';
import { paintingTool } from './paint';

/** Paints the active class (and, in instance mode, the active object); Alt paints background. */
export const createBrushTool = () =>
  paintingTool({
    name: 'brush',
    title: 'Brush',
    shortcut: 'B',
    help: 'Paint the active class. Alt-drag erases. [ and ] change the size.',
    valueForStroke: (ctx, p) => (p.alt ? ERASE : paintValue(ctx)),
  });
