import { UNKNOWN } from '../model';
import { paintingTool } from './paint';

/**
 * Marks pixels as not labeled (value 255): training ignores them, so a scientist can label only
 * the parts of an image they are sure of (sparse labels).
 */
export const createUnknownTool = () =>
  paintingTool({
    name: 'unknown',
    title: 'Unknown brush',
    shortcut: 'U',
    help: 'Mark pixels as unlabeled: training ignores them (sparse labels).',
    valueForStroke: () => ({ cls: UNKNOWN, instance: 0 }),
  });
