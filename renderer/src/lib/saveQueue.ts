/**
 * Every edit the annotator makes, on its way to the project, in order. A save that fails is never
 * dropped: it stays at the head of the queue, the user sees it pending, and it is retried (with
 * growing pauses, or at once on `retryNow`) until it lands. Because a failed patch may no longer
 * fit the stored label (another window saved in between, a version was restored), a retry stores
 * the editor's whole mask instead: what the user sees is what ends up stored.
 *
 * Framework-free and DOM-free, so the retry rules are unit-tested in Node with a fake sender.
 */
import type { LabelSource, LabelVersionSummary } from '../../../src/shared';
import { encodeRegion } from '../editor/codec';
import type { MaskModel, Rect } from '../editor/model';

/** An image of a project: image ids repeat across projects, so both name it. */
export interface SaveTarget {
  projectUuid: string;
  imageId: number;
}

/** A stroke's provenance; an accepted proposal is stored by the 'accept' decision only. */
export type SaveSource = Extract<LabelSource, 'manual' | 'edited_proposal'>;
export type StoredLabelDtype = 'uint8' | 'int32';

/** One stroke (or undo/redo step) to store: the rectangle it changed, encoded when it ended. */
export interface StrokeSave {
  kind: 'stroke';
  target: SaveTarget;
  /** The editor's mask: a retry encodes it whole. It is not edited after its image is closed. */
  model: MaskModel;
  source: SaveSource;
  dtype: StoredLabelDtype;
  /** null: the whole mask (a first save, or the stored dtype changes). */
  region: Rect | null;
  data: Uint8Array | Int32Array;
  unknown: Uint8Array | null;
  timeSpentMs: number;
  pixelsChanged: number;
}

export interface DecisionSave {
  kind: 'accept' | 'reject';
  target: SaveTarget;
  timeSpentMs: number;
}

export type Save = StrokeSave | DecisionSave;

/** How saves reach the project (the app's `call`, or a fake in tests). */
export interface SaveSender {
  saveWhole(request: {
    projectUuid: string; imageId: number; mask: { width: number; height: number; data: Uint8Array | Int32Array }; unknown: Uint8Array | null;
    source: SaveSource; parentVersion: number | null; timeSpentMs: number; pixelsChanged: number;
  }): Promise<LabelVersionSummary>;
  savePatch(request: {
    projectUuid: string; imageId: number; baseVersion: number; x: number; y: number; width: number; height: number;
    data: Uint8Array | Int32Array; unknown: Uint8Array | null; source: SaveSource; timeSpentMs: number; pixelsChanged: number;
  }): Promise<LabelVersionSummary>;
  decide(request: { projectUuid: string; imageId: number; decision: 'accept' | 'reject'; timeSpentMs: number }): Promise<LabelVersionSummary | null>;
}

export interface SaveQueueState {
  /** Saves not yet stored (the one in flight included). */
  pending: number;
  /** The last failure while saves are pending; null once everything is stored. */
  error: string | null;
  /** Saves stored since the queue was made. */
  stored: number;
}

/** Pauses between retries: quick at first (a busy server), then every 30 s. */
export const RETRY_DELAYS_MS = [500, 1000, 2000, 5000, 10_000, 30_000] as const;

const keyOf = (t: SaveTarget): string => `${t.projectUuid}/${t.imageId}`;

export class SaveQueue {
  private readonly queue: Save[] = [];
  /** Latest stored version per image, as this queue last saw it. */
  private readonly versions = new Map<string, number>();
  private running: Promise<void> | null = null;
  private error: string | null = null;
  private stored = 0;
  private wakeRetry: (() => void) | null = null;

  constructor(
    private readonly sender: SaveSender,
    private readonly onChange: (state: SaveQueueState, saved?: { target: SaveTarget; version: LabelVersionSummary | null }) => void,
    private readonly delays: readonly number[] = RETRY_DELAYS_MS,
  ) {}

  get state(): SaveQueueState {
    return { pending: this.queue.length, error: this.error, stored: this.stored };
  }

  /** The stored version this queue knows for an image (set when the image is opened, then by each save). */
  knownVersion(target: SaveTarget): number | null {
    return this.versions.get(keyOf(target)) ?? null;
  }

  setKnownVersion(target: SaveTarget, version: number | null): void {
    if (version === null) this.versions.delete(keyOf(target));
    else this.versions.set(keyOf(target), version);
  }

  /** The mask of an image with saves still pending: reopening it must show that, not the older stored label. */
  pendingModel(target: SaveTarget): MaskModel | null {
    const key = keyOf(target);
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const save = this.queue[i];
      if (save.kind === 'stroke' && keyOf(save.target) === key) return save.model;
    }
    return null;
  }

  hasPending(target?: SaveTarget): boolean {
    return target ? this.queue.some((s) => keyOf(s.target) === keyOf(target)) : this.queue.length > 0;
  }

  enqueue(save: Save): void {
    this.queue.push(save);
    this.changed();
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
  }

  /** Resolves when every save so far is stored (never while one keeps failing). */
  async flushed(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Skips the pause before the next retry. */
  retryNow(): void {
    this.wakeRetry?.();
  }

  private changed(saved?: { target: SaveTarget; version: LabelVersionSummary | null }): void {
    this.onChange(this.state, saved);
  }

  private async drain(): Promise<void> {
    let failures = 0;
    while (this.queue.length) {
      const save = this.queue[0];
      try {
        const version = await this.send(save, failures > 0);
        this.queue.shift();
        // A whole-mask retry stored every later stroke of its image too: those are done.
        if (failures > 0 && save.kind === 'stroke') this.dropCoveredStrokes(save);
        failures = 0;
        this.error = null;
        this.stored++;
        this.changed({ target: save.target, version });
      } catch (error) {
        this.error = error instanceof Error ? error.message : String(error);
        this.changed();
        await this.pause(this.delays[Math.min(failures, this.delays.length - 1)]);
        failures++;
      }
    }
  }

  private dropCoveredStrokes(done: StrokeSave): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const s = this.queue[i];
      if (s.kind === 'stroke' && s.model === done.model && keyOf(s.target) === keyOf(done.target)) this.queue.splice(i, 1);
    }
  }

  private async send(save: Save, retry: boolean): Promise<LabelVersionSummary | null> {
    const key = keyOf(save.target);
    const { projectUuid, imageId } = save.target;
    if (save.kind !== 'stroke') {
      const version = await this.sender.decide({ projectUuid, imageId, decision: save.kind, timeSpentMs: save.timeSpentMs });
      if (version) this.versions.set(key, version.version);
      return version;
    }
    const base = this.versions.get(key) ?? null;
    let saved: LabelVersionSummary;
    if (retry || save.region === null || base === null) {
      const { model } = save;
      // On a retry the editor's mask as it is now: later strokes of this image are in it (and
      // then skipped), so it is stored with the newest of them's dtype and provenance.
      const covered = retry ? this.queue.filter((s): s is StrokeSave => s.kind === 'stroke' && s.model === model) : [save];
      const newest = covered[covered.length - 1];
      const whole = retry || save.region !== null
        ? encodeRegion(model.width, model.classes, model.instances, { x: 0, y: 0, width: model.width, height: model.height }, newest.dtype)
        : { data: save.data, unknown: save.unknown };
      saved = await this.sender.saveWhole({
        projectUuid, imageId, mask: { width: model.width, height: model.height, data: whole.data }, unknown: whole.unknown,
        source: newest.source, parentVersion: base,
        timeSpentMs: covered.reduce((t, s) => t + s.timeSpentMs, 0), pixelsChanged: covered.reduce((n, s) => n + s.pixelsChanged, 0),
      });
    } else {
      saved = await this.sender.savePatch({
        projectUuid, imageId, baseVersion: base, ...save.region, data: save.data, unknown: save.unknown,
        source: save.source, timeSpentMs: save.timeSpentMs, pixelsChanged: save.pixelsChanged,
      });
    }
    this.versions.set(key, saved.version);
    return saved;
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeRetry = () => {
        this.wakeRetry = null;
        done();
      };
    });
  }
}
