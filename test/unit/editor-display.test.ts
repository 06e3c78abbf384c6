import { describe, expect, it } from 'vitest';
import { autoContrast, autoWindows, channelHistogram, isNaturalColour, percentileRange, renderDisplay, type RawImage } from '../../renderer/src/editor/display';
import { MaskModel, UNKNOWN } from '../../renderer/src/editor/model';
import { renderOverlay } from '../../renderer/src/editor/overlay';

describe('display contrast', () => {
  it('a 12-bit image in 16-bit data gets a window on its own range, not black', () => {
    const n = 64 * 64;
    const data = new Uint16Array(n);
    for (let i = 0; i < n; i++) data[i] = 100 + (i % 4000); // camera values 100..4099
    const image: RawImage = { width: 64, height: 64, channels: 1, bitDepth: 16, data };
    const [display] = autoContrast(image);
    expect(display.min).toBeGreaterThanOrEqual(100);
    expect(display.min).toBeLessThan(200);
    expect(display.max).toBeGreaterThan(3900);
    expect(display.max).toBeLessThanOrEqual(4099);
    const out = new Uint8ClampedArray(n * 4);
    renderDisplay(image, [display], out);
    let bright = 0;
    for (let i = 0; i < n; i++) if (out[i * 4] > 128) bright++;
    expect(bright / n).toBeGreaterThan(0.4);
    expect(out[3]).toBe(255);
  });

  it('percentiles ignore a few hot pixels', () => {
    const histogram = new Uint32Array(256);
    histogram[10] = 500;
    histogram[50] = 500;
    histogram[255] = 2;
    expect(percentileRange(histogram)).toEqual({ min: 10, max: 50 });
  });

  it('multi-channel images add their channel colours; hidden channels are left out', () => {
    const data = Uint8Array.from([255, 0, 0, 255]); // pixel 0: channel 0 on; pixel 1: channel 1 on
    const image: RawImage = { width: 2, height: 1, channels: 2, bitDepth: 8, data };
    expect([...channelHistogram(image, 1)].reduce((a, b) => a + b)).toBe(2);
    const out = new Uint8ClampedArray(8);
    const displays = [
      { min: 0, max: 255, color: [0, 255, 0] as [number, number, number], visible: true },
      { min: 0, max: 255, color: [255, 0, 255] as [number, number, number], visible: true },
    ];
    renderDisplay(image, displays, out);
    expect([...out]).toEqual([0, 255, 0, 255, 255, 0, 255, 255]);
    renderDisplay(image, [displays[0], { ...displays[1], visible: false }], out);
    expect([...out.slice(4)]).toEqual([0, 0, 0, 255]);
  });
});

describe('mask overlay', () => {
  it('background is transparent, unknown is hatched grey, outline mode keeps only edges', () => {
    const model = new MaskModel(8, 8);
    model.beginStroke('t');
    model.touch({ x: 0, y: 0, width: 8, height: 8 });
    for (let y = 2; y < 7; y++) for (let x = 2; x < 7; x++) model.set(y * 8 + x, 1, 0);
    model.set(0, UNKNOWN, 0);
    model.endStroke();
    const out = new Uint8ClampedArray(8 * 8 * 4);
    renderOverlay(model, { x: 0, y: 0, width: 8, height: 8 }, 'fill', out);
    const alpha = (x: number, y: number) => out[(y * 8 + x) * 4 + 3];
    expect(alpha(1, 1)).toBe(0);
    expect(alpha(4, 4)).toBe(255);
    expect(out[0]).toBe(out[1]); // grey
    renderOverlay(model, { x: 0, y: 0, width: 8, height: 8 }, 'outline', out);
    expect(alpha(4, 4)).toBe(0);
    expect(alpha(2, 4)).toBe(255);
  });

  it('renders a brush-sized region of a 4096 x 4096 mask in well under a frame', () => {
    const model = new MaskModel(4096, 4096);
    const rect = { x: 2000, y: 2000, width: 64, height: 64 };
    const out = new Uint8ClampedArray(64 * 64 * 4);
    renderOverlay(model, rect, 'fill', out); // warm-up
    const started = performance.now();
    for (let i = 0; i < 100; i++) renderOverlay(model, rect, 'outline', out);
    expect((performance.now() - started) / 100).toBeLessThan(4);
  });
});

describe('natural colour (issue: RGB brightfield shown in false colour)', () => {
  it('8-bit RGB(A) is natural colour; grey, 16-bit and two-channel fluorescence are not', () => {
    expect(isNaturalColour({ channels: 3, bitDepth: 8 })).toBe(true);
    expect(isNaturalColour({ channels: 4, bitDepth: 8 })).toBe(true);
    expect(isNaturalColour({ channels: 3, bitDepth: 16 })).toBe(false);
    expect(isNaturalColour({ channels: 2, bitDepth: 8 })).toBe(false);
    expect(isNaturalColour({ channels: 1, bitDepth: 8 })).toBe(false);
  });

  it('linked windows span every channel, so a tinted picture keeps its tint', () => {
    const ranges = [{ low: 100, high: 200 }, { low: 80, high: 180 }, { low: 60, high: 160 }];
    expect(autoWindows(ranges, false)).toEqual([{ min: 100, max: 200 }, { min: 80, max: 180 }, { min: 60, max: 160 }]);
    expect(autoWindows(ranges, true)).toEqual([{ min: 60, max: 200 }, { min: 60, max: 200 }, { min: 60, max: 200 }]);
    // A warm pixel (150, 130, 110): per-channel windows grey it out, linked ones keep it warm.
    const image = { width: 1, height: 1, channels: 3, bitDepth: 8 as const, data: Uint8Array.from([150, 130, 110]) };
    const colours: [number, number, number][] = [[255, 0, 0], [0, 255, 0], [0, 0, 255]];
    const show = (linked: boolean) => {
      const out = new Uint8ClampedArray(4);
      renderDisplay(image, autoWindows(ranges, linked).map((w, i) => ({ ...w, color: colours[i], visible: true })), out);
      return Array.from(out.subarray(0, 3));
    };
    const [r, g, b] = show(false);
    expect(Math.max(r, g, b) - Math.min(r, g, b)).toBeLessThanOrEqual(1);
    const [lr, lg, lb] = show(true);
    expect(lr - lg).toBeGreaterThan(30);
    expect(lg - lb).toBeGreaterThan(30);
  });
});
