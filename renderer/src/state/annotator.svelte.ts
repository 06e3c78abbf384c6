import type { ImageDetail, LabelVersionSummary, MaskBlock } from '../../../src/shared';
import { binaryUrls } from '../../../src/shared';
import { encodeRegion, fromStored, type StoredMask } from '../editor/codec';
import type { CommitKind } from '../editor/controller';
import { EditorController } from '../editor/controller';
import type { ChannelDisplay, RawImage } from '../editor/display';
import { autoWindows, defaultColors, fullRange, isNaturalColour } from '../editor/display';
import { MaskModel, type Patch } from '../editor/model';
import type { OverlayMode } from '../editor/overlay';
import type { ToolName } from '../editor/tool';
import { call, fetchMask, fetchPixels } from '../lib/api';
import { SaveQueue, type SaveQueueState, type SaveTarget } from '../lib/saveQueue';
import { app } from './app.svelte';

/** Longest gap between two edits that still counts as working time (a coffee break does not). */
const MAX_ACTIVE_GAP_MS = 2 * 60_000;

export type ProposalState = 'none' | 'pending' | 'accepted' | 'editing' | 'rejected';
/** retrying: a save failed; it is kept and retried until it lands. */
export type SaveState = 'saved' | 'saving' | 'retrying';

/**
 * One open image in the annotator: its pixels and display settings, the editor (model +
 * controller), the model's proposal and what the user decided about it, and the save queue that
 * stores every stroke as a new label version the moment it ends.
 */
export class AnnotatorState {
  detail = $state<ImageDetail | null>(null);
  image = $state.raw<RawImage | null>(null);
  displays = $state<ChannelDisplay[]>([]);
  /** One contrast window for every channel (natural colour); default for 8-bit RGB(A). */
  linked = $state(false);
  opacity = $state(0.45);
  overlayMode = $state<OverlayMode>('fill');
  loading = $state(false);
  loadError = $state<string | null>(null);
  /** Mirrors of the controller's state for the tool bar (the controller is not reactive). */
  tool = $state<ToolName>('brush');
  brushRadius = $state(6);
  activeClass = $state(1);
  instanceMode = $state(false);
  /** Objects are of class 1 only: other classes cannot be chosen (see EditorController.singleClass). */
  singleClass = $state(false);
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
  /** Saves not yet stored, in every image (a failed one stays queued and is retried). */
  pendingSaves = $state(0);
  /** Latest stored label version of this image (what the next patch builds on). */
  version = $state<number | null>(null);
  savedCount = $state(0);
  controller = $state.raw<EditorController | null>(null);

  /** The project and image shown: image ids repeat across projects. */
  private target: SaveTarget | null = null;
  /** dtype the stored label has or will have once queued saves land; null: no label yet. */
  private plannedDtype: StoredMask['dtype'] | null = null;
  /** The undo step that cleared a rejected proposal: undoing it brings the proposal back. */
  private rejectPatch: Patch | null = null;
  private readonly saves = new SaveQueue(
    {
      saveWhole: (request) => call('labels:save', request),
      savePatch: (request) => call('labels:patch', request),
      decide: (request) => call('proposals:decide', request),
    },
    (state, saved) => this.savesChanged(state, saved),
  );
  private lastActivity = 0;
  private openedAt = 0;
  private loadToken = 0;

  get imageId(): number | null {
    return this.detail?.id ?? null;
  }

  /** Whether the annotator shows this image of this project. */
  shows(projectUuid: string | undefined, imageId: number | null): boolean {
    return this.target !== null && this.target.projectUuid === projectUuid && this.target.imageId === imageId;
  }

  async open(imageId: number): Promise<void> {
    const projectUuid = app.project?.uuid;
    if (!projectUuid) return;
    this.close();
    const token = ++this.loadToken;
    this.target = { projectUuid, imageId };
    this.loading = true;
    this.loadError = null;
    try {
      const detail = await call('images:get', { imageId });
      // Edits still on their way to the project are newer than the stored label.
      const unsaved = this.saves.pendingModel(this.target);
      const [pixels, label, proposal] = await Promise.all([
        fetchPixels(binaryUrls.pixels(imageId)),
        detail.label && !unsaved ? fetchMask(binaryUrls.label(imageId)) : Promise.resolve(null),
        detail.proposal && !detail.label && !unsaved ? fetchMask(binaryUrls.proposal(imageId)) : Promise.resolve(null),
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
      this.linked = isNaturalColour(image);
      // An alpha channel is not a colour of the sample.
      const windows = autoWindows(detail.contrast, this.linked);
      this.displays = windows.map((w, i) => ({ ...w, color: colors[i] ?? colors[0], visible: !(this.linked && i === 3) }));
      let model: MaskModel;
      if (unsaved) {
        model = unsaved;
        this.version = this.saves.knownVersion(this.target);
        this.plannedDtype = model.hasObjects ? 'int32' : 'uint8';
        this.proposal = 'none';
      } else if (label) {
        const stored = fromStored(asStored(label));
        model = new MaskModel(image.width, image.height, stored.classes, stored.instances);
        this.version = label.version;
        this.saves.setKnownVersion(this.target, label.version);
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
      this.instanceMode = model.hasObjects;
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
    this.loadToken++;
    this.controller?.dispose();
    this.controller = null;
    this.target = null;
    this.detail = null;
    this.image = null;
    this.version = null;
    this.plannedDtype = null;
    this.rejectPatch = null;
    this.proposal = 'none';
    this.proposalModelId = null;
  }

  /** Resolves when every stroke so far is stored. */
  flushed(): Promise<void> {
    return this.saves.flushed();
  }

  /** Whether leaving now would leave saves behind (they stay queued, but a closed window loses them). */
  get hasUnsaved(): boolean {
    return this.pendingSaves > 0;
  }

  retrySavesNow(): void {
    this.saves.retryNow();
  }

  /**
   * The open image's label changed outside this editor (restored, saved by another window): shows
   * the stored one, unless edits of ours are still on their way (they are the newer state).
   */
  async labelChangedElsewhere(): Promise<void> {
    const target = this.target;
    if (!target || this.saves.hasPending(target)) return;
    try {
      const detail = await call('images:get', { imageId: target.imageId });
      if (!this.shows(target.projectUuid, target.imageId) || this.saves.hasPending(target)) return;
      if ((detail.label?.version ?? null) !== this.saves.knownVersion(target)) await this.open(target.imageId);
    } catch (error) {
      app.error(error);
    }
  }

  autoContrast(): void {
    const detail = this.detail;
    if (!detail) return;
    const windows = autoWindows(detail.contrast, this.linked);
    this.displays = this.displays.map((d, i) => ({ ...d, ...windows[i] }));
  }

  /** The data type's whole range (0-255, 0-65535) in every channel, as Fiji's 'Reset' shows it. */
  fullRange(): void {
    const image = this.image;
    if (!image) return;
    this.displays = this.displays.map((d) => ({ ...d, ...fullRange(image) }));
  }

  /** Links or unlinks the channels' windows; linking puts every channel on one shared window. */
  setLinked(linked: boolean): void {
    this.linked = linked;
    if (linked) this.autoContrast();
  }

  /** A window edit from the contrast panel: with linked channels it applies to all of them. */
  setWindow(channel: number, window: { min?: number; max?: number }): void {
    this.displays = this.displays.map((d, i) => (i === channel || this.linked ? { ...d, ...window } : d));
  }

  /** The proposal as it is becomes the label. */
  async acceptProposal(): Promise<void> {
    const detail = this.detail;
    const target = this.target;
    if (!detail || !target || this.proposal !== 'pending') return;
    this.plannedDtype = detail.proposal?.dtype === 'uint8' ? 'uint8' : 'int32';
    this.proposal = 'accepted';
    this.saves.enqueue({ kind: 'accept', target, timeSpentMs: this.takeTime() });
    await this.flushed();
  }

  /** Records the rejection and clears the mask to draw from scratch (one undo step, not stored until drawn). */
  async rejectProposal(): Promise<void> {
    const target = this.target;
    const controller = this.controller;
    if (!target || !controller || this.proposal !== 'pending') return;
    this.proposal = 'rejected';
    this.saves.enqueue({ kind: 'reject', target, timeSpentMs: this.takeTime() });
    const { model } = controller;
    const empty = model.replaceAll(new Uint8Array(model.width * model.height), null, 'Reject proposal');
    // Not an edit to store: the rejection is recorded; the next stroke saves a manual label.
    if (empty) {
      controller.history.push(empty);
      this.rejectPatch = empty;
    }
    this.syncFromController();
    await this.flushed();
  }

  setTool(tool: ToolName): void {
    if (tool.startsWith('instance-') && !this.setObjects(true)) return;
    this.controller?.setTool(tool);
  }

  /** Objects on or off; refused, with the reason shown, on a mask with classes other than 1. */
  setObjects(on: boolean): boolean {
    const c = this.controller;
    if (!c) return false;
    if (c.setInstanceMode(on)) return true;
    app.toast('error', 'Objects are of one class: this mask has pixels of class 2 or higher, which objects cannot hold. Erase them (or use a copy of the image) to draw objects.');
    this.syncFromController();
    return false;
  }

  private syncFromController(): void {
    const c = this.controller;
    if (!c) return;
    this.tool = c.tool;
    this.brushRadius = c.settings.brushRadius;
    this.activeClass = c.settings.activeClass;
    this.instanceMode = c.settings.instanceMode;
    this.singleClass = c.singleClass;
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

  private committed(patch: Patch, kind: CommitKind): void {
    const target = this.target;
    const controller = this.controller;
    if (!target || !controller) return;
    if (patch === this.rejectPatch) {
      // Undo brings the rejected proposal back, redo clears it again. Neither is drawing: while
      // nothing is stored yet, nothing is saved, and the proposal is pending again.
      const stored = this.version !== null || this.saves.pendingModel(target) !== null;
      this.proposal = kind === 'undo' ? (stored ? 'editing' : 'pending') : 'rejected';
      if (!stored) return;
    }
    if (this.proposal === 'pending') this.proposal = 'editing';
    const source = this.proposal === 'editing' || this.proposal === 'accepted' ? 'edited_proposal' : 'manual';
    const timeSpentMs = this.takeTime();
    const { model } = controller;
    // Objects need int32 ids; a mask whose last object is gone (deleted, or undone) is class ids
    // again, or its class-only pixels would be lost. A change of dtype stores the whole mask.
    const dtype = model.hasObjects ? 'int32' : 'uint8';
    // Decided now, not when the queued save runs: the first save may still be in flight.
    const whole = this.plannedDtype !== dtype;
    this.plannedDtype = dtype;
    // Encode now so later strokes cannot leak into this save; only the changed rectangle unless
    // the whole mask must be stored, so a stroke on a 4096 x 4096 mask stays small.
    const region = whole ? { x: 0, y: 0, width: model.width, height: model.height } : patch.bounds;
    const encoded = encodeRegion(model.width, model.classes, model.instances, region, dtype);
    this.saves.enqueue({
      kind: 'stroke', target, model, source, dtype, region: whole ? null : region, data: encoded.data, unknown: encoded.unknown,
      timeSpentMs, pixelsChanged: patch.pixelsChanged,
    });
  }

  private savesChanged(state: SaveQueueState, saved?: { target: SaveTarget; version: LabelVersionSummary | null }): void {
    const failedBefore = this.saveState === 'retrying';
    this.pendingSaves = state.pending;
    this.saveError = state.error;
    this.saveState = state.pending === 0 ? 'saved' : state.error ? 'retrying' : 'saving';
    // The first failure is worth a toast; the retries show in the status bar.
    if (state.error && !failedBefore) app.toast('error', `Not saved yet, retrying: ${state.error}`);
    if (!saved || !this.target || !this.shows(saved.target.projectUuid, saved.target.imageId)) return;
    if (saved.version) this.version = saved.version.version;
    this.savedCount++;
    // A save makes the image 'labeled' (a reviewed image needs a new review after an edit).
    if (saved.version && this.detail && this.detail.status !== 'labeled') this.detail = { ...this.detail, status: 'labeled' };
  }
}

function asStored(block: MaskBlock): StoredMask {
  return { width: block.width, height: block.height, dtype: block.dtype, data: block.data, unknown: block.unknown };
}

export const annotator = new AnnotatorState();
