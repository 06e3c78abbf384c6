/**
 * `maskloop eval curve` and `eval loop` end to end on the real ISBI 2012 slices, with so few steps
 * that the figures mean nothing: what is checked is the machinery a full evaluation relies on —
 * paired cells, every output written, an interrupted curve continuing instead of starting over,
 * the loop's first round costing a whole drawing.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, test } from 'vitest';
import type { CurveRun } from '../../src/eval/curve';
import { readJsonLines } from '../../src/eval/report';
import type { LoopRound } from '../../src/eval/session';
import { datasetUnavailableReason } from '../../src/imaging/datasets';
import { syntheticNuclei } from '../../src/imaging/synthetic';

const bin = new URL('../../src/cli/bin.mjs', import.meta.url).pathname;
const missing = datasetUnavailableReason('isbi2012-em');
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop eval ü '));

async function cli(...args: string[]) {
  const child = spawn(process.execPath, [bin, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { status, stdout, stderr };
}

const TINY = ['--dataset', 'isbi2012-em', '--pretrain-steps', '4', '--batch', '2', '--patch', '64', '--val-images', '1'];

describe.skipIf(missing !== null)(`eval on isbi2012-em${missing ? ` (skipped: ${missing})` : ''}`, () => {
  test('curve: paired runs, JSON/CSV/plot/report, and a second invocation continues', async () => {
    const dir = path.join(out, 'curve');
    // Test-time augmentation off: eight more val passes per run would double this test's time; the loop below keeps it on.
    const args = ['eval', 'curve', ...TINY, '--tta', 'off', '--steps', '4', '--ks', '1,all', '--inits', 'scratch,inpainting,rotation,combo', '--subsets', '2', '--all-repeats', '1', '--out', dir];
    const first = await cli(...args);
    expect(first.status, first.stderr).toBe(0);
    const runs = JSON.parse(fs.readFileSync(path.join(dir, 'runs.json'), 'utf8')) as CurveRun[];
    // 3 cells (k=1 twice, all once) for scratch, two tasks and their combination.
    expect(runs).toHaveLength(12);
    // The combination lists its tasks best first on val, which varies with the network.
    const inits = new Set(runs.map((r) => (r.init.includes('+') ? r.init.split('+').sort().join('+') : r.init)));
    expect(inits).toEqual(new Set(['scratch', 'inpainting', 'rotation', 'inpainting+rotation']));
    const subsetsOf = (init: string) => runs.filter((r) => r.init === init && r.kLabel === '1').map((r) => r.trainImages.join()).sort();
    expect(subsetsOf('inpainting')).toEqual(subsetsOf('scratch'));
    for (const r of runs) {
      expect(r.testDice).toBeGreaterThanOrEqual(0);
      expect(r.testDice).toBeLessThanOrEqual(1);
      expect(r.backend).not.toBe('unknown');
      expect(r.k).toBe(r.kLabel === 'all' ? 20 : 1);
    }
    const csv = fs.readFileSync(path.join(dir, 'runs.csv'), 'utf8').trim().split('\n');
    expect(csv).toHaveLength(13);
    expect(csv[0]).toContain('testDice');
    expect((await sharp(path.join(dir, 'curve.png')).metadata()).format).toBe('png');
    expect(fs.readFileSync(path.join(dir, 'curve.svg'), 'utf8')).toContain('test Dice vs labeled images');
    const report = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
    expect(report).toContain('maskloop (val-chosen)');
    // Every network paused at its race step (step 1 of 4) and went on: the first model's race is a line of its own.
    expect(runs.every((r) => r.raceValDice !== undefined && r.raceValDice >= 0 && r.raceValDice <= 1)).toBe(true);
    expect(report).toContain('maskloop (raced: the first model)');
    expect(report).toMatch(/The first model's race .*: k=1: /);
    expect(report).toContain('eval curve');
    expect(report).toMatch(/k=1: best use of the unlabeled images \(.+\) − scratch = [+-]\d/);

    const second = await cli(...args);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).toContain('continuing: 12 runs already measured');
    expect(second.stderr).not.toContain('pretraining');
    expect(runs.every((r) => r.norm === 'batch' && r.schedule === 'cosine' && r.threshold === 'calibrated' && r.weights === 'best')).toBe(true);

    // A network of another kind is another measurement: nothing is continued from the runs above.
    const plain = await cli(...args.map((a) => (a === '1,all' ? '1' : a)), '--inits', 'scratch', '--norm', 'none');
    expect(plain.status, plain.stderr).toBe(0);
    expect(plain.stderr).not.toContain('continuing');
    expect(fs.readFileSync(path.join(dir, 'report.md'), 'utf8')).toContain('(U-Net without normalisation)');
    // Nor from runs trained with another learning-rate schedule.
    const constant = await cli(...args.map((a) => (a === '1,all' ? '1' : a)), '--inits', 'scratch', '--lr-schedule', 'constant');
    expect(constant.status, constant.stderr).toBe(0);
    expect(constant.stderr).not.toContain('continuing');
    expect(fs.readFileSync(path.join(dir, 'report.md'), 'utf8')).toContain('(constant learning rate)');
    // Pretrained runs at another pretraining rate are another measurement; scratch runs are the same.
    const fasterPretraining = await cli(...args.map((a) => (a === '1,all' ? '1' : a)), '--inits', 'scratch,rotation', '--pretrain-learning-rate', '0.003');
    expect(fasterPretraining.status, fasterPretraining.stderr).toBe(0);
    expect(fasterPretraining.stderr).toContain('continuing: 3 runs already measured');
    expect(fasterPretraining.stderr).toContain('pretraining rotation');
    expect(fs.readFileSync(path.join(dir, 'report.md'), 'utf8')).toContain('(pretraining rate 0.003)');
    const rates = readJsonLines<CurveRun>(path.join(dir, 'runs.jsonl')).filter((r) => r.init === 'rotation').map((r) => r.pretrainLearningRate);
    expect(rates).toEqual([0.001, 0.001, 0.001, 0.003, 0.003]);
    // Runs too short for a val check along the way are the same measurement with either weights…
    const short = await cli(...args.map((a) => (a === '1,all' ? '1' : a)), '--inits', 'scratch', '--weights', 'last');
    expect(short.status, short.stderr).toBe(0);
    expect(short.stderr).toMatch(/continuing: \d+ runs already measured/);
    expect(fs.readFileSync(path.join(dir, 'report.md'), 'utf8')).not.toContain('last weights');
    // …longer ones that scored their last weights are not continued by ones that kept the best.
    const longer = (weights: string) => cli(...args.map((a, i) => (a === '1,all' ? '1' : args[i - 1] === '--steps' ? '51' : a)), '--inits', 'scratch', '--subsets', '1', '--weights', weights);
    expect((await longer('best')).status).toBe(0);
    const last = await longer('last');
    expect(last.status, last.stderr).toBe(0);
    expect(last.stderr).not.toContain('continuing');
    expect(fs.readFileSync(path.join(dir, 'report.md'), 'utf8')).toContain('(last weights, no val checks)');
    const kept = readJsonLines<CurveRun>(path.join(dir, 'runs.jsonl')).filter((r) => r.finetuneSteps === 51);
    expect(kept.map((r) => [r.weights, r.bestStep])).toEqual([['best', expect.any(Number)], ['last', undefined]]);
    const bad = await cli(...args, '--lr-schedule', 'linear');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--lr-schedule takes cosine or constant, got 'linear'");
    expect((await cli(...args, '--weights', 'first')).status).toBe(2);
  });

  test('loop: round 1 is drawn from nothing, later rounds are proposals, both orders', async () => {
    const dir = path.join(out, 'loop');
    const r = await cli('eval', 'loop', ...TINY, '--rounds', '3', '--first-steps', '4', '--retrain-steps', '4', '--candidates', '3', '--init', 'scratch', '--test-images', '2', '--out', dir);
    expect(r.status, r.stderr).toBe(0);
    const rounds = JSON.parse(fs.readFileSync(path.join(dir, 'rounds.json'), 'utf8')) as LoopRound[];
    expect(rounds).toHaveLength(6);
    for (const order of ['active', 'random']) {
      const mine = rounds.filter((q) => q.order === order);
      expect(mine.map((q) => q.round)).toEqual([1, 2, 3]);
      expect(mine[0].modelLabels).toBe(0);
      expect(mine[0].changedFraction).toBe(1);
      expect(mine[1].modelLabels).toBe(1);
      // The second label is held out as val, as the app's training would. The model retrained
      // then learned from no more labels than the first, and only it was fitted to that val
      // image, so the first model stays and proposes in round 3, in the app's words.
      expect(mine.map((q) => q.heldOut)).toEqual([false, true, false]);
      expect(mine[1].retrained).toBe(true);
      expect(mine[1].promoted).toBe(false);
      expect(mine[1].promotionReason).toMatch(/^kept model #1: learned from no more labeled images; val Dice .* was fitted to 1 val image\(s\) model #1 never saw$/);
      expect(mine[2].modelLabels).toBe(1);
      expect(new Set(mine.map((q) => q.image)).size).toBe(3);
      for (const q of mine) expect(q.drawPixels).toBeGreaterThan(0);
      // Every round's proposing model is also scored on the test split; without one, all is drawn.
      expect(mine[0].scoreChangedFraction).toBe(1);
      expect(mine[1].scoreChangedFraction).toBeGreaterThan(0);
      expect(mine[1].scoreDice).toBeGreaterThan(0);
      if (mine[2].modelLabels === mine[1].modelLabels) expect(mine[2].scoreChangedFraction).toBe(mine[1].scoreChangedFraction);
    }
    // Both sessions start from the same first image.
    expect(rounds.filter((q) => q.round === 1).map((q) => q.image)).toEqual([rounds[0].image, rounds[0].image]);
    expect((await sharp(path.join(dir, 'loop.png')).metadata()).format).toBe('png');
    const report = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
    expect(report).toContain('simulated labeling session');
    expect(report).toContain("proposing models on the test split");
  });

  test('loop: a session can also learn from the images not labeled yet', async () => {
    const dir = path.join(out, 'loop-semi');
    const r = await cli('eval', 'loop', ...TINY, '--rounds', '3', '--first-steps', '4', '--retrain-steps', '4', '--candidates', '3', '--init', 'scratch+semi', '--orders', 'random', '--test-images', '2', '--out', dir);
    expect(r.status, r.stderr).toBe(0);
    const rounds = JSON.parse(fs.readFileSync(path.join(dir, 'rounds.json'), 'utf8')) as LoopRound[];
    // Retrained after rounds 1 and 2 (not after the last); round 2's model proposes from the first label.
    expect(rounds.map((q) => [q.init, q.round, q.retrained])).toEqual([['scratch+semi', 1, true], ['scratch+semi', 2, true], ['scratch+semi', 3, false]]);
    expect(rounds[1].modelLabels).toBe(1);
    expect(rounds[1].scoreDice).toBeGreaterThan(0);
  });
});

describe('eval on a folder of images with a folder of masks', () => {
  test('curve: label images become an instance set, scored as objects beside the baselines and a semi-supervised line', async () => {
    const images = path.join(out, 'folder', 'images');
    const masks = path.join(out, 'folder', 'masks');
    fs.mkdirSync(images, { recursive: true });
    fs.mkdirSync(masks, { recursive: true });
    for (let i = 0; i < 6; i++) {
      const s = syntheticNuclei({ width: 64, height: 64, bitDepth: 8, seed: 200 + i });
      await sharp(Uint8Array.from(s.image.data as Uint8Array), { raw: { width: 64, height: 64, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(images, `cell ${i}.png`));
      await sharp(Uint16Array.from(s.instances), { raw: { width: 64, height: 64, channels: 1 } }).toColourspace('grey16').png().toFile(path.join(masks, `cell ${i}_mask.png`));
    }
    const dir = path.join(out, 'folder-curve');
    const r = await cli('eval', 'curve', '--images', images, '--masks', masks, '--encoding', 'labels', '--split', '0.5,0.17,0.33',
      '--steps', '4', '--pretrain-steps', '4', '--batch', '2', '--patch', '32', '--ks', '1', '--inits', 'scratch,scratch+semi,scratch+denoise,ilastik-rf', '--subsets', '1', '--out', dir);
    expect(r.status, r.stderr).toBe(0);
    const runs = JSON.parse(fs.readFileSync(path.join(dir, 'runs.json'), 'utf8')) as CurveRun[];
    expect(runs.map((run) => run.init).sort()).toEqual(['ilastik-rf', 'scratch', 'scratch+denoise', 'scratch+semi']);
    // The same label subset; the semi-supervised runs recorded the recipe each used, and joint denoising trains the plain steps.
    const semi = runs.find((run) => run.init === 'scratch+semi')!;
    expect(semi.trainImages).toEqual(runs.find((run) => run.init === 'scratch')!.trainImages);
    expect(semi.consistency).toMatchObject({ weight: expect.any(Number), threshold: expect.any(Number) });
    const denoise = runs.find((run) => run.init === 'scratch+denoise')!;
    expect(denoise.trainImages).toEqual(semi.trainImages);
    expect(denoise.jointDenoising).toMatchObject({ weight: expect.any(Number), unlabeledShare: expect.any(Number) });
    expect(denoise.finetuneSteps).toBe(4);
    expect(fs.readFileSync(path.join(dir, 'report.md'), 'utf8')).toMatch(/best use of the unlabeled images \(scratch\+(semi|denoise)\) − scratch = [+-]\d\.\d{3} F1/);
    // The plot shows what an instance set is judged by: its objects.
    expect(fs.readFileSync(path.join(dir, 'curve.svg'), 'utf8')).toContain('test F1 at IoU 0.5 vs labeled images');
    const scratch = runs.find((run) => run.init === 'scratch')!;
    expect(scratch).toMatchObject({ target: 'instance', dataset: 'folder-images', testF1: expect.any(Number) });
    expect(scratch.testObjectEdits).toMatchObject({ add: expect.any(Number), delete: expect.any(Number), split: expect.any(Number), merge: expect.any(Number) });
    expect(scratch.testObjectEdits!.trueObjects).toBeGreaterThan(0);
    const both = await cli('eval', 'curve', '--images', images, '--masks', masks, '--dataset', 'isbi2012-em', '--out', dir);
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('either --dataset or --images');
  });
});
