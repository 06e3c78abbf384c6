import { describe, expect, it } from 'vitest';
import { encodeRegion, fromStored, toStored } from '../../renderer/src/editor/codec';
import { History } from '../../renderer/src/editor/history';
import { MaskModel, TILE, UNKNOWN, type Rect } from '../../renderer/src/editor/model';
import { stampDisc, stampSegment } from '../../renderer/src/editor/raster';

function paint(model: MaskModel, rect: Rect, cls: number, instance = 0): void {
  model.touch(rect);
  for (let y = rect.y; y < rect.y + rect.height; y++) for (let x = rect.x; x < rect.x + rect.width; x++) model.set(y * model.width + x, cls, instance);
}

describe('MaskModel strokes and patches', () => {
  it('records only the tiles a stroke changed, and undo/redo restore them exactly', () => {
    const model = new MaskModel(300, 200);
    const history = new History();
    model.beginStroke('a');
    paint(model, { x: 10, y: 10, width: 5, height: 5 }, 1);
    const first = model.endStroke()!;
    history.push(first);
    expect(first.pixelsChanged).toBe(25);
    expect(first.tiles).toHaveLength(1);
    expect(first.bounds).toEqual({ x: 0, y: 0, width: TILE, height: TILE });

    model.beginStroke('b');
    paint(model, { x: 60, y: 60, width: 10, height: 10 }, 2); // straddles four tiles
    history.push(model.endStroke()!);
    const afterTwo = model.classes.slice();

    expect(history.undo(model)!.label).toBe('b');
    expect(model.classCounts()[2]).toBe(0);
    expect(model.classCounts()[1]).toBe(25);
    history.undo(model);
    expect(model.classCounts()[0]).toBe(300 * 200);
    expect(history.canUndo).toBe(false);
    history.redo(model);
    history.redo(model);
    // Byte comparison: deep equality of 60 000 elements is slow in the test runner.
    expect(Buffer.compare(model.classes, afterTwo)).toBe(0);
  });

  it('a stroke that changes nothing is not an undo step', () => {
    const model = new MaskModel(64, 64);
    model.beginStroke('noop');
    paint(model, { x: 0, y: 0, width: 8, height: 8 }, 0);
    expect(model.endStroke()).toBeNull();
  });

  it('a new stroke after undo drops the redo branch', () => {
    const model = new MaskModel(32, 32);
    const history = new History();
    for (const cls of [1, 2]) {
      model.beginStroke(String(cls));
      paint(model, { x: 0, y: 0, width: 4, height: 4 }, cls);
      history.push(model.endStroke()!);
    }
    history.undo(model);
    model.beginStroke('3');
    paint(model, { x: 8, y: 8, width: 2, height: 2 }, 3);
    history.push(model.endStroke()!);
    expect(history.canRedo).toBe(false);
    expect(model.classAt(0, 0)).toBe(1);
  });

  it('writes outside a stroke are refused, writes outside the image are clipped', () => {
    const model = new MaskModel(16, 16);
    expect(() => model.touch({ x: 0, y: 0, width: 2, height: 2 })).toThrow(/inside a stroke/);
    model.beginStroke('edge');
    expect(model.touch({ x: -5, y: 14, width: 10, height: 10 })).toEqual({ x: 0, y: 14, width: 5, height: 2 });
    expect(model.touch({ x: 20, y: 20, width: 3, height: 3 })).toBeNull();
    model.endStroke();
  });

  it('tells listeners the union of the rectangles written since the last flush', () => {
    const model = new MaskModel(100, 100);
    const heard: Rect[] = [];
    model.onChange((r) => heard.push(r));
    model.beginStroke('s');
    stampDisc(model, 20.5, 20.5, 2, { cls: 1, instance: 0 });
    stampDisc(model, 30.5, 22.5, 2, { cls: 1, instance: 0 });
    model.flush();
    model.endStroke();
    expect(heard).toEqual([{ x: 18, y: 18, width: 15, height: 7 }]);
  });

  it('a long stroke on a 4096 x 4096 mask stores only what it covered and stays fast', () => {
    const model = new MaskModel(4096, 4096);
    const dirty: Rect[] = [];
    model.onChange((r) => dirty.push(r));
    const started = performance.now();
    model.beginStroke('long');
    let last = { x: 100, y: 2000 };
    for (let i = 1; i <= 400; i++) {
      const next = { x: 100 + i * 9, y: 2000 + Math.sin(i / 20) * 300 };
      stampSegment(model, last, next, 12, { cls: 1, instance: 0 });
      model.flush(); // one flush per pointer move, as the tools do
      last = next;
    }
    const patch = model.endStroke()!;
    const elapsed = performance.now() - started;
    // Each pointer move dirties about the brush's box, never the image.
    expect(Math.max(...dirty.map((r) => r.width * r.height))).toBeLessThan(40 * 40);
    const patchPixels = patch.tiles.reduce((sum, t) => sum + t.rect.width * t.rect.height, 0);
    expect(patchPixels).toBeLessThan(0.05 * 4096 * 4096);
    expect(elapsed).toBeLessThan(2000);
  });
});

describe('label mask codec', () => {
  it('stores class masks as uint8 with unknown apart, and object masks as int32 ids', () => {
    const classes = Uint8Array.from([0, 1, 2, UNKNOWN]);
    const semantic = toStored(2, 2, classes, new Int32Array(4));
    expect(semantic.dtype).toBe('uint8');
    expect([...semantic.data]).toEqual([0, 1, 2, 0]);
    expect([...semantic.unknown!]).toEqual([0, 0, 0, 1]);
    expect([...fromStored(semantic).classes]).toEqual([...classes]);

    const instance = toStored(2, 2, Uint8Array.from([0, 1, 1, 0]), Int32Array.from([0, 7, 9, 0]));
    expect(instance.dtype).toBe('int32');
    expect(instance.unknown).toBeNull();
    const back = fromStored(instance);
    expect([...back.instances]).toEqual([0, 7, 9, 0]);
    expect([...back.classes]).toEqual([0, 1, 1, 0]);
  });

  it('encodes a rectangle for labels:patch in the label dtype, unknown flags only when present', () => {
    const width = 4;
    const classes = Uint8Array.from([0, 1, 1, 0, 0, UNKNOWN, 1, 0, 0, 0, 0, 0]);
    const instances = Int32Array.from([0, 5, 5, 0, 0, 0, 6, 0, 0, 0, 0, 0]);
    const rect = { x: 1, y: 0, width: 2, height: 2 };
    const semantic = encodeRegion(width, classes, instances, rect, 'uint8');
    expect(semantic.data).toBeInstanceOf(Uint8Array);
    expect([...semantic.data]).toEqual([1, 1, 0, 1]);
    expect([...semantic.unknown!]).toEqual([0, 0, 1, 0]);
    const objects = encodeRegion(width, classes, instances, rect, 'int32');
    expect(objects.data).toBeInstanceOf(Int32Array);
    expect([...objects.data]).toEqual([5, 5, 0, 6]);
    expect(encodeRegion(width, classes, instances, { x: 0, y: 2, width: 4, height: 1 }, 'uint8').unknown).toBeNull();
  });

  it('knows the highest object id of a loaded mask, so new objects never reuse one', () => {
    const { classes, instances } = fromStored({ width: 3, height: 1, dtype: 'int32', data: Int32Array.from([0, 41, 3]), unknown: null });
    const model = new MaskModel(3, 1, classes, instances);
    expect(model.nextInstanceId()).toBe(42);
  });
});
