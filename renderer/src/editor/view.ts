import { renderDisplay, type ChannelDisplay, type RawImage } from './display';
import type { EditorSurface } from './controller';
import { clipRect, type MaskModel, type Rect } from './model';
import { renderOverlay, instanceColor, type OverlayMode } from './overlay';
import type { Tool, ToolPreview } from './tool';
import { imageToScreen, type Viewport } from './viewport';

/**
 * Draws the image and its mask on two stacked canvases. The image and the mask each live in an
 * image-sized offscreen canvas; a stroke re-renders only its dirty rectangle of the mask canvas
 * and re-composites only the matching screen rectangle, so painting on a 4096 x 4096 image costs
 * what the brush covers, not what the image holds. Cursor and tool previews sit on a second
 * canvas so moving the pointer never repaints the image.
 */
export class CanvasView implements EditorSurface {
  private readonly container: HTMLElement;
  private readonly base: HTMLCanvasElement;
  private readonly ui: HTMLCanvasElement;
  private readonly imageLayer: HTMLCanvasElement;
  private readonly maskLayer: HTMLCanvasElement;
  private model: MaskModel;
  private unsubscribe: () => void;
  private vp: Viewport = { scale: 1, offsetX: 0, offsetY: 0 };
  private opacity = 0.5;
  private mode: OverlayMode = 'fill';
  private preview: ToolPreview | null = null;
  private cursor: { x: number; y: number; radius: number; kind: Tool['cursor'] } | null = null;
  /** Screen area to re-composite at the next frame; 'all' after zoom, pan or resize. */
  private dirtyScreen: Rect | 'all' | null = 'all';
  private frame = 0;
  private pendingImage: { image: RawImage; displays: readonly ChannelDisplay[] } | null = null;
  private readonly resizeObserver: ResizeObserver;
  /** Milliseconds the last mask-region render took, shown in the status bar and read by tests. */
  lastRegionRenderMs = 0;

  constructor(container: HTMLElement, model: MaskModel) {
    this.container = container;
    this.base = document.createElement('canvas');
    this.ui = document.createElement('canvas');
    for (const canvas of [this.base, this.ui]) {
      canvas.style.position = 'absolute';
      canvas.style.inset = '0';
      canvas.style.width = '100%';
      canvas.style.height = '100%';
      container.appendChild(canvas);
    }
    this.base.dataset.layer = 'image';
    this.ui.dataset.layer = 'tools';
    this.ui.style.pointerEvents = 'none';
    this.imageLayer = document.createElement('canvas');
    this.maskLayer = document.createElement('canvas');
    this.model = model;
    this.unsubscribe = () => {};
    this.setModel(model);
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(container);
    this.resize();
  }

  /** The element that receives pointer events. */
  get eventTarget(): HTMLCanvasElement {
    return this.base;
  }

  size(): { width: number; height: number } {
    return { width: this.container.clientWidth, height: this.container.clientHeight };
  }

  setModel(model: MaskModel): void {
    this.unsubscribe();
    this.model = model;
    this.imageLayer.width = this.maskLayer.width = model.width;
    this.imageLayer.height = this.maskLayer.height = model.height;
    this.unsubscribe = model.onChange((rect) => this.maskChanged(rect));
    this.maskChanged({ x: 0, y: 0, width: model.width, height: model.height });
  }

  /**
   * Re-renders the image layer (new image or new contrast) at the next frame: dragging a contrast
   * slider fires many inputs per frame, and only the last one needs rendering.
   */
  setImage(image: RawImage, displays: readonly ChannelDisplay[]): void {
    if (image.width !== this.model.width || image.height !== this.model.height) throw new Error('image and mask sizes differ');
    const first = this.pendingImage === null;
    this.pendingImage = { image, displays };
    if (first) requestAnimationFrame(() => this.renderImage());
  }

  private renderImage(): void {
    const pending = this.pendingImage;
    this.pendingImage = null;
    if (!pending) return;
    const ctx = this.imageLayer.getContext('2d')!;
    const pixels = ctx.createImageData(pending.image.width, pending.image.height);
    renderDisplay(pending.image, pending.displays, pixels.data);
    ctx.putImageData(pixels, 0, 0);
    this.invalidate('all');
  }

  setOverlay(opacity: number, mode: OverlayMode): void {
    const modeChanged = mode !== this.mode;
    this.opacity = Math.max(0, Math.min(1, opacity));
    this.mode = mode;
    if (modeChanged) this.maskChanged({ x: 0, y: 0, width: this.model.width, height: this.model.height });
    else this.invalidate('all');
  }

  setViewport(vp: Viewport): void {
    this.vp = vp;
    this.invalidate('all');
    this.drawUi();
  }

  setPreview(preview: ToolPreview | null): void {
    this.preview = preview;
    // A merge highlight is drawn into the mask layer's composite, so the whole view is redrawn.
    if (preview?.highlightInstance) this.invalidate('all');
    this.drawUi();
  }

  setCursor(cursor: { x: number; y: number; radius: number; kind: Tool['cursor'] } | null): void {
    this.cursor = cursor;
    this.drawUi();
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    this.unsubscribe();
    this.resizeObserver.disconnect();
    this.base.remove();
    this.ui.remove();
  }

  private maskChanged(rect: Rect): void {
    // Outlines depend on neighbours: a change moves the edge of the pixels around it too.
    const grown = this.mode === 'outline' ? { x: rect.x - 1, y: rect.y - 1, width: rect.width + 2, height: rect.height + 2 } : rect;
    const region = clipRect(grown, this.model.width, this.model.height);
    if (!region) return;
    const started = performance.now();
    const ctx = this.maskLayer.getContext('2d')!;
    const pixels = ctx.createImageData(region.width, region.height);
    renderOverlay(this.model, region, this.mode, pixels.data);
    ctx.putImageData(pixels, region.x, region.y);
    this.lastRegionRenderMs = performance.now() - started;
    const a = imageToScreen(this.vp, region.x, region.y);
    const b = imageToScreen(this.vp, region.x + region.width, region.y + region.height);
    this.invalidate({ x: Math.floor(a.x) - 1, y: Math.floor(a.y) - 1, width: Math.ceil(b.x - a.x) + 3, height: Math.ceil(b.y - a.y) + 3 });
  }

  private invalidate(rect: Rect | 'all'): void {
    if (rect === 'all' || this.dirtyScreen === 'all') this.dirtyScreen = 'all';
    else if (!this.dirtyScreen) this.dirtyScreen = rect;
    else {
      const d = this.dirtyScreen;
      const x = Math.min(d.x, rect.x);
      const y = Math.min(d.y, rect.y);
      this.dirtyScreen = { x, y, width: Math.max(d.x + d.width, rect.x + rect.width) - x, height: Math.max(d.y + d.height, rect.y + rect.height) - y };
    }
    if (!this.frame) this.frame = requestAnimationFrame(() => this.composite());
  }

  private resize(): void {
    const { width, height } = this.size();
    const ratio = window.devicePixelRatio || 1;
    for (const canvas of [this.base, this.ui]) {
      canvas.width = Math.max(1, Math.round(width * ratio));
      canvas.height = Math.max(1, Math.round(height * ratio));
    }
    this.invalidate('all');
    this.drawUi();
  }

  private composite(): void {
    this.frame = 0;
    const dirty = this.dirtyScreen;
    this.dirtyScreen = null;
    if (!dirty) return;
    const ratio = window.devicePixelRatio || 1;
    const ctx = this.base.getContext('2d')!;
    ctx.save();
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    if (dirty !== 'all') {
      ctx.beginPath();
      ctx.rect(dirty.x, dirty.y, dirty.width, dirty.height);
      ctx.clip();
      ctx.clearRect(dirty.x, dirty.y, dirty.width, dirty.height);
    } else {
      ctx.clearRect(0, 0, this.base.width / ratio, this.base.height / ratio);
    }
    ctx.translate(this.vp.offsetX, this.vp.offsetY);
    ctx.scale(this.vp.scale, this.vp.scale);
    // Zoomed in, pixels must stay square blocks: annotators judge edges pixel by pixel.
    ctx.imageSmoothingEnabled = this.vp.scale < 1;
    ctx.drawImage(this.imageLayer, 0, 0);
    ctx.globalAlpha = this.opacity;
    ctx.drawImage(this.maskLayer, 0, 0);
    ctx.restore();
  }

  private drawUi(): void {
    const ratio = window.devicePixelRatio || 1;
    const ctx = this.ui.getContext('2d')!;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, this.ui.width / ratio, this.ui.height / ratio);
    const preview = this.preview;
    if (preview && preview.points.length) {
      ctx.beginPath();
      preview.points.forEach((p, i) => {
        const s = imageToScreen(this.vp, p.x, p.y);
        if (i === 0) ctx.moveTo(s.x, s.y);
        else ctx.lineTo(s.x, s.y);
      });
      if (preview.closed) ctx.closePath();
      ctx.lineWidth = 3;
      ctx.strokeStyle = 'rgba(0,0,0,0.7)';
      ctx.stroke();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = '#ffd600';
      ctx.stroke();
      const first = imageToScreen(this.vp, preview.points[0].x, preview.points[0].y);
      ctx.fillStyle = '#ffd600';
      ctx.fillRect(first.x - 3, first.y - 3, 6, 6);
    }
    if (preview?.highlightInstance) {
      const [r, g, b] = instanceColor(preview.highlightInstance);
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.font = '12px sans-serif';
      ctx.fillText(`object ${preview.highlightInstance} selected: click the object to merge into it`, 12, 20);
    }
    const cursor = this.cursor;
    if (cursor && cursor.kind === 'brush') {
      ctx.beginPath();
      ctx.arc(cursor.x, cursor.y, Math.max(1.5, cursor.radius), 0, Math.PI * 2);
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = 'rgba(0,0,0,0.6)';
      ctx.stroke();
      ctx.lineWidth = 1;
      ctx.strokeStyle = '#fff';
      ctx.stroke();
    }
  }
}
