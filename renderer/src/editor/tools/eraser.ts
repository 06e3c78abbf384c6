import { ERASE } from '../tool';
import { paintingTool } from './paint';

/** Back to background: class 0, no object. */
export const createEraserTool = () =>
  paintingTool({
    name: 'eraser',
    title: 'Eraser',
    shortcut: 'E',
    help: 'Erase to background. [ and ] change the size.',
    valueForStroke: () => ERASE,
  });
