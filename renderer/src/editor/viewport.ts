/** Where the image sits on screen: screen = image * scale + offset (CSS pixels). */
export interface Viewport {
  scale: number;
  offsetX: number;
  offsetY: number;
}

export const MIN_SCALE = 1 / 64;
export const MAX_SCALE = 64;

export function clampScale(scale: number): number {
  return Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale));
}

/** The whole image centred in the view with a small margin. */
export function fitViewport(imageWidth: number, imageHeight: number, viewWidth: number, viewHeight: number, margin = 16): Viewport {
  const scale = clampScale(Math.min((viewWidth - 2 * margin) / imageWidth, (viewHeight - 2 * margin) / imageHeight));
  return { scale, offsetX: (viewWidth - imageWidth * scale) / 2, offsetY: (viewHeight - imageHeight * scale) / 2 };
}

export function screenToImage(vp: Viewport, sx: number, sy: number): { x: number; y: number } {
  return { x: (sx - vp.offsetX) / vp.scale, y: (sy - vp.offsetY) / vp.scale };
}

export function imageToScreen(vp: Viewport, x: number, y: number): { x: number; y: number } {
  return { x: x * vp.scale + vp.offsetX, y: y * vp.scale + vp.offsetY };
}

/** Zooms by `factor` keeping the image point under (sx, sy) where it is. */
export function zoomAt(vp: Viewport, factor: number, sx: number, sy: number): Viewport {
  const scale = clampScale(vp.scale * factor);
  const p = screenToImage(vp, sx, sy);
  return { scale, offsetX: sx - p.x * scale, offsetY: sy - p.y * scale };
}

export function pan(vp: Viewport, dx: number, dy: number): Viewport {
  return { scale: vp.scale, offsetX: vp.offsetX + dx, offsetY: vp.offsetY + dy };
}
