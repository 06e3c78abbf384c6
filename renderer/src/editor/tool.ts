import type { MaskModel } from './model';
import type { PaintValue, Point } from './raster';

export type ToolName = 'brush' | 'eraser' | 'fill' | 'polygon' | 'unknown' | 'instance-new' | 'instance-merge' | 'instance-split' | 'instance-delete';

/** What the user set in the tool bar; tools read it at each event. */
export interface EditorSettings {
  /** Brush, eraser and unknown-brush radius in image pixels. */
  brushRadius: number;
  /** Class painted by brush, fill and polygon (1..254). */
  activeClass: number;
  /** Instance mode: painting writes object ids, so touching objects stay apart. */
  instanceMode: boolean;
  /** Object the brush paints in instance mode; 0: a new one is made at the next stroke. */
  activeInstance: number;
}

export interface PointerInput extends Point {
  /** Image coordinates (fractional); x = 0.5 is the middle of the first column. */
  button: number;
  shift: boolean;
  alt: boolean;
  /** 2 on the second click of a double click. */
  clicks: number;
}

/** A shape the view draws over the mask while a tool works (polygon in progress, split line). */
export interface ToolPreview {
  points: Point[];
  closed: boolean;
  /** Object being picked by merge, drawn highlighted. */
  highlightInstance?: number;
}

export interface ToolContext {
  readonly model: MaskModel;
  readonly settings: EditorSettings;
  /** Image pixels per screen pixel at the current zoom, for distances that should feel constant on screen. */
  readonly imagePixelsPerScreenPixel: number;
  setActiveInstance(id: number): void;
  setPreview(preview: ToolPreview | null): void;
  /** Ends the model's stroke and records it as one undo step (and one save). */
  commit(): void;
}

export interface Tool {
  readonly name: ToolName;
  readonly title: string;
  /** The key that selects the tool (the editor's only record of it; the help overlay lists it). */
  readonly shortcut: string;
  /** Brush tools show a circle of the brush size as the cursor. */
  readonly cursor: 'brush' | 'crosshair';
  readonly help: string;
  pointerDown(ctx: ToolContext, p: PointerInput): void;
  /** Called for every move; `pressed` says whether a button is down. */
  pointerMove(ctx: ToolContext, p: PointerInput, pressed: boolean): void;
  pointerUp(ctx: ToolContext, p: PointerInput): void;
  /** Enter, Escape, Backspace while the tool is in the middle of something; true when used. */
  key?(ctx: ToolContext, key: string): boolean;
  /** The user switched tools or images: drop anything half done. */
  cancel?(ctx: ToolContext): void;
}

/** The value brush, fill and polygon write: the active class, and in instance mode the active object. */
export function paintValue(ctx: ToolContext): PaintValue {
  const { settings } = ctx;
  if (!settings.instanceMode) return { cls: settings.activeClass, instance: 0 };
  let instance = settings.activeInstance;
  if (instance <= 0) {
    instance = ctx.model.nextInstanceId();
    ctx.setActiveInstance(instance);
  }
  return { cls: settings.activeClass, instance };
}

export const ERASE: PaintValue = { cls: 0, instance: 0 };
