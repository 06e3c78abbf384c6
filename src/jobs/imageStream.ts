/**
 * Pretraining's images, streamed from a project: a project of ten thousand images pretrains in
 * the memory of a few hundred, and a long pretraining still crops from every one of them.
 */
import type { ImageStream } from '../engine/train/pretrain';
import type { PreparedImage } from '../engine/input';
import type { ChannelRange } from '../imaging/normalize';
import { Rng } from '../shared/rng';
import type { ImageRecord } from '../store';
import { imageRanges, loadImage, loadImageRegion } from './data';

export interface StreamLimits {
  /** Images held at once. */
  images: number;
  /** Pixel values (pixels x channels) held at once. */
  pixels: number;
  /** Pixel values held of one image: a larger one contributes a region this size (at most `pixels`). */
  region: number;
  /** Steps between two moves of the window. */
  turnover: number;
}

/**
 * The images come in a seeded order; the ones held at a step form a window of that order, as
 * many as the limits allow, and every `turnover` steps the window moves on by a quarter of its
 * length, so each image stays for four turnovers and is then replaced. Which images a step sees
 * depends on the step alone, so a resumed run crops from the images an uninterrupted one would.
 * An image larger than `limits.region` is held as a square region of that size, at a seeded place
 * that changes with every move of the window (so a long pretraining sees much of it), normalised
 * with the whole image's intensity window. Files that cannot be read (moved or deleted since the
 * import) are left out and counted.
 */
export class ProjectImageStream implements ImageStream {
  private readonly order: ImageRecord[];
  /** Whether every image fits at once (then the window never moves). */
  readonly holdsAll: boolean;
  /** Held images by id, regions by id and window position. */
  private readonly held = new Map<string, PreparedImage>();
  /** The whole-image intensity windows of the images held as regions. */
  private readonly ranges = new Map<number, ChannelRange[]>();
  private heldRotation = -1;
  private heldImages: PreparedImage[] = [];
  /** The window's start at `rotation`, remembered so that moving on costs one step of the walk. */
  private walked = { rotation: 0, start: 0 };
  /** Ids of the images loaded so far, and of those that could not be read. */
  readonly seen = new Set<number>();
  readonly unreadable = new Set<number>();

  constructor(
    records: readonly ImageRecord[],
    private readonly limits: StreamLimits,
    private readonly minSpans: readonly number[],
    private readonly seed = 1,
  ) {
    if (records.length === 0) throw new Error('an image stream needs at least one image');
    if (!(limits.images >= 1 && limits.pixels > 0 && limits.region > 0 && limits.turnover >= 1)) throw new Error('image stream limits must be positive');
    this.order = new Rng(seed).shuffle([...records].sort((a, b) => a.id - b.id));
    this.holdsAll = this.window(0).length === this.order.length && !this.order.some((r) => this.inRegions(r));
  }

  async forStep(step: number): Promise<readonly PreparedImage[]> {
    const rotation = this.holdsAll ? 0 : Math.floor(step / this.limits.turnover);
    if (rotation === this.heldRotation) return this.heldImages;
    const members = this.window(this.startOf(rotation));
    const keyOf = (r: ImageRecord) => (this.inRegions(r) ? `${r.id}@${rotation}` : String(r.id));
    const keys = new Set(members.map(keyOf));
    for (const key of this.held.keys()) if (!keys.has(key)) this.held.delete(key);
    for (const id of this.ranges.keys()) if (!members.some((r) => r.id === id)) this.ranges.delete(id);
    const images: PreparedImage[] = [];
    for (const record of members) {
      let image = this.held.get(keyOf(record));
      if (!image && !this.unreadable.has(record.id)) {
        try {
          image = this.inRegions(record) ? await this.loadRegion(record, rotation) : await loadImage(record, this.minSpans);
          this.held.set(keyOf(record), image);
          this.seen.add(record.id);
        } catch {
          this.unreadable.add(record.id);
        }
      }
      if (image) images.push(image);
    }
    if (images.length === 0) throw new Error(`none of the ${members.length} images pretraining reached at step ${step} could be read (moved or deleted since the import?)`);
    this.heldRotation = rotation;
    this.heldImages = images;
    return images;
  }

  /** How many images are in memory now. */
  get heldCount(): number {
    return this.held.size;
  }

  /** Pixel values held of one image at most. */
  private get regionValues(): number {
    return Math.min(this.limits.region, this.limits.pixels);
  }

  private inRegions(record: ImageRecord): boolean {
    return record.width * record.height * record.channels > this.regionValues;
  }

  /** The square region of `record` held while the window is at `rotation`, at a place seeded by both. */
  private async loadRegion(record: ImageRecord, rotation: number): Promise<PreparedImage> {
    const side = Math.max(1, Math.floor(Math.sqrt(this.regionValues / record.channels)));
    const [w, h] = [Math.min(side, record.width), Math.min(side, record.height)];
    const rng = new Rng(this.seed * 1_000_003 + record.id * 7919 + rotation);
    const [x, y] = [rng.int(record.width - w + 1), rng.int(record.height - h + 1)];
    let ranges = this.ranges.get(record.id);
    if (!ranges) {
      ranges = await imageRanges(record, this.minSpans);
      this.ranges.set(record.id, ranges);
    }
    return loadImageRegion(record, x, y, w, h, ranges);
  }

  /** The records of the window that starts at `start` in the order: as many as the limits allow, at least one. */
  private window(start: number): ImageRecord[] {
    const n = this.order.length;
    const members: ImageRecord[] = [];
    let values = 0;
    for (let j = 0; j < Math.min(n, this.limits.images); j++) {
      const record = this.order[(start + j) % n];
      const size = Math.min(record.width * record.height * record.channels, this.regionValues);
      if (members.length > 0 && values + size > this.limits.pixels) break;
      members.push(record);
      values += size;
    }
    return members;
  }

  /** Where the window starts at `rotation`: each move advances it by a quarter of its length then. */
  private startOf(rotation: number): number {
    if (rotation < this.walked.rotation) this.walked = { rotation: 0, start: 0 };
    let { start } = this.walked;
    for (let r = this.walked.rotation; r < rotation; r++) start = (start + Math.ceil(this.window(start).length / 4)) % this.order.length;
    this.walked = { rotation, start };
    return start;
  }
}
