import type { ImageSplit, ImageStatus, ImageSummary } from '../../../src/shared';
import { call } from '../lib/api';
import { app } from './app.svelte';

export type GallerySort = 'added' | 'path' | 'labelNext';

/**
 * The gallery's filter, sort, list and selection. The list of a 10 000-image project is one
 * request (a few MB of JSON) kept as a raw array: deep reactivity on it would proxy every item.
 */
export class GalleryState {
  statuses = $state<ImageStatus[]>([]);
  splits = $state<ImageSplit[]>([]);
  sort = $state<GallerySort>('added');
  items = $state.raw<ImageSummary[]>([]);
  total = $state(0);
  loading = $state(false);
  selected = $state.raw<Set<number>>(new Set());
  /** Anchor of shift-click range selection. */
  anchor = $state<number | null>(null);
  private loadedFor = '';

  async load(force = false): Promise<void> {
    const key = JSON.stringify([this.statuses, this.splits, this.sort, app.imagesVersion, app.project?.dir]);
    if (!force && key === this.loadedFor) return;
    this.loadedFor = key;
    this.loading = true;
    try {
      const listing = await call('images:list', {
        status: this.statuses.length ? [...this.statuses] : undefined,
        split: this.splits.length ? [...this.splits] : undefined,
        sort: this.sort,
      });
      if (key !== this.loadedFor) return;
      this.items = listing.items;
      this.total = listing.total;
      app.browseOrder = listing.items.map((i) => i.id);
      const present = new Set(listing.items.map((i) => i.id));
      this.selected = new Set([...this.selected].filter((id) => present.has(id)));
    } catch (error) {
      app.error(error);
    } finally {
      this.loading = false;
    }
  }

  toggleStatus(status: ImageStatus): void {
    this.statuses = this.statuses.includes(status) ? this.statuses.filter((s) => s !== status) : [...this.statuses, status];
  }

  toggleSplit(split: ImageSplit): void {
    this.splits = this.splits.includes(split) ? this.splits.filter((s) => s !== split) : [...this.splits, split];
  }

  /** Click: select one; Ctrl/Cmd-click: toggle; Shift-click: range from the anchor. */
  click(index: number, mode: 'single' | 'toggle' | 'range'): void {
    const id = this.items[index]?.id;
    if (id === undefined) return;
    if (mode === 'range' && this.anchor !== null) {
      const [a, b] = [Math.min(this.anchor, index), Math.max(this.anchor, index)];
      this.selected = new Set(this.items.slice(a, b + 1).map((i) => i.id));
      return;
    }
    if (mode === 'toggle') {
      const next = new Set(this.selected);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      this.selected = next;
    } else this.selected = new Set([id]);
    this.anchor = index;
  }

  selectAll(): void {
    this.selected = new Set(this.items.map((i) => i.id));
  }

  /** Opens the image the model is least sure about among those nobody has labeled yet. */
  async labelNext(): Promise<void> {
    try {
      const { items } = await call('images:list', { status: ['unlabeled', 'proposed'], sort: 'labelNext', limit: 1 });
      if (items[0]) app.openImage(items[0]);
      else app.toast('info', 'Every image is labeled.');
    } catch (error) {
      app.error(error);
    }
  }

  async assignSplit(split: ImageSplit): Promise<void> {
    if (this.selected.size === 0) return;
    try {
      const { changed } = await call('images:setSplit', { imageIds: [...this.selected], split });
      app.toast('info', `${changed} image${changed === 1 ? '' : 's'} moved to ${split}`);
      await this.load(true);
      await app.refreshProject();
    } catch (error) {
      app.error(error);
    }
  }
}

export const gallery = new GalleryState();
