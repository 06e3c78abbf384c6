import type { ImageDetail, MaskBlock } from '../../../src/shared';
import { binaryUrls } from '../../../src/shared';
import { encodeRegion, fromStored, type StoredMask } from '../editor/codec';
import type { CommitKind } from '../editor/controller';
import { EditorController } from '../editor/controller';
import type { ChannelDisplay, RawImage } from '../editor/display';
import { defaultColors } from '../editor/display';
import { MaskModel, type Patch } from '../editor/model';
import type { OverlayMode } from '../editor/overlay';
import type { ToolName } from '../editor/tool';
import { call, fetchMask, fetchPixels } from '../lib/api';
import { app } from './app.svelte';

/** Longest gap between two edits that still counts as working time (a coffee break does not). */
const MAX_ACTIVE_GAP_MS = 2 * 60_000;

export type ProposalState = 'none' | 'pending' | 'accepted' | 'editing' | 'rejected';
export type SaveState = 'saved' | 'saving' | 'failed';

/**
 * One open image in the annotator: its pixels and display settings, the editor (model +
 * controller), the model's proposal and what the user decided about it, and the save queue that
 * stores every stroke as a new label version the moment it ends.
 */
export class AnnotatorState {
  detail = $state<ImageDetail | null>(null);
  image = $state.raw<RawImage | null>(null);
  displays = $state<ChannelDisplay[]>([]);
  opacity = $state(0.45);
  overlayMode = $state<OverlayMode>('fill');
  loading = $state(false);
  loadError = $state<string | null>(null);
  /** Mirrors of the controller's state for the tool bar (the controller is not reactive). */
  tool = $state<ToolName>('brush');
  brushRadius = $state(6);
  activeClass = $state(1);
  instanceMode = $state(false);
  activeInstance = $state(0);
  canUndo = $state(false);
  canRedo = $state(false);
  zoom = $state(1);
  /** Where the image sits in the editor (CSS px): exposed as data attributes for tests and tooling. */
  offset = $state({ x: 0, y: 0 });
  proposal = $state<ProposalState>('none');
  proposalModelId = $state<number | null>(null);
  saveState = $state<SaveState>('saved');
  saveError = $state<string | null>(null);
  /** Latest stored label version of this image (what the next patch builds on). */
  version = $state<number | null>(null);
  savedCount = $state(0);
  controller = $state.raw<EditorController | null>(null);

  /** dtype the stored label has or will have once queued saves land; null: no label yet. */
  private plannedDtype: StoredMask['dtype'] | null = null;
  private queue: Promise<void> = Promise.resolve();
  private lastActivity = 0;
  private openedAt = 0;
  private loadToken = 0;

  get imageId(): number | null {
    return this.detail?.id ?? null;
  }

  async open(imageId: number): Promise<void> {
    const token = ++this.loadToken;
    this.close();
    this.loading = true;
    this.loadError = null;
    try {
      const detail = await call('images:get', { imageId });
      const [pixels, label, proposal] = await Promise.all([
        fetchPixels(binaryUrls.pixels(imageId)),
        detail.label ? fetchMask(binaryUrls.label(imageId)) : Promise.resolve(null),
        detail.proposal && !detail.label ? fetchMask(binaryUrls.proposal(imageId)) : Promise.resolve(null),
      ]);
      if (token !== this.loadToken) return;
      if (pixels.dtype === 'float32') throw new Error('floating-point images are not shown yet');
      const image: RawImage = {
        width: pixels.width,
        height: pixels.height,
        channels: pixels.channels,
        bitDepth: pixels.dtype === 'uint16' ? 16 : 8,
        data: pixels.data as Uint8Array | Uint16Array,
      };
      const colors = defaultColors(image.channels);
      // The server's auto window (1st-99.8th percentile) is what the engine normalises to.
      this.displays = detail.contrast.map((c, i) => ({ min: c.low, max: Math.max(c.high, c.low + 1), color: colors[i] ?? colors[0], visible: true }));
      let model: MaskModel;
      if (label) {
        const stored = fromStored(asStored(label));
        model = new MaskModel(image.width, image.height, stored.classes, stored.instances);
        this.version = label.version;
        this.plannedDtype = label.dtype;
        this.proposal = 'none';
      } else if (proposal) {
        // Shown as the starting mask; nothing is stored until the user accepts, edits or rejects.
        const stored = fromStored(asStored(proposal));
        model = new MaskModel(image.width, image.height, stored.classes, stored.instances);
        this.proposal = 'pending';
        this.proposalModelId = proposal.modelId;
      } else {
        model = new MaskModel(image.width, image.height);
      }
      this.detail = detail;
      this.image = image;
      this.instanceMode = model.hasInstances;
      this.controller = new EditorController({
        model,
        settings: { brushRadius: this.brushRadius, activeClass: this.activeClass, instanceMode: this.instanceMode },
        onCommit: (patch, kind) => this.committed(patch, kind),
        onStateChange: () => this.syncFromController(),
      });
      this.openedAt = performance.now();
      this.lastActivity = this.openedAt;
      this.syncFromController();
    } catch (error) {
      if (token === this.loadToken) this.loadError = error instanceof Error ? error.message : String(error);
    } finally {
      if (token === this.loadToken) this.loading = false;
    }
  }

  close(): void {
    this.controller?.dispose();
    this.controller = null;
    this.detail = null;
    this.image = null;
    this.version = null;
    this.plannedDtype = null;
    this.proposal = 'none';
    this.proposalModelId = null;
    this.saveError = null;
    this.saveState = 'saved';
  }

  /** Resolves when every stroke so far is stored. */
  flushed(): Promise<void> {
    return this.queue;
  }

  autoContrast(): void {
    const detail = this.detail;
    if (!detail) return;
    this.displays = this.displays.map((d, i) => ({ ...d, min: detail.contrast[i].low, max: Math.max(detail.contrast[i].high, detail.contrast[i].low + 1) }));
  }

  fullRange(): void {
    const detail = this.detail;
    if (!detail) return;
    this.displays = this.displays.map((d, i) => ({ ...d, min: detail.contrast[i].min, max: Math.max(detail.contrast[i].max, detail.contrast[i].min + 1) }));
  }

  /** The proposal as it is becomes the label. */
  async acceptProposal(): Promise<void> {
    const detail = this.detail;
    if (!detail || this.proposal !== 'pending') return;
    this.plannedDtype = detail.proposal?.dtype ?? 'uint8';
    await this.enqueue(async () => {
      const saved = await call('proposals:decide', { imageId: detail.id, decision: 'accept', timeSpentMs: this.takeTime() });
      if (saved) this.version = saved.version;
      this.proposal = 'accepted';
      this.savedCount++;
      this.markLabeled();
    });
  }

  /** Records the rejection and clears the mask to draw from scratch (one undo step, not stored until drawn). */
  async rejectProposal(): Promise<void> {
    const detail = this.detail;
    const controller = this.controller;
    if (!detail || !controller || this.proposal !== 'pending') return;
    await this.enqueue(async () => {
      await call('proposals:decide', { imageId: detail.id, decision: 'reject', timeSpentMs: this.takeTime() });
      this.proposal = 'rejected';
    });
    const { model } = controller;
    const empty = model.replaceAll(new Uint8Array(model.width * model.height), null, 'Reject proposal');
    // Not an edit to store: the rejection is recorded; the next stroke saves a manual label.
    if (empty) controller.history.push(empty);
    this.syncFromController();
  }

  setTool(tool: ToolName): void {
    this.controller?.setTool(tool);
  }

  private syncFromController(): void {
    const c = this.controller;
    if (!c) return;
    this.tool = c.tool;
    this.brushRadius = c.settings.brushRadius;
    this.activeClass = c.settings.activeClass;
    this.instanceMode = c.settings.instanceMode;
    this.activeInstance = c.settings.activeInstance;
    this.canUndo = c.history.canUndo;
    this.canRedo = c.history.canRedo;
    this.zoom = c.viewport.scale;
    this.offset = { x: c.viewport.offsetX, y: c.viewport.offsetY };
  }

  private takeTime(): number {
    const now = performance.now();
    const spent = Math.min(now - this.lastActivity, MAX_ACTIVE_GAP_MS);
    this.lastActivity = now;
    return Math.max(0, Math.round(spent));
  }

  private committed(patch: Patch, _kind: CommitKind): void {
    const detail = this.detail;
    const controller = this.controller;
    if (!detail || !controller) return;
    if (this.proposal === 'pending') this.proposal = 'editing';
    const source = this.proposal === 'editing' || this.proposal === 'accepted' ? 'edited_proposal' : 'manual';
    const timeSpentMs = this.takeTime();
    const { model } = controller;
    // Objects need int32 ids; once a mask has had objects it stays int32 so patches keep one dtype.
    const dtype = model.hasInstances || this.plannedDtype === 'int32' ? 'int32' : 'uint8';
    // Decided now, not when the queued save runs: the first save may still be in flight.
    const whole = this.plannedDtype !== dtype;
    this.plannedDtype = dtype;
    // Encode now so later strokes cannot leak into this save; only the changed rectangle unless
    // the whole mask must be stored, so a stroke on a 4096 x 4096 mask stays small.
    const region = whole ? { x: 0, y: 0, width: model.width, height: model.height } : patch.bounds;
    const encoded = encodeRegion(model.width, model.classes, model.instances, region, dtype);
    void this.enqueue(async () => {
      const common = { imageId: detail.id, unknown: encoded.unknown, source, timeSpentMs, pixelsChanged: patch.pixelsChanged } as const;
      const saved =
        whole || this.version === null
          ? await call('labels:save', { ...common, mask: { width: model.width, height: model.height, data: encoded.data }, parentVersion: this.version })
          : await call('labels:patch', { ...common, baseVersion: this.version, ...region, data: encoded.data });
      this.version = saved.version;
      this.savedCount++;
      this.markLabeled();
    });
  }

  /** A save makes the image 'labeled' (a reviewed image needs a new review after an edit). */
  private markLabeled(): void {
    if (this.detail && this.detail.status !== 'labeled') this.detail = { ...this.detail, status: 'labeled' };
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    this.saveState = 'saving';
    this.queue = this.queue
      .then(work)
      .then(() => {
        this.saveState = 'saved';
        this.saveError = null;
      })
      .catch((error: unknown) => {
        this.saveState = 'failed';
        this.saveError = error instanceof Error ? error.message : String(error);
        app.error(error);
      });
    return this.queue;
  }
}

function asStored(block: MaskBlock): StoredMask {
  return { width: block.width, height: block.height, dtype: block.dtype, data: block.data, unknown: block.unknown };
}

export const annotator = new AnnotatorState();
