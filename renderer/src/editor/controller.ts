import { MAX_TARGET_CLASSES } from '../../../src/shared/types';
import { History } from './history';
import type { MaskModel, Patch, Rect } from './model';
import type { EditorSettings, PointerInput, Tool, ToolContext, ToolName, ToolPreview } from './tool';
import { giveLoosePixelsObjects } from './raster';
import { createTools } from './tools';
import { fitViewport, pan, screenToImage, zoomAt, type Viewport } from './viewport';

/** What the controller needs from whatever draws (the canvas view, or a fake in tests). */
export interface EditorSurface {
  /** CSS pixels of the drawing area. */
  size(): { width: number; height: number };
  setViewport(vp: Viewport): void;
  setPreview(preview: ToolPreview | null): void;
  /** Brush outline at a screen position (null hides it). */
  setCursor(cursor: { x: number; y: number; radius: number; kind: Tool['cursor'] } | null): void;
}

export interface Modifiers {
  shift?: boolean;
  alt?: boolean;
  ctrl?: boolean;
}

export type CommitKind = 'stroke' | 'undo' | 'redo';

export interface ControllerOptions {
  model: MaskModel;
  surface?: EditorSurface;
  settings?: Partial<EditorSettings>;
  /** Every finished stroke, undo and redo: the wrapper saves the mask here. */
  onCommit?(patch: Patch, kind: CommitKind): void;
  /** Tool, settings, zoom or undo availability changed: the UI re-reads them. */
  onStateChange?(): void;
}

export interface Shortcut {
  keys: string;
  does: string;
}

const ZOOM_STEP = 1.25;
const PAN_STEP = 64;

/**
 * Turns pointer, wheel and key input into tool calls, undo steps and viewport changes. Knows no
 * DOM: coordinates are CSS pixels relative to the drawing area, so it is unit-tested in Node.
 */
export class EditorController {
  readonly model: MaskModel;
  readonly history = new History();
  readonly tools: Record<ToolName, Tool> = createTools();
  readonly settings: EditorSettings;
  private toolName: ToolName = 'brush';
  private vp: Viewport = { scale: 1, offsetX: 0, offsetY: 0 };
  private surface: EditorSurface | null;
  private readonly options: ControllerOptions;
  private pressed: 'tool' | 'pan' | null = null;
  private lastScreen: { x: number; y: number } | null = null;
  private spaceHeld = false;
  private preview: ToolPreview | null = null;

  constructor(options: ControllerOptions) {
    this.options = options;
    this.model = options.model;
    this.surface = options.surface ?? null;
    this.settings = { brushRadius: 6, activeClass: 1, instanceMode: false, activeInstance: 0, ...options.settings };
    this.fit();
  }

  /** Connects the view once it exists (the wrapper creates it after the controller) and fits the image. */
  attachSurface(surface: EditorSurface): void {
    this.surface = surface;
    this.fit();
  }

  get tool(): ToolName {
    return this.toolName;
  }

  get viewport(): Viewport {
    return this.vp;
  }

  get currentPreview(): ToolPreview | null {
    return this.preview;
  }

  setTool(name: ToolName): void {
    if (name === this.toolName) return;
    if (name.startsWith('instance-') && !this.settings.instanceMode && !this.setInstanceMode(true)) return;
    this.tools[this.toolName].cancel?.(this.context());
    this.toolName = name;
    this.changed();
  }

  setBrushRadius(radius: number): void {
    this.settings.brushRadius = Math.max(0, Math.min(256, Math.round(radius)));
    this.changed();
  }

  /**
   * Objects are stored as object ids of one class (the engine's instance target), so with objects
   * on, or in a mask that has objects, only class 1 is painted: a second class would be lost.
   */
  get singleClass(): boolean {
    return this.settings.instanceMode || this.model.hasObjects;
  }

  setActiveClass(cls: number): void {
    this.settings.activeClass = this.singleClass ? 1 : Math.max(1, Math.min(MAX_TARGET_CLASSES, Math.round(cls)));
    this.changed();
  }

  /** Returns false, changing nothing, when objects cannot be turned on: the mask holds a class other than 1. */
  setInstanceMode(on: boolean): boolean {
    if (on && !this.model.hasObjects) {
      const counts = this.model.classCounts();
      for (let c = 2; c < 255; c++) if (counts[c] > 0) return false;
    }
    this.settings.instanceMode = on;
    if (on) this.settings.activeClass = 1;
    else this.settings.activeInstance = 0;
    this.changed();
    return true;
  }

  /** Starts a new object: the next brush stroke paints a fresh id. */
  newObject(): void {
    if (!this.settings.instanceMode && !this.setInstanceMode(true)) return;
    this.settings.activeInstance = 0;
    this.changed();
  }

  undo(): Patch | null {
    this.tools[this.toolName].cancel?.(this.context());
    const patch = this.history.undo(this.model);
    if (patch) this.options.onCommit?.(patch, 'undo');
    this.changed();
    return patch;
  }

  redo(): Patch | null {
    const patch = this.history.redo(this.model);
    if (patch) this.options.onCommit?.(patch, 'redo');
    this.changed();
    return patch;
  }

  /** Records a change made outside the tools (a proposal taken over) as an undo step. */
  recordExternal(patch: Patch | null): void {
    if (!patch) return;
    this.history.push(patch);
    this.options.onCommit?.(patch, 'stroke');
    this.changed();
  }

  fit(): void {
    const size = this.surface?.size() ?? { width: this.model.width, height: this.model.height };
    this.setViewport(fitViewport(this.model.width, this.model.height, Math.max(1, size.width), Math.max(1, size.height)));
  }

  zoom(factor: number, at?: { x: number; y: number }): void {
    const size = this.surface?.size() ?? { width: this.model.width, height: this.model.height };
    const centre = at ?? { x: size.width / 2, y: size.height / 2 };
    this.setViewport(zoomAt(this.vp, factor, centre.x, centre.y));
  }

  /** 1 image pixel = 1 screen pixel, centred on the view. */
  actualSize(): void {
    this.zoom(1 / this.vp.scale);
  }

  panBy(dx: number, dy: number): void {
    this.setViewport(pan(this.vp, dx, dy));
  }

  setViewport(vp: Viewport): void {
    this.vp = vp;
    this.surface?.setViewport(vp);
    this.changed();
  }

  pointerDown(sx: number, sy: number, button: number, mods: Modifiers = {}, clicks = 1): void {
    this.lastScreen = { x: sx, y: sy };
    if (button === 1 || this.spaceHeld) {
      this.pressed = 'pan';
      return;
    }
    if (button !== 0) return;
    this.pressed = 'tool';
    this.tools[this.toolName].pointerDown(this.context(), this.input(sx, sy, button, mods, clicks));
  }

  pointerMove(sx: number, sy: number, mods: Modifiers = {}): void {
    if (this.pressed === 'pan' && this.lastScreen) {
      this.panBy(sx - this.lastScreen.x, sy - this.lastScreen.y);
      this.lastScreen = { x: sx, y: sy };
      return;
    }
    this.lastScreen = { x: sx, y: sy };
    const tool = this.tools[this.toolName];
    tool.pointerMove(this.context(), this.input(sx, sy, 0, mods, 1), this.pressed === 'tool');
    this.surface?.setCursor({ x: sx, y: sy, radius: (this.settings.brushRadius + 0.5) * this.vp.scale, kind: tool.cursor });
  }

  pointerUp(sx: number, sy: number, button: number, mods: Modifiers = {}, clicks = 1): void {
    const was = this.pressed;
    this.pressed = null;
    if (was === 'tool') this.tools[this.toolName].pointerUp(this.context(), this.input(sx, sy, button, mods, clicks));
  }

  pointerLeave(): void {
    this.surface?.setCursor(null);
  }

  /** Wheel zooms at the cursor (napari, Fiji); with Shift it pans. */
  wheel(sx: number, sy: number, deltaX: number, deltaY: number, mods: Modifiers = {}): void {
    if (mods.shift) {
      this.panBy(-deltaX, -deltaY);
      return;
    }
    this.zoom(Math.pow(2, -deltaY / 300), { x: sx, y: sy });
  }

  /** The help overlay's lines: one per tool from its own shortcut, then the editor's keys. */
  static readonly shortcuts: readonly Shortcut[] = [
    ...Object.values(createTools()).map((t) => ({ keys: t.shortcut, does: t.title })),
    { keys: 'I', does: 'Instance mode on/off' },
    { keys: '1 … 9', does: 'Active class' },
    { keys: '[  ]', does: 'Brush smaller / larger' },
    { keys: 'Ctrl+Z, Ctrl+Shift+Z / Ctrl+Y', does: 'Undo, redo (a whole stroke)' },
    { keys: 'Wheel, + −', does: 'Zoom at the cursor / the centre' },
    { keys: 'Space-drag, middle-drag, arrows, Shift+wheel', does: 'Pan' },
    { keys: '0 / Shift+1', does: 'Fit to window / 1:1 pixels' },
    { keys: 'Alt while painting', does: 'Paint background instead' },
    { keys: 'Enter / Esc / Backspace', does: 'Close, cancel, undo a vertex (polygon)' },
  ];

  /** Keyboard input; returns true when the key was used (the wrapper then prevents the default). */
  keyDown(key: string, mods: Modifiers = {}): boolean {
    const tool = this.tools[this.toolName];
    if (!mods.ctrl && tool.key?.(this.context(), key)) return true;
    const lower = key.toLowerCase();
    if (mods.ctrl) {
      if (lower === 'z' && !mods.shift) return this.undo(), true;
      if ((lower === 'z' && mods.shift) || lower === 'y') return this.redo(), true;
      return false;
    }
    if (key === ' ') {
      this.spaceHeld = true;
      return true;
    }
    const keyed = Object.values(this.tools).find((t) => t.shortcut.toLowerCase() === lower);
    if (keyed && !mods.shift) return this.setTool(keyed.name), true;
    if (lower === 'i') return this.setInstanceMode(!this.settings.instanceMode);
    if (/^[1-9]$/.test(key) && !mods.shift) return this.setActiveClass(Number(key)), true;
    if (key === '!' || (key === '1' && mods.shift)) return this.actualSize(), true;
    if (key === '0') return this.fit(), true;
    if (key === '[') return this.setBrushRadius(this.settings.brushRadius > 8 ? this.settings.brushRadius / 1.25 : this.settings.brushRadius - 1), true;
    if (key === ']') return this.setBrushRadius(this.settings.brushRadius >= 8 ? this.settings.brushRadius * 1.25 : this.settings.brushRadius + 1), true;
    if (key === '+' || key === '=') return this.zoom(ZOOM_STEP), true;
    if (key === '-' || key === '_') return this.zoom(1 / ZOOM_STEP), true;
    const arrows: Record<string, [number, number]> = { ArrowLeft: [PAN_STEP, 0], ArrowRight: [-PAN_STEP, 0], ArrowUp: [0, PAN_STEP], ArrowDown: [0, -PAN_STEP] };
    if (arrows[key]) return this.panBy(...arrows[key]), true;
    return false;
  }

  keyUp(key: string): void {
    if (key === ' ') this.spaceHeld = false;
  }

  /** Leaving the image: finish a stroke in progress so nothing painted is left unsaved. */
  dispose(): void {
    this.tools[this.toolName].cancel?.(this.context());
    if (this.model.inStroke) this.commitStroke();
  }

  private input(sx: number, sy: number, button: number, mods: Modifiers, clicks: number): PointerInput {
    const p = screenToImage(this.vp, sx, sy);
    return { x: p.x, y: p.y, button, shift: !!mods.shift, alt: !!mods.alt, clicks };
  }

  private context(): ToolContext {
    return {
      model: this.model,
      settings: this.settings,
      imagePixelsPerScreenPixel: 1 / this.vp.scale,
      setActiveInstance: (id) => {
        this.settings.activeInstance = id;
        this.changed();
      },
      setPreview: (preview) => {
        this.preview = preview;
        this.surface?.setPreview(preview);
      },
      commit: () => this.commitStroke(),
    };
  }

  private commitStroke(): void {
    if (this.model.inStroke) giveLoosePixelsObjects(this.model);
    const patch = this.model.endStroke();
    if (!patch) return;
    this.history.push(patch);
    this.options.onCommit?.(patch, 'stroke');
    this.changed();
  }

  private changed(): void {
    this.options.onStateChange?.();
  }
}

export type { Rect };
