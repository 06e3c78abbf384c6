import type { MaskModel, Patch } from './model';

function patchBytes(patch: Patch): number {
  let bytes = 0;
  for (const t of patch.tiles) bytes += t.beforeClasses.byteLength * 2 + t.beforeInstances.byteLength * 2;
  return bytes;
}

/**
 * Undo/redo of whole strokes. Steps are the model's changed-region patches, so memory follows the
 * area edited, not the image size; the oldest steps are dropped past `maxBytes`.
 */
export class History {
  private undoStack: Patch[] = [];
  private redoStack: Patch[] = [];
  private bytes = 0;
  private readonly maxBytes: number;

  constructor(options: { maxBytes?: number } = {}) {
    this.maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
  }

  get canUndo(): boolean {
    return this.undoStack.length > 0;
  }

  get canRedo(): boolean {
    return this.redoStack.length > 0;
  }

  get undoDepth(): number {
    return this.undoStack.length;
  }

  push(patch: Patch): void {
    this.undoStack.push(patch);
    this.bytes += patchBytes(patch);
    for (const dropped of this.redoStack) this.bytes -= patchBytes(dropped);
    this.redoStack = [];
    while (this.bytes > this.maxBytes && this.undoStack.length > 1) this.bytes -= patchBytes(this.undoStack.shift()!);
  }

  undo(model: MaskModel): Patch | null {
    const patch = this.undoStack.pop();
    if (!patch) return null;
    model.applyPatch(patch, 'undo');
    this.redoStack.push(patch);
    return patch;
  }

  redo(model: MaskModel): Patch | null {
    const patch = this.redoStack.pop();
    if (!patch) return null;
    model.applyPatch(patch, 'redo');
    this.undoStack.push(patch);
    return patch;
  }

  clear(): void {
    this.undoStack = [];
    this.redoStack = [];
    this.bytes = 0;
  }
}
