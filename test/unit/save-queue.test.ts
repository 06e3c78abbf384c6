/**
 * The annotator's save queue: a stroke that cannot be saved is kept, shown pending and retried
 * until it lands; a retry stores the editor's whole mask, so a patch that no longer fits the
 * stored label still ends as exactly what the user sees.
 */
import { describe, expect, it } from 'vitest';
import { MaskModel } from '../../renderer/src/editor/model';
import { encodeRegion } from '../../renderer/src/editor/codec';
import { SaveQueue, type SaveQueueState, type SaveSender, type StrokeSave } from '../../renderer/src/lib/saveQueue';
import type { LabelVersionSummary } from '../../src/shared';

const target = { projectUuid: '00000000-0000-4000-8000-000000000001', imageId: 7 };

function summary(version: number): LabelVersionSummary {
  return { version, parentVersion: null, restoredFrom: null, source: 'manual', author: '', createdAt: 0, dtype: 'uint8', width: 8, height: 8, hasUnknown: false };
}

/** A project of one image: applies wholes and patches like the service, and fails while told to. */
function fakeProject() {
  const stored = { version: 0, data: new Uint8Array(64) };
  const calls: string[] = [];
  let failuresLeft = 0;
  const maybeFail = (what: string) => {
    calls.push(what);
    if (failuresLeft > 0) {
      failuresLeft--;
      throw new Error('not authorised: this session needs its token');
    }
  };
  const sender: SaveSender = {
    async saveWhole(r) {
      maybeFail('whole');
      stored.data = Uint8Array.from(r.mask.data);
      return summary(++stored.version);
    },
    async savePatch(r) {
      maybeFail('patch');
      if (r.baseVersion !== stored.version) throw new Error(`label version ${r.baseVersion} is not the latest`);
      for (let y = 0; y < r.height; y++) for (let x = 0; x < r.width; x++) stored.data[(r.y + y) * 8 + r.x + x] = r.data[y * r.width + x];
      return summary(++stored.version);
    },
    async decide(r) {
      maybeFail(r.decision);
      return null;
    },
  };
  return { stored, calls, sender, failNext: (n: number) => (failuresLeft = n) };
}

function stroke(model: MaskModel, x: number, y: number, first: boolean): StrokeSave {
  model.beginStroke('dot');
  model.touch({ x, y, width: 1, height: 1 });
  model.set(y * 8 + x, 1, 0);
  model.endStroke();
  const region = { x, y, width: 1, height: 1 };
  const whole = { x: 0, y: 0, width: 8, height: 8 };
  const encoded = encodeRegion(8, model.classes, model.instances, first ? whole : region, 'uint8');
  return { kind: 'stroke', target, model, source: 'manual', dtype: 'uint8', region: first ? null : region, ...encoded, timeSpentMs: 10, pixelsChanged: 1 };
}

describe('SaveQueue', () => {
  it('keeps failed strokes pending, retries them, and stores the mask the editor shows', async () => {
    const project = fakeProject();
    const states: SaveQueueState[] = [];
    const queue = new SaveQueue(project.sender, (s) => states.push(s), [1, 1, 1]);
    const model = new MaskModel(8, 8);
    queue.enqueue(stroke(model, 1, 1, true));
    await queue.flushed();
    expect(project.stored.version).toBe(1);
    queue.setKnownVersion(target, 1);

    project.failNext(3);
    queue.enqueue(stroke(model, 2, 2, false));
    queue.enqueue(stroke(model, 3, 3, false));
    expect(queue.pendingModel(target)).toBe(model);
    await queue.flushed();
    // Never dropped: reported pending with the error, then stored once the server answers.
    expect(states.some((s) => s.pending === 2 && s.error?.includes('not authorised'))).toBe(true);
    expect(queue.state).toEqual({ pending: 0, error: null, stored: 2 });
    expect(Array.from(project.stored.data)).toEqual(Array.from(model.classes));
    // The retry stored the whole mask, which held the later stroke too: that one was not sent again.
    expect(project.calls).toEqual(['whole', 'patch', 'whole', 'whole', 'whole']);
    expect(queue.pendingModel(target)).toBeNull();
  });

  it('a patch refused because the stored label moved on is stored as the whole mask', async () => {
    const project = fakeProject();
    const queue = new SaveQueue(project.sender, () => undefined, [1]);
    const model = new MaskModel(8, 8);
    queue.enqueue(stroke(model, 0, 0, true));
    await queue.flushed();
    project.stored.version = 5; // another window saved meanwhile
    queue.enqueue(stroke(model, 4, 4, false));
    await queue.flushed();
    expect(project.calls).toEqual(['whole', 'patch', 'whole']);
    expect(project.stored.data[4 * 8 + 4]).toBe(1);
    expect(project.stored.data[0]).toBe(1);
    expect(queue.knownVersion(target)).toBe(6);
  });

  it('retryNow skips the pause', async () => {
    const project = fakeProject();
    const queue = new SaveQueue(project.sender, () => undefined, [60_000]);
    project.failNext(1);
    queue.enqueue({ kind: 'reject', target, timeSpentMs: 0 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(queue.state.pending).toBe(1);
    queue.retryNow();
    await queue.flushed();
    expect(project.calls).toEqual(['reject', 'reject']);
  });
});
