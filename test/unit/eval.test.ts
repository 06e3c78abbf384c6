/**
 * The evaluation's own arithmetic: correction cost, resampling, curve cells and the val-chosen
 * line, summary statistics, CSV and the plot. The runs themselves are measured by `eval curve`
 * and `eval loop` on real data (test/integration/eval-cli.test.ts drives them end to end).
 */
import sharp from 'sharp';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { correctionCost, dilate, objectEdits, strokesFor } from '../../src/eval/correction';
import { autoRuns, bestTasks, curveCells, PIXEL_CLASSIFIER, stat, summarizeCurve, type CurveRun } from '../../src/eval/curve';
import { lineChartSvg, writeChart } from '../../src/eval/plot';
import { curveCriteria, toCsv, writeLoopReport } from '../../src/eval/report';
import type { LoopRound } from '../../src/eval/session';
import { evenlySpread } from '../../src/engine/data';
import { otsuScores, type EvalDataset, type EvalImage } from '../../src/eval/setup';
import { otsuSegment } from '../../src/engine/metrics';
import { Rng } from '../../src/shared/rng';
import { displaces, PRETRAINED_MARGIN } from '../../src/engine/train/select';
import { downsampleMask, downsamplePixels, upsampleMask } from '../../src/imaging/resample';

function square(width: number, height: number, x0: number, y0: number, size: number): Uint8Array {
  const m = new Uint8Array(width * height);
  for (let y = y0; y < y0 + size; y++) for (let x = x0; x < x0 + size; x++) m[y * width + x] = 1;
  return m;
}

describe('correction cost', () => {
  test('without a proposal the cost is the whole drawing', () => {
    const truth = square(64, 64, 10, 10, 20);
    const c = correctionCost(null, truth, 64, 64);
    expect(c.changedPixels).toBe(400);
    expect(c.drawPixels).toBe(400);
    expect(c.changedFraction).toBe(1);
    expect(c.strokes).toBe(c.drawStrokes);
  });

  test('a perfect proposal costs nothing; a shifted one costs its symmetric difference', () => {
    const truth = square(64, 64, 10, 10, 20);
    expect(correctionCost(truth, truth, 64, 64)).toMatchObject({ changedPixels: 0, changedFraction: 0, strokes: 0 });
    const shifted = square(64, 64, 12, 10, 20);
    const c = correctionCost(shifted, truth, 64, 64);
    expect(c.changedPixels).toBe(2 * 2 * 20);
    expect(c.changedFraction).toBeCloseTo(80 / 400);
    // Two thin slivers, one on each side: one stroke each.
    expect(c.strokes).toBe(2);
  });

  test('the band cost forgives border ambiguity within 2 px of the true boundary, nothing else', () => {
    // A membrane 3 px thick, proposed 2 px off: the strict cost is large, the band cost nothing.
    const membrane = new Uint8Array(64 * 64);
    for (let y = 0; y < 64; y++) for (let x = 30; x < 33; x++) membrane[y * 64 + x] = 1;
    const shifted = new Uint8Array(64 * 64);
    for (let y = 0; y < 64; y++) for (let x = 32; x < 35; x++) shifted[y * 64 + x] = 1;
    const c = correctionCost(shifted, membrane, 64, 64);
    expect(c.changedFraction).toBeCloseTo(4 / 3);
    expect(c.bandChangedPixels).toBe(0);
    // 3 px off is one pixel column outside the band on each side.
    const further = new Uint8Array(64 * 64);
    for (let y = 0; y < 64; y++) for (let x = 33; x < 36; x++) further[y * 64 + x] = 1;
    expect(correctionCost(further, membrane, 64, 64).bandChangedPixels).toBe(64);
    // A missed object far from any boundary counts in full.
    const truth = square(64, 64, 10, 10, 20);
    expect(correctionCost(null, truth, 64, 64)).toMatchObject({ bandChangedPixels: 16 * 16, bandChangedFraction: 256 / 400 });
  });

  test('slivers along one outline are one stroke, distant errors are separate strokes', () => {
    const truth = square(96, 96, 20, 20, 30);
    // The proposal is the truth with every fourth outline pixel flipped: many tiny components.
    const jagged = truth.slice();
    for (let x = 20; x < 50; x += 4) jagged[20 * 96 + x] = 0;
    const c = correctionCost(jagged, truth, 96, 96);
    expect(c.changedPixels).toBe(8);
    expect(c.strokes).toBe(1);
    const twoSpots = truth.slice();
    twoSpots[20 * 96 + 20] = 0;
    twoSpots[49 * 96 + 49] = 0;
    expect(correctionCost(twoSpots, truth, 96, 96).strokes).toBe(2);
  });

  test('dilation reaches exactly its radius', () => {
    const m = new Uint8Array(11 * 11);
    m[5 * 11 + 5] = 1;
    const d = dilate(m, 11, 11, 2);
    expect(d.reduce((a, v) => a + v, 0)).toBe(25);
    expect(d[3 * 11 + 3]).toBe(1);
    expect(d[2 * 11 + 5]).toBe(0);
  });

  test('strokes grow with area and with extent', () => {
    const brush = { brush: 4, strokeLength: 10 };
    expect(strokesFor(square(64, 64, 0, 0, 2), 64, 64, brush)).toBe(1);
    // 20x20 = 400 px at 40 px per stroke.
    expect(strokesFor(square(64, 64, 0, 0, 20), 64, 64, brush)).toBe(10);
    // A 1-px line 50 long: the extent, not the area, decides.
    const line = new Uint8Array(64 * 64);
    for (let x = 0; x < 50; x++) line[5 * 64 + x] = 1;
    expect(strokesFor(line, 64, 64, brush)).toBe(5);
  });
});

describe('object edits', () => {
  /** An 8x4 map from rows of digits (object ids), for readable cases. */
  const map = (...rows: string[]) => Int32Array.from(rows.join(''), Number);
  const truth = map(
    '11002220',
    '11002220',
    '00000000',
    '33000044',
  );

  test('a perfect proposal needs none, and an empty one adds every object', () => {
    expect(objectEdits(truth, truth)).toEqual({ add: 0, delete: 0, split: 0, merge: 0 });
    expect(objectEdits(new Int32Array(32), truth)).toEqual({ add: 4, delete: 0, split: 0, merge: 0 });
  });

  test('counts merges of fragments, splits of merged objects, deletions and additions', () => {
    const proposed = map(
      '11002230', // true object 2 in two fragments: one merge
      '11002230',
      '00000000',
      '99999055', // 3 and the background held by one object with a stray part: kept; 4 found; none split
    );
    expect(objectEdits(proposed, truth)).toEqual({ add: 0, delete: 0, split: 0, merge: 1 });
    const merged = map(
      '11111110', // objects 1 and 2 held by one proposed object: one split
      '11111110',
      '00000077', // mostly background: one deletion
      '00000000', // 3 and 4 missed: two additions
    );
    expect(objectEdits(merged, truth)).toEqual({ add: 2, delete: 1, split: 1, merge: 0 });
  });

  test('refuses maps of different sizes', () => {
    expect(() => objectEdits(new Int32Array(4), truth)).toThrow(/differ in size/);
  });
});

describe('resampling to a working scale', () => {
  test('box average down, block masks survive down and up exactly', () => {
    const px = Float32Array.from({ length: 4 * 2 }, (_, i) => i);
    const d = downsamplePixels(px, 4, 2, 1, 2);
    expect(d.width).toBe(2);
    expect(d.height).toBe(1);
    expect([...d.pixels]).toEqual([(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4]);
    const mask = upsampleMask(Int32Array.from([1, 2, 3, 4, 5, 6]), 2, 6, 4);
    expect(mask.length).toBe(24);
    expect([...mask.slice(0, 6)]).toEqual([1, 1, 2, 2, 3, 3]);
    expect([...downsampleMask(mask, 6, 4, 2)]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test('odd sizes keep the last partial block', () => {
    const d = downsamplePixels(new Float32Array(5 * 5).fill(2), 5, 5, 1, 2);
    expect(d.width).toBe(3);
    expect([...d.pixels].every((v) => v === 2)).toBe(true);
    const up = upsampleMask(new Uint8Array(9).fill(1), 2, 5, 5);
    expect(up.length).toBe(25);
    expect([...up].every((v) => v === 1)).toBe(true);
  });
});

function fakeDataset(trainCount: number): EvalDataset {
  const train = Array.from({ length: trainCount }, (_, i) => ({ name: `im${i}` }) as EvalImage);
  return { name: 'fake', target: 'semantic', polarity: 'bright', downsample: 1, train, val: [], test: [], unlabeled: [] };
}

function run(init: string, kLabel: string, subset: number, valDice: number, testDice: number): CurveRun {
  return {
    dataset: 'fake', target: 'semantic', init, k: kLabel === 'all' ? 20 : Number(kLabel), kLabel, subset, seed: 1 + subset, valDice, testDice,
    testIoU: testDice * 0.8, pretrainSteps: 0, finetuneSteps: 10, pretrainSeconds: 0, wallSeconds: 1, backend: 'cpu', threads: 1, trainImages: [],
  };
}

describe('curve cells', () => {
  test('subsets per k, one cell for all, k ≥ train size means all', () => {
    const ds = fakeDataset(20);
    const cells = curveCells(ds, { ks: [1, 5, 10, 20, 0], subsets: 3, largeSubsets: 1, allRepeats: 2, seed: 1 });
    const count = (k: string) => cells.filter((c) => c.kLabel === k).length;
    expect(count('1')).toBe(3);
    expect(count('5')).toBe(3);
    expect(count('10')).toBe(1);
    expect(count('all')).toBe(2);
    expect(count('20')).toBe(0);
    for (const c of cells) expect(c.images.length).toBe(c.kLabel === 'all' ? 20 : Number(c.kLabel));
    // Subsets differ from each other and are reproducible: every initialisation gets the same ones.
    const ones = cells.filter((c) => c.kLabel === '5').map((c) => c.images.map((i) => i.name).join());
    expect(new Set(ones).size).toBe(3);
    const again = curveCells(ds, { ks: [5], subsets: 3, largeSubsets: 1, allRepeats: 2, seed: 1 });
    expect(again.map((c) => c.images.map((i) => i.name).join())).toEqual(ones);
  });
});

describe('a capped test split', () => {
  test('spreads over the whole split, keeps order, and takes all when not capped', () => {
    const names = Array.from({ length: 50 }, (_, i) => i);
    const kept = evenlySpread(names, 20);
    expect(kept).toHaveLength(20);
    expect(new Set(kept).size).toBe(20);
    expect(kept[0]).toBe(0);
    expect(kept[19]).toBeGreaterThanOrEqual(47);
    expect([...kept].sort((a, b) => a - b)).toEqual(kept);
    expect(evenlySpread(names, 0)).toBe(names);
    expect(evenlySpread(names, 80)).toBe(names);
  });
});

describe('scoring a split with an empty field', () => {
  test('images without ground-truth foreground are left out of the means and reported by what was marked on them', () => {
    const [w, h] = [40, 30];
    const rng = new Rng(3);
    const cell = { name: 'cell', image: { width: w, height: h, channels: 1, bitDepth: 8 as const, data: Uint8Array.from(square(w, h, 10, 8, 12), (v) => (v ? 200 : 20)) }, foreground: square(w, h, 10, 8, 12) };
    // Camera noise only: Otsu splits it in two and marks about half of it.
    const emptyImage = { width: w, height: h, channels: 1, bitDepth: 8 as const, data: new Uint8Array(w * h).map(() => 20 + Math.floor(6 * rng.next())) };
    const empty = { name: 'empty', image: emptyImage, foreground: new Uint8Array(w * h) };
    const ds = { ...fakeDataset(0), polarity: 'bright' as const };
    const asEval = (gt: typeof cell) => ({ name: gt.name, gt }) as EvalImage;
    const marked = otsuSegment(emptyImage).reduce((a, v) => a + v, 0);
    expect(marked).toBeGreaterThan(0);

    const both = otsuScores(ds, [asEval(cell), asEval(empty)]);
    expect(both).toEqual({ dice: 1, iou: 1, emptyImages: 1, emptyForeground: marked / (w * h) });
    expect(otsuScores(ds, [asEval(cell)])).toEqual({ dice: 1, iou: 1 });
    // A split of empty fields only keeps its (degenerate) means rather than having none.
    expect(otsuScores(ds, [asEval(empty)])).toMatchObject({ dice: 0, emptyImages: 1 });
  });
});

describe('the val-chosen line', () => {
  const runs = [
    run('scratch', '1', 0, 0.60, 0.50), run('inpainting', '1', 0, 0.70, 0.65), run('rotation', '1', 0, 0.65, 0.70),
    run('scratch', '1', 1, 0.62, 0.55), run('inpainting', '1', 1, 0.625, 0.40), run('rotation', '1', 1, 0.50, 0.30),
  ];

  test('picks the best val Dice per subset and reports its test Dice', () => {
    const chosen = autoRuns(runs, 0);
    expect(chosen.map((r) => [r.subset, r.chosenInit, r.testDice])).toEqual([[0, 'inpainting', 0.65], [1, 'inpainting', 0.40]]);
  });

  test('a margin keeps scratch unless a pretrained start clearly wins on val', () => {
    const chosen = autoRuns(runs, 0.01);
    expect(chosen.map((r) => r.chosenInit)).toEqual(['inpainting', 'scratch']);
  });

  test('summary: mean and sample sd per init and k, with how often each init was chosen', () => {
    const points = summarizeCurve(runs, 0.01);
    const auto = points.find((p) => p.init === 'auto');
    expect(auto?.dice.mean).toBeCloseTo((0.65 + 0.55) / 2);
    expect(auto?.chosen).toEqual({ inpainting: 1, scratch: 1 });
    const scratch = points.find((p) => p.init === 'scratch');
    expect(scratch?.dice.sd).toBeCloseTo(Math.SQRT2 * 0.025);
    const c = curveCriteria(points);
    expect(c.unlabeledGain[0].best).toBe('inpainting');
    expect(c.unlabeledGain[0].gain).toBeCloseTo(0.525 - 0.525);
    expect(c.worstAutoVsScratch.diff).toBeCloseTo(0.6 - 0.525);
  });

  test('the ilastik-style baseline is never chosen on val, and the report measures the val-chosen line against it', () => {
    // Its val Dice is not measured (NaN); even a high one must not make it a candidate.
    const withBaseline = [...runs, run(PIXEL_CLASSIFIER, '1', 0, 0.99, 0.58), run(PIXEL_CLASSIFIER, '1', 1, 0.99, 0.52)];
    expect(autoRuns(withBaseline, 0.01).map((r) => r.chosenInit)).toEqual(['inpainting', 'scratch']);
    const c = curveCriteria(summarizeCurve(withBaseline, 0.01));
    expect(c.unlabeledGain[0].best).toBe('inpainting');
    expect(c.vsBaseline).toEqual([{ k: '1', metric: 'Dice', gain: expect.closeTo((0.65 + 0.55) / 2 - 0.55, 6) }]);
  });

  test('the same rule as maskloop train: scratch keeps the benefit of the doubt', () => {
    expect(PRETRAINED_MARGIN).toBe(0.01);
    const scratch = { dice: 0.7 };
    expect(displaces({ dice: 0.705 }, scratch, true, scratch)).toBe(false);
    expect(displaces({ dice: 0.711 }, scratch, true, scratch)).toBe(true);
    expect(displaces({ dice: 0.701 }, { dice: 0.7 }, false, scratch)).toBe(true);
    expect(displaces({ dice: 0.7 }, { dice: 0.7 }, false, scratch)).toBe(false);
  });

  test('instance targets are chosen by F1, while Dice may not fall more than the margin below scratch', () => {
    const scratch = { dice: 0.95, f1: 0.80 };
    // Better objects at nearly the same Dice win; a small F1 gain does not displace scratch.
    expect(displaces({ dice: 0.945, f1: 0.84 }, scratch, true, scratch)).toBe(true);
    expect(displaces({ dice: 0.96, f1: 0.805 }, scratch, true, scratch)).toBe(false);
    // Better objects bought with Dice more than the margin below scratch's lose.
    expect(displaces({ dice: 0.935, f1: 0.90 }, scratch, true, scratch)).toBe(false);
    // Against a pretrained incumbent the Dice floor is still scratch's, so choices cannot drift down step by step.
    const pretrained = { dice: 0.942, f1: 0.84 };
    expect(displaces({ dice: 0.939, f1: 0.85 }, pretrained, false, scratch)).toBe(false);
    expect(displaces({ dice: 0.941, f1: 0.85 }, pretrained, false, scratch)).toBe(true);
    // Without scratch (a promoted model), the floor is the incumbent's Dice.
    expect(displaces({ dice: 0.933, f1: 0.85 }, pretrained, false, undefined)).toBe(true);
    expect(displaces({ dice: 0.931, f1: 0.85 }, pretrained, false, undefined)).toBe(false);
  });

  test('instance curves pick by val F1; runs without a val F1 fall back to val Dice', () => {
    const withF1 = (r: CurveRun, valF1: number): CurveRun => ({ ...r, target: 'instance', valF1 });
    const cell = [withF1(run('scratch', '1', 0, 0.95, 0.94), 0.80), withF1(run('inpainting', '1', 0, 0.945, 0.945), 0.85), withF1(run('rotation', '1', 0, 0.93, 0.93), 0.90)];
    expect(autoRuns(cell, 0.01).map((r) => r.chosenInit)).toEqual(['inpainting']);
    const old = cell.map(({ valF1: _dropped, ...r }) => r);
    expect(autoRuns(old, 0.01).map((r) => r.chosenInit)).toEqual(['scratch']);
  });

  test('best tasks rank pretext tasks by mean val Dice at few labels', () => {
    expect(bestTasks(runs, ['scratch', 'inpainting', 'rotation'], 2)).toEqual(['inpainting', 'rotation']);
  });

  test('stat of one value has no spread', () => {
    expect(stat([0.5])).toEqual({ mean: 0.5, sd: 0 });
  });
});

describe('outputs', () => {
  test('CSV quotes what needs quoting and keeps every column', () => {
    const csv = toCsv([{ a: 1, b: 'x,y' }, { a: 2, c: ['p', 'q'] }]);
    expect(csv).toBe('a,b,c\n1,"x,y",\n2,,p;q\n');
  });

  test('a plot is a valid SVG and PNG with one legend entry per series', async () => {
    const spec = {
      title: 'test <plot>', xLabel: 'labels', yLabel: 'Dice', logX: true,
      series: [{ name: 'scratch', points: [{ x: 1, y: 0.5, err: 0.1 }, { x: 10, y: 0.8 }] }, { name: 'inpainting', points: [{ x: 1, y: 0.6 }, { x: 10, y: 0.85 }] }],
    };
    const svg = lineChartSvg(spec);
    expect(svg).toContain('test &lt;plot&gt;');
    expect(svg.match(/<polyline/g)?.length).toBe(2);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-plot-'));
    await writeChart(path.join(dir, 'p'), spec);
    const meta = await sharp(path.join(dir, 'p.png')).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBe(760);
  });

  test('a session round whose image has nothing to draw reports pixels to erase, not a ratio', async () => {
    const round = (n: number, drawPixels: number, changedPixels: number): LoopRound => ({
      dataset: 'set', order: 'active', init: 'scratch', round: n, image: `im${n}`, modelLabels: n - 1, proposalDice: 0.9, uncertainty: 0.1,
      retrained: true, promoted: true, heldOut: false, trainSeconds: 1, drawPixels, changedPixels,
      changedFraction: drawPixels > 0 ? changedPixels / drawPixels : Infinity, strokes: 3, drawStrokes: drawPixels > 0 ? 10 : 0,
      bandChangedPixels: changedPixels / 2, bandChangedFraction: drawPixels > 0 ? changedPixels / 2 / drawPixels : Infinity,
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-loop-'));
    const ctx = { command: 'eval loop', dataset: 'set', backend: 'cpu', threads: 1, wallSeconds: 1, settings: {}, otsu: { dice: 0, iou: 0 } };
    const md = await writeLoopReport(dir, [round(1, 1000, 1000), round(2, 1000, 100), round(3, 0, 427)], ctx);
    expect(md).not.toContain('Infinity');
    expect(md).toContain('| 2 | 10.0% (3/10) |');
    expect(md).toContain('| 3 | nothing to draw: 427 px to erase (3/0) |');
    // The plot has a point for the rounds with something to draw only.
    expect(fs.readFileSync(path.join(dir, 'loop.svg'), 'utf8').match(/<circle/g)?.length).toBe(2);
  });

  test("a session scored on the test split gets a table, a dashed line and round 10's figure", async () => {
    const round = (n: number, score: number): LoopRound => ({
      dataset: 'set', order: 'random', init: 'scratch', round: n, image: `im${n}`, modelLabels: n - 1, proposalDice: 0.9, uncertainty: 0.1,
      retrained: true, promoted: true, heldOut: false, trainSeconds: 1, drawPixels: 1000, changedPixels: 100, changedFraction: 0.1, strokes: 3, drawStrokes: 10,
      bandChangedPixels: 40, bandChangedFraction: 0.04, scoreChangedFraction: score, scoreBandFraction: score / 4, scoreDice: n === 1 ? 0 : 1 - score / 2,
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-loop-'));
    const ctx = { command: 'eval loop', dataset: 'set', backend: 'cpu', threads: 1, wallSeconds: 1, settings: {}, otsu: { dice: 0, iou: 0 } };
    const md = await writeLoopReport(dir, Array.from({ length: 10 }, (_, i) => round(i + 1, i === 0 ? 1 : 0.5 / i)), ctx);
    expect(md).toContain('| 1 | 100.0% (25.0%; –) |');
    expect(md).toContain('| 2 | 50.0% (12.5%; 0.750) |');
    expect(md).toContain("on the test split, round 10's model: 5.6% (target < 10%; 1.4% outside the band), Dice 0.972");
    const svg = fs.readFileSync(path.join(dir, 'loop.svg'), 'utf8');
    expect(svg).toContain('scratch · random · test split');
    // Two lines of one session, the test split's dashed, in the session's colour.
    const lines = [...svg.matchAll(/<polyline[^>]*stroke="([^"]+)"[^>]*>/g)];
    expect(lines).toHaveLength(2);
    expect(lines[1][1]).toBe(lines[0][1]);
    expect(lines[1][0]).toContain('stroke-dasharray');
  });
});
