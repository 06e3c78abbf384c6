import type { Tool, ToolName } from '../tool';
import { createBrushTool } from './brush';
import { createEraserTool } from './eraser';
import { fillTool } from './fill';
import { deleteInstanceTool } from './instance-delete';
import { createMergeTool } from './instance-merge';
import { createNewInstanceTool } from './instance-new';
import { createSplitTool } from './instance-split';
import { createPolygonTool } from './polygon';
import { createUnknownTool } from './unknown';

/** A fresh set per editor: tools with state (polygon, merge, split) must not be shared. */
export function createTools(): Record<ToolName, Tool> {
  return {
    brush: createBrushTool(),
    eraser: createEraserTool(),
    fill: fillTool,
    polygon: createPolygonTool(),
    unknown: createUnknownTool(),
    'instance-new': createNewInstanceTool(),
    'instance-merge': createMergeTool(),
    'instance-split': createSplitTool(),
    'instance-delete': deleteInstanceTool,
  };
}
