import { describe, expect, it } from 'vitest';
import { fromStored, toStored } from '../../renderer/src/editor/codec';
import { EditorController } from '../../renderer/src/editor/controller';
import { MaskModel, UNKNOWN } from '../../renderer/src/editor/model';
import { line4 } from '../../renderer/src/editor/raster';

/** A controller at scale 1 (the model's size is the 'surface'), so screen = image coordinates. */
function setup(width = 64, height = 64) {
  const model = new MaskModel(width, height);
  const commits: string[] = [];
  const controller = new EditorController({ model, onCommit: (patch, kind) => commits.push(`${kind}:${patch.label}`) });
  controller.setViewport({ scale: 1, offsetX: 0, offsetY: 0 });
  return { model, controller, commits };
}

function drag(c: EditorController, points: [number, number][], mods = {}) {
  const [first, ...rest] = points;
  c.pointerDown(first[0], first[1], 0, mods);
  for (const p of rest) c.pointerMove(p[0], p[1], mods);
  const last = points[points.length - 1];
  c.pointerUp(last[0], last[1], 0, mods);
}

function click(c: EditorController, x: number, y: number, mods = {}, clicks = 1) {
  c.pointerDown(x, y, 0, mods, clicks);
  c.pointerUp(x, y, 0, mods, clicks);
}

describe('brush, eraser and unknown brush', () => {
  it('a drag paints a continuous band of the active class and is one undo step', () => {
    const { model, controller, commits } = setup();
    controller.setActiveClass(2);
    controller.setBrushRadius(2);
    drag(controller, [[5.5, 30.5], [60.5, 30.5]]);
    for (let x = 5; x <= 60; x++) expect(model.classAt(x, 30)).toBe(2);
    expect(model.classAt(30, 33)).toBe(0);
    expect(commits).toEqual(['stroke:Brush']);
    controller.undo();
    expect(model.classCounts()[2]).toBe(0);
    expect(commits).toEqual(['stroke:Brush', 'undo:Brush']);
  });

  it('the eraser clears class and object; Alt with the brush erases too', () => {
    const { model, controller } = setup();
    controller.setBrushRadius(4);
    drag(controller, [[10.5, 10.5], [40.5, 10.5]]);
    controller.setTool('eraser');
    drag(controller, [[20.5, 10.5], [25.5, 10.5]]);
    expect(model.classAt(22, 10)).toBe(0);
    expect(model.classAt(12, 10)).toBe(1);
    controller.setTool('brush');
    drag(controller, [[12.5, 10.5]], { alt: true });
    expect(model.classAt(12, 10)).toBe(0);
  });

  it('the unknown brush writes 255 over labels', () => {
    const { model, controller } = setup();
    controller.setBrushRadius(3);
    drag(controller, [[10.5, 10.5]]);
    controller.setTool('unknown');
    drag(controller, [[10.5, 10.5]]);
    expect(model.classAt(10, 10)).toBe(UNKNOWN);
  });

  it("each tool's own shortcut selects it, no two tools share one, and the help lists each", () => {
    const { controller } = setup();
    const tools = Object.values(controller.tools);
    expect(new Set(tools.map((t) => t.shortcut.toLowerCase())).size).toBe(tools.length);
    for (const t of tools) {
      controller.setTool(t.name === 'brush' ? 'eraser' : 'brush');
      expect(controller.keyDown(t.shortcut.toLowerCase())).toBe(true);
      expect(controller.tool).toBe(t.name);
      expect(EditorController.shortcuts).toContainEqual({ keys: t.shortcut, does: t.title });
    }
  });

  it('keyboard: tool keys, classes, brush size, undo and redo', () => {
    const { model, controller } = setup();
    expect(controller.keyDown('e')).toBe(true);
    expect(controller.tool).toBe('eraser');
    controller.keyDown('b');
    controller.keyDown('3');
    expect(controller.settings.activeClass).toBe(3);
    const before = controller.settings.brushRadius;
    controller.keyDown(']');
    expect(controller.settings.brushRadius).toBeGreaterThan(before);
    drag(controller, [[30.5, 30.5]]);
    expect(model.classAt(30, 30)).toBe(3);
    controller.keyDown('z', { ctrl: true });
    expect(model.classAt(30, 30)).toBe(0);
    controller.keyDown('z', { ctrl: true, shift: true });
    expect(model.classAt(30, 30)).toBe(3);
    expect(controller.keyDown('q')).toBe(false);
  });
});

describe('flood fill and polygon', () => {
  it('fills the enclosed region only', () => {
    const { model, controller } = setup(32, 32);
    controller.setBrushRadius(0);
    // A closed square outline from (8,8) to (20,20).
    drag(controller, [[8.5, 8.5], [20.5, 8.5], [20.5, 20.5], [8.5, 20.5], [8.5, 8.5]]);
    controller.setTool('fill');
    controller.setActiveClass(2);
    click(controller, 14.5, 14.5);
    expect(model.classAt(14, 14)).toBe(2);
    expect(model.classAt(9, 9)).toBe(2);
    expect(model.classAt(8, 8)).toBe(1);
    expect(model.classAt(2, 2)).toBe(0);
    expect(model.classCounts()[2]).toBe(11 * 11);
  });

  it('a polygon of clicks closes on the first vertex and fills its inside', () => {
    const { model, controller, commits } = setup();
    controller.setTool('polygon');
    click(controller, 10, 10);
    click(controller, 30, 10);
    click(controller, 30, 30);
    click(controller, 10, 30);
    expect(controller.currentPreview?.points.length).toBeGreaterThan(0);
    click(controller, 10.5, 10.5);
    expect(controller.currentPreview).toBeNull();
    expect(model.classAt(20, 20)).toBe(1);
    expect(model.classAt(5, 5)).toBe(0);
    expect(model.classCounts()[1]).toBe(20 * 20);
    expect(commits).toEqual(['stroke:Polygon']);
  });

  it('Enter closes, Escape cancels, dragging draws a lasso', () => {
    const { model, controller } = setup();
    controller.setTool('polygon');
    click(controller, 2, 2);
    click(controller, 12, 2);
    click(controller, 2, 12);
    controller.keyDown('Escape');
    expect(model.classCounts()[1]).toBe(0);
    click(controller, 2, 2);
    click(controller, 12, 2);
    click(controller, 2, 12);
    controller.keyDown('Enter');
    expect(model.classAt(4, 4)).toBe(1);
    drag(controller, [[40, 40], [60, 40], [60, 60], [40, 60]]);
    expect(model.classAt(50, 50)).toBe(1);
    expect(model.classAt(50, 62)).toBe(0);
  });
});

describe('instance tools', () => {
  it('new object gives each stroke its own id; the brush then continues the last one', () => {
    const { model, controller } = setup();
    controller.setTool('instance-new');
    controller.setBrushRadius(3);
    drag(controller, [[10.5, 10.5]]);
    drag(controller, [[40.5, 40.5]]);
    const a = model.instanceAt(10, 10);
    const b = model.instanceAt(40, 40);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(a);
    expect(model.classAt(40, 40)).toBe(1);
    controller.setTool('brush');
    drag(controller, [[45.5, 40.5]]);
    expect(model.instanceAt(46, 40)).toBe(b);
  });

  it('merge joins the second object into the first in one undo step; delete removes one', () => {
    const { model, controller } = setup();
    controller.setTool('instance-new');
    controller.setBrushRadius(3);
    drag(controller, [[10.5, 10.5]]);
    drag(controller, [[30.5, 10.5]]);
    drag(controller, [[50.5, 10.5]]);
    const [a, b, c] = [model.instanceAt(10, 10), model.instanceAt(30, 10), model.instanceAt(50, 10)];
    controller.setTool('instance-merge');
    click(controller, 10.5, 10.5);
    click(controller, 30.5, 10.5);
    expect(model.instanceAt(30, 10)).toBe(a);
    controller.setTool('instance-delete');
    click(controller, 50.5, 10.5);
    expect(model.instanceAt(50, 10)).toBe(0);
    expect(model.classAt(50, 10)).toBe(0);
    controller.undo();
    expect(model.instanceAt(50, 10)).toBe(c);
    controller.undo();
    expect(model.instanceAt(30, 10)).toBe(b);
  });

  it('split cuts an object along the dragged line into two objects', () => {
    const { model, controller } = setup();
    controller.setTool('instance-new');
    controller.setBrushRadius(0);
    controller.setTool('polygon');
    controller.setInstanceMode(true);
    controller.newObject();
    click(controller, 10, 10);
    click(controller, 50, 10);
    click(controller, 50, 30);
    click(controller, 10, 30);
    controller.keyDown('Enter');
    const original = model.instanceAt(20, 20);
    expect(original).toBeGreaterThan(0);
    controller.setTool('instance-split');
    drag(controller, [[30.5, 5.5], [31.5, 35.5]]);
    const left = model.instanceAt(15, 20);
    const right = model.instanceAt(45, 20);
    expect(left).toBeGreaterThan(0);
    expect(right).toBeGreaterThan(0);
    expect(left).not.toBe(right);
    expect([left, right]).toContain(original);
    controller.undo();
    expect(model.instanceAt(45, 20)).toBe(original);
  });

  it('line4 steps only horizontally or vertically', () => {
    const points = line4({ x: 0, y: 0 }, { x: 7, y: 3 });
    expect(points[0]).toEqual({ x: 0, y: 0 });
    expect(points[points.length - 1]).toEqual({ x: 7, y: 3 });
    for (let i = 1; i < points.length; i++) expect(Math.abs(points[i].x - points[i - 1].x) + Math.abs(points[i].y - points[i - 1].y)).toBe(1);
  });
});

describe('viewport', () => {
  it('wheel zoom keeps the image point under the cursor fixed; fit shows the whole image', () => {
    const model = new MaskModel(400, 200);
    const surface = { size: () => ({ width: 800, height: 600 }), setViewport() {}, setPreview() {}, setCursor() {} };
    const controller = new EditorController({ model, surface });
    const vp = controller.viewport;
    expect(400 * vp.scale).toBeLessThanOrEqual(800);
    expect(vp.offsetY).toBeGreaterThan(0);
    const at = { x: 300, y: 250 };
    const before = { x: (at.x - vp.offsetX) / vp.scale, y: (at.y - vp.offsetY) / vp.scale };
    controller.wheel(at.x, at.y, 0, -300);
    const z = controller.viewport;
    expect(z.scale).toBeCloseTo(vp.scale * 2);
    expect((at.x - z.offsetX) / z.scale).toBeCloseTo(before.x);
    expect((at.y - z.offsetY) / z.scale).toBeCloseTo(before.y);
    controller.keyDown('ArrowLeft');
    expect(controller.viewport.offsetX).toBeGreaterThan(z.offsetX);
    controller.keyDown('0');
    expect(controller.viewport).toEqual(vp);
    // Space-drag pans instead of painting.
    controller.keyDown(' ');
    controller.pointerDown(100, 100, 0);
    controller.pointerMove(150, 100);
    controller.pointerUp(150, 100, 0);
    controller.keyUp(' ');
    expect(controller.viewport.offsetX).toBeCloseTo(vp.offsetX + 50);
    expect(model.classCounts()[0]).toBe(400 * 200);
  });
});

describe('lasso closed next to its start (issue: a small nucleus started a polygon)', () => {
  it('a drag that ends within a pixel of where it began fills the lasso and leaves no polygon behind', () => {
    const { model, controller, commits } = setup();
    controller.setTool('polygon');
    drag(controller, [[20.5, 20.5], [30.5, 20.5], [30.5, 30.5], [20.5, 30.5], [21.5, 20.5]]);
    expect(commits).toEqual(['stroke:Polygon']);
    expect(model.classAt(25, 25)).toBe(1);
    // The next lasso is a lasso of its own, not one more vertex of a polygon in progress.
    drag(controller, [[40.5, 40.5], [50.5, 40.5], [50.5, 50.5], [40.5, 50.5], [40.5, 41.5]]);
    expect(commits).toEqual(['stroke:Polygon', 'stroke:Polygon']);
    expect(model.classAt(45, 45)).toBe(1);
    expect(model.classAt(35, 35)).toBe(0);
    expect(controller.currentPreview).toBeNull();
  });
});

describe('objects in a mask with class labels (issue: instance mode deleted semantic labels)', () => {
  it('the first object gives every labeled pixel an object, in the same undo step, so the stored mask keeps them all', () => {
    const { model, controller, commits } = setup();
    controller.setTool('polygon');
    // Two lassoed nuclei, no objects yet.
    drag(controller, [[5.5, 5.5], [15.5, 5.5], [15.5, 15.5], [5.5, 15.5], [5.5, 6.5]]);
    drag(controller, [[30.5, 5.5], [40.5, 5.5], [40.5, 15.5], [30.5, 15.5], [30.5, 6.5]]);
    const labeled = model.classCounts()[1];
    expect(model.hasObjects).toBe(false);
    expect(controller.setInstanceMode(true)).toBe(true);
    controller.setTool('instance-new');
    controller.setBrushRadius(3);
    drag(controller, [[50.5, 50.5], [55.5, 50.5]]);
    expect(commits).toHaveLength(3);
    const a = model.instanceAt(10, 10);
    const b = model.instanceAt(35, 10);
    const c = model.instanceAt(52, 50);
    expect(new Set([a, b, c]).size).toBe(3);
    expect(Math.min(a, b, c)).toBeGreaterThan(0);
    // Stored and read back (as the annotator does on reload): every labeled pixel is still there.
    const back = fromStored(toStored(model.width, model.height, model.classes, model.instances));
    let kept = 0;
    for (let i = 0; i < back.classes.length; i++) {
      expect(back.classes[i]).toBe(model.classes[i]);
      expect(back.instances[i]).toBe(model.instances[i]);
      kept += back.classes[i] === 1 ? 1 : 0;
    }
    expect(kept).toBeGreaterThan(labeled);
    // One undo takes the object and the conversion back together.
    controller.undo();
    expect(model.instanceAt(10, 10)).toBe(0);
    expect(model.classAt(10, 10)).toBe(1);
    expect(model.classAt(52, 50)).toBe(0);
  });

  it('undoing the first object leaves a mask of class ids again, stored as such (nothing dropped)', () => {
    const { model, controller } = setup();
    controller.setTool('polygon');
    drag(controller, [[5.5, 5.5], [15.5, 5.5], [15.5, 15.5], [5.5, 15.5], [5.5, 6.5]]);
    controller.setTool('instance-new');
    drag(controller, [[40.5, 40.5]]);
    expect(model.hasObjects).toBe(true);
    controller.undo();
    // The object and the conversion are gone: the annotator stores class ids (uint8), which keep the lasso.
    expect(model.hasObjects).toBe(false);
    const back = fromStored(toStored(model.width, model.height, model.classes, model.instances, model.hasObjects ? 'int32' : 'uint8'));
    expect(back.classes[10 * 64 + 10]).toBe(1);
    controller.redo();
    expect(model.hasObjects).toBe(true);
    expect(model.instanceAt(10, 10)).toBeGreaterThan(0);
  });

  it('painting with objects off in a mask that has objects still stores every pixel', () => {
    const { model, controller } = setup();
    controller.setTool('instance-new');
    controller.setBrushRadius(2);
    drag(controller, [[10.5, 10.5]]);
    controller.setInstanceMode(false);
    controller.setTool('brush');
    drag(controller, [[40.5, 40.5], [45.5, 40.5]]);
    expect(model.instanceAt(42, 40)).toBeGreaterThan(0);
    const back = fromStored(toStored(model.width, model.height, model.classes, model.instances));
    expect(back.classes[40 * 64 + 42]).toBe(1);
  });

  it('objects are refused on a mask with a second class, and a second class is refused once objects exist', () => {
    const { model, controller } = setup();
    controller.setActiveClass(2);
    drag(controller, [[10.5, 10.5]]);
    expect(controller.setInstanceMode(true)).toBe(false);
    expect(controller.settings.instanceMode).toBe(false);
    controller.setTool('instance-new');
    expect(controller.tool).toBe('brush');

    const other = setup();
    other.controller.setTool('instance-new');
    drag(other.controller, [[10.5, 10.5]]);
    other.controller.setActiveClass(3);
    expect(other.controller.settings.activeClass).toBe(1);
    expect(model.classAt(10, 10)).toBe(2);
  });
});
