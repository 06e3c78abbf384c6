/**
 * Evaluation outputs: every run as JSON and CSV, a summary table, a plot, and a Markdown report
 * that states the issue's criteria against the measured figures, with the command that made them.
 */
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { PRETRAINED_MARGIN } from '../engine/train/select';
import { AUTO, PIXEL_CLASSIFIER, RACED, summarizeCurve, type CurvePoint, type CurveRun, type Stat } from './curve';
import type { LoopRound } from './session';
import { writeChart, type ChartSpec, type Series } from './plot';
import type { SplitScores } from './setup';
import { BEST_CHECK_EVERY } from '../engine/train/finetune';
import { TRAINING } from '../shared/training';
import { BOUNDARY_TOLERANCE } from './correction';

export function toCsv(rows: Record<string, unknown>[]): string {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => {
    const s = v === undefined || v === null ? '' : Array.isArray(v) ? v.join(';') : typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [columns.join(','), ...rows.map((r) => columns.map((c) => cell(r[c])).join(','))].join('\n') + '\n';
}

/** Reads the JSON-lines log of an earlier invocation, so an interrupted evaluation continues. */
export function readJsonLines<T>(file: string): T[] {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
}

const f3 = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(3));
const ms = (s: Stat | undefined) => (s ? `${f3(s.mean)} ± ${f3(s.sd)}` : '–');

export interface EvalContext {
  command: string;
  dataset: string;
  backend: string;
  threads: number;
  wallSeconds: number;
  settings: Record<string, unknown>;
  otsu: SplitScores;
}

function header(title: string, ctx: EvalContext): string[] {
  // Results measured before the U-Net had normalisation, before fine-tuning had its
  // learning-rate schedule, before the foreground threshold was calibrated, or before fine-tuning
  // kept its best weights on val, stay comparable side by side with today's.
  const differences = [
    ...(ctx.settings.norm === 'none' ? ['U-Net without normalisation'] : []),
    ...((ctx.settings.schedule ?? 'constant') === 'constant' ? ['constant learning rate'] : []),
    ...(ctx.settings.threshold === 'fixed' ? ['foreground threshold 0.5'] : []),
    ...(ctx.settings.weights === 'last' && Number(ctx.settings.finetuneSteps) > BEST_CHECK_EVERY ? ['last weights, no val checks'] : []),
    ...(ctx.settings.pretrainLearningRate !== undefined && ctx.settings.pretrainLearningRate !== TRAINING.pretrainLearningRate ? [`pretraining rate ${ctx.settings.pretrainLearningRate}`] : []),
  ];
  return [
    `### ${title}${differences.length ? ` (${differences.join(', ')})` : ''}`,
    '',
    '```sh',
    ctx.command,
    '```',
    '',
    `Backend ${ctx.backend} (${ctx.threads} threads) on ${os.cpus()[0]?.model ?? 'an unknown CPU'}; wall time ${(ctx.wallSeconds / 60).toFixed(1)} min; settings: ` +
      Object.entries(ctx.settings).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : v}`).join(', ') + '.',
    '',
  ];
}

export interface CurveCriteria {
  /**
   * Per k ≤ 5: the best use of the unlabeled images (a pretext initialisation, consistency
   * training, or both) against scratch, and the val-chosen line against scratch; in F1 for
   * instance sets, else Dice.
   */
  unlabeledGain: { k: string; best: string; metric: 'Dice' | 'F1'; gain: number; autoGain: number }[];
  /** Auto at k = 10 as a fraction of auto with all labels. */
  tenOfAll?: number;
  /** The worst (lowest) auto-minus-scratch difference over all k. */
  worstAutoVsScratch: { k: string; diff: number };
  /** Per k ≤ 5: auto minus the ilastik-style baseline, in F1 for instance sets, else Dice. */
  vsBaseline: { k: string; metric: 'Dice' | 'F1'; gain: number }[];
}

export function curveCriteria(points: CurvePoint[]): CurveCriteria {
  const at = (init: string, k: string) => points.find((p) => p.init === init && p.kLabel === k);
  const ks = [...new Set(points.map((p) => p.kLabel))];
  const unlabeledGain: CurveCriteria['unlabeledGain'] = [];
  for (const k of ks.filter((k) => k !== 'all' && Number(k) <= 5)) {
    const scratch = at('scratch', k);
    if (!scratch) continue;
    const others = points.filter((p) => p.kLabel === k && p.init !== 'scratch' && p.init !== AUTO && p.init !== RACED && p.init !== PIXEL_CLASSIFIER);
    if (others.length === 0) continue;
    const metric = scratch.f1 !== undefined ? 'F1' : 'Dice';
    const score = (p: CurvePoint | undefined) => (p ? (metric === 'F1' ? (p.f1 as Stat).mean : p.dice.mean) : NaN);
    const best = others.reduce((a, b) => (score(b) > score(a) ? b : a));
    unlabeledGain.push({ k, best: best.init, metric, gain: score(best) - score(scratch), autoGain: score(at(AUTO, k)) - score(scratch) });
  }
  const ten = at(AUTO, '10');
  const all = at(AUTO, 'all');
  let worst = { k: '', diff: Infinity };
  for (const k of ks) {
    const a = at(AUTO, k);
    const s = at('scratch', k);
    if (a && s && a.dice.mean - s.dice.mean < worst.diff) worst = { k, diff: a.dice.mean - s.dice.mean };
  }
  // The baseline a biologist would use instead, by F1 where objects are scored.
  const vsBaseline: CurveCriteria['vsBaseline'] = [];
  for (const k of ks.filter((k) => k !== 'all' && Number(k) <= 5)) {
    const mine = at(AUTO, k);
    const theirs = at(PIXEL_CLASSIFIER, k);
    if (!mine || !theirs) continue;
    const byF1 = mine.f1 !== undefined && theirs.f1 !== undefined;
    vsBaseline.push({ k, metric: byF1 ? 'F1' : 'Dice', gain: byF1 ? (mine.f1 as Stat).mean - (theirs.f1 as Stat).mean : mine.dice.mean - theirs.dice.mean });
  }
  return { unlabeledGain, tenOfAll: ten && all ? ten.dice.mean / all.dice.mean : undefined, worstAutoVsScratch: worst, vsBaseline };
}

export async function writeCurveReport(outDir: string, runs: CurveRun[], ctx: EvalContext, autoMargin: number): Promise<string> {
  const points = summarizeCurve(runs, autoMargin);
  fs.writeFileSync(path.join(outDir, 'runs.json'), JSON.stringify(runs, null, 1));
  fs.writeFileSync(path.join(outDir, 'runs.csv'), toCsv(runs as unknown as Record<string, unknown>[]));
  fs.writeFileSync(path.join(outDir, 'summary.csv'), toCsv(points.map((p) => ({
    init: p.init, k: p.kLabel, meanLabels: p.k, runs: p.runs, dice: p.dice.mean, diceSd: p.dice.sd, iou: p.iou.mean, iouSd: p.iou.sd,
    f1: p.f1?.mean, f1Sd: p.f1?.sd, ap: p.ap?.mean, apSd: p.ap?.sd, chosen: p.chosen ? JSON.stringify(p.chosen) : undefined,
  }))));

  // maskloop's own choices last (val-chosen, then raced), scratch first.
  const rank = (init: string) => (init === 'scratch' ? 0 : init === AUTO ? 2 : init === RACED ? 3 : 1);
  const inits = [...new Set(points.map((p) => p.init))].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const lineName = (init: string) => (init === AUTO ? 'maskloop (val-chosen)' : init === RACED ? 'maskloop (raced: the first model)' : init);
  const kLabels = [...new Set(points.map((p) => p.kLabel))].sort((a, b) => (a === 'all' ? 1 : b === 'all' ? -1 : Number(a) - Number(b)));
  const allK = Math.max(...runs.map((r) => r.k));
  const xOf = (p: CurvePoint) => (p.kLabel === 'all' ? allK : Number(p.kLabel));
  // The plot shows what the criteria judge by: objects (F1 at IoU 0.5) on instance sets, else Dice.
  const byF1 = points.every((p) => p.f1 !== undefined) && ctx.otsu.f1 !== undefined;
  const plotted = byF1
    ? { name: 'F1 at IoU 0.5', axis: 'test F1 at IoU 0.5 (objects)', stat: (p: CurvePoint) => p.f1 as Stat, otsu: ctx.otsu.f1 as number }
    : { name: 'Dice', axis: 'test Dice (foreground class)', stat: (p: CurvePoint) => p.dice, otsu: ctx.otsu.dice };
  const series: Series[] = inits.map((init) => ({
    name: lineName(init),
    emphasis: init === AUTO || init === RACED,
    points: points.filter((p) => p.init === init).map((p) => ({ x: xOf(p), y: plotted.stat(p).mean, err: plotted.stat(p).sd })),
  }));
  await writeChart(path.join(outDir, 'curve'), {
    title: `${ctx.dataset}: test ${plotted.name} vs labeled images`,
    xLabel: 'labeled training images',
    yLabel: `${plotted.axis}, mean ± sd over subsets`,
    series,
    logX: true,
    // A curve without k = all (--ks 1,2,5) keeps its largest k as a number.
    xTickLabels: new Map(runs.some((r) => r.kLabel === 'all') ? [[allK, `all (${allK})`]] : []),
    references: [{ y: plotted.otsu, label: `Otsu ${plotted.otsu.toFixed(3)}` }],
  });

  const table = (title: string, pick: (p: CurvePoint) => Stat | undefined) => {
    const lines = [`| ${title} | ${kLabels.map((k) => (k === 'all' ? `all (${allK})` : `k=${k}`)).join(' | ')} |`, `|---|${kLabels.map(() => '---').join('|')}|`];
    for (const init of inits) {
      const row = kLabels.map((k) => {
        const p = points.find((q) => q.init === init && q.kLabel === k);
        return p ? ms(pick(p)) : '–';
      });
      lines.push(`| ${init === AUTO || init === RACED ? `**${lineName(init)}**` : init} | ${row.join(' | ')} |`);
    }
    return lines;
  };
  const c = curveCriteria(points);
  const chosenBy = (line: string) => kLabels.map((k) => {
    const p = points.find((q) => q.init === line && q.kLabel === k);
    return p?.chosen ? `k=${k}: ${Object.entries(p.chosen).map(([n, v]) => `${n}×${v}`).join(', ')}` : '';
  }).filter(Boolean).join('; ');
  const chosenLine = chosenBy(AUTO);
  const racedLine = chosenBy(RACED);
  // How far into each fine-tuning the val checks found the weights they kept, over all
  // initialisations; reported where some run kept earlier weights than its last.
  const keptSteps = kLabels.map((k) => {
    const steps = runs.filter((r) => r.kLabel === k && r.bestStep !== undefined).map((r) => r.bestStep as number).sort((a, b) => a - b);
    const counts = [...new Set(steps)].map((s) => `${s}×${steps.filter((t) => t === s).length}`);
    return counts.length ? `k=${k}: ${counts.join(', ')}` : '';
  }).filter(Boolean).join('; ');
  // A curve may have been measured over several invocations (continued after an interruption):
  // its time is that of its runs, each pretraining counted once.
  const pretraining = new Map(runs.map((r) => [r.init, r.pretrainSeconds]));
  const measuredSeconds = runs.reduce((a, r) => a + r.wallSeconds, 0) + [...pretraining.values()].reduce((a, b) => a + b, 0);
  const lines = [
    ...header(`${ctx.dataset} — learning curve`, { ...ctx, wallSeconds: measuredSeconds }),
    `![${ctx.dataset} learning curve](curve.png)`,
    '',
    ...table('test Dice', (p) => p.dice),
    '',
    ...table('test IoU', (p) => p.iou),
    '',
    ...(points.some((p) => p.f1) ? [...table('test F1 @ IoU 0.5', (p) => p.f1), '', ...table('test AP @ IoU 0.5', (p) => p.ap), ''] : []),
    `Otsu on the test split: Dice ${f3(ctx.otsu.dice)}, IoU ${f3(ctx.otsu.iou)}${ctx.otsu.f1 !== undefined ? `, F1 ${f3(ctx.otsu.f1)}` : ''}.`,
    '',
    ...emptyFieldLines(runs, ctx.otsu),
    ...(runs.some((r) => r.bestStep !== undefined && r.bestStep !== r.finetuneSteps) ? [`Weights kept by the val checks (fine-tuning step × runs): ${keptSteps}.`, ''] : []),
    `Initialisation chosen on val (margin ${autoMargin} over scratch${runs.some((r) => r.valF1 !== undefined) ? `; by val F1, with val Dice at most ${autoMargin} below scratch's` : ''}): ${chosenLine}.`,
    ...(racedLine ? [`The first model's race (each network paused at a quarter of its steps, the leader on val Dice continued; a pretrained one must lead scratch by ${PRETRAINED_MARGIN}): ${racedLine}.`] : []),
    '',
    'Criteria:',
    ...c.unlabeledGain.map((g) => `- k=${g.k}: best use of the unlabeled images (${g.best}) − scratch = ${signed(g.gain)} ${g.metric}${Number(g.k) <= 2 ? ' (target ≥ +0.03)' : ''}; val-chosen − scratch = ${signed(g.autoGain)}`),
    `- k=10 reaches ${c.tenOfAll === undefined ? '–' : (100 * c.tenOfAll).toFixed(1) + '%'} of all labels' Dice (val-chosen; target ≥ 95%)`,
    `- val-chosen − scratch, worst over k: ${signed(c.worstAutoVsScratch.diff)} at k=${c.worstAutoVsScratch.k} (target ≥ −0.01)`,
    ...c.vsBaseline.map((b) => `- k=${b.k}: val-chosen − ${PIXEL_CLASSIFIER} (ilastik-style random forest, same labels) = ${signed(b.gain)} ${b.metric} (target ≥ +0.05)`),
    '',
  ];
  const md = lines.join('\n');
  fs.writeFileSync(path.join(outDir, 'report.md'), md);
  return md;
}

function signed(x: number): string {
  return `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;
}

function percent(fraction: number | undefined): string {
  return `${(100 * (fraction as number)).toFixed(1)}%`;
}

/** What proposals marked on test images whose ground truth has no foreground (left out of the scores). */
function emptyFieldLines(runs: CurveRun[], otsu: SplitScores): string[] {
  const shares = runs.flatMap((r) => (r.testEmptyForeground === undefined ? [] : [r.testEmptyForeground]));
  if (!otsu.emptyImages || shares.length === 0) return [];
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  return [
    `${otsu.emptyImages} test image(s) have no foreground in the ground truth; the scores above leave them out (Dice there is 0 for a single marked pixel). ` +
      `Proposals marked ${pct(shares.reduce((a, b) => a + b, 0) / shares.length)} of their pixels as foreground (mean over runs; most ${pct(Math.max(...shares))}); Otsu ${pct(otsu.emptyForeground ?? 0)}.`,
    '',
  ];
}

/** The sessions in a loop's rounds ('init · order'), their rounds, and those also scored on the test split. */
function loopSessions(rounds: LoopRound[]) {
  const sessions = [...new Set(rounds.map((r) => `${r.init} · ${r.order}`))];
  const of = (s: string) => rounds.filter((r) => `${r.init} · ${r.order}` === s);
  const scored = sessions.filter((s) => of(s).every((r) => r.scoreChangedFraction !== undefined));
  return { sessions, of, scored };
}

/** The loop's plot: each session's cost per round, and its models' cost on the test split dashed in the same colour. */
export function loopChart(dataset: string, rounds: LoopRound[]): ChartSpec {
  const { sessions, of, scored } = loopSessions(rounds);
  return {
    title: `${dataset}: correction cost per labeling round`,
    xLabel: 'round (labels so far + 1)',
    yLabel: 'pixels to correct / pixels to draw (clipped at 1.5)',
    // A fraction of nothing has no place on the plot; the table gives those rounds' pixels.
    series: [
      ...sessions.map((s, i) => ({ name: s, colour: i, points: of(s).filter((r) => r.drawPixels > 0).map((r) => ({ x: r.round, y: Math.min(r.changedFraction, 1.5) })) })),
      ...scored.map((s) => ({
        name: `${s} · test split`, colour: sessions.indexOf(s), emphasis: true,
        points: of(s).map((r) => ({ x: r.round, y: Math.min(r.scoreChangedFraction as number, 1.5) })),
      })),
    ],
    references: [{ y: 0.1, label: '10% target' }],
  };
}

export async function writeLoopReport(outDir: string, rounds: LoopRound[], ctx: EvalContext): Promise<string> {
  fs.writeFileSync(path.join(outDir, 'rounds.json'), JSON.stringify(rounds, null, 1));
  fs.writeFileSync(path.join(outDir, 'rounds.csv'), toCsv(rounds as unknown as Record<string, unknown>[]));
  const { sessions, of, scored } = loopSessions(rounds);
  await writeChart(path.join(outDir, 'loop'), loopChart(ctx.dataset, rounds));
  const maxRound = Math.max(...rounds.map((r) => r.round));
  /** A row per round, a column per session. */
  const roundTable = (columns: string[], cell: (r: LoopRound) => string) => [
    `| round | ${columns.join(' | ')} |`,
    `|---|${columns.map(() => '---').join('|')}|`,
    ...Array.from({ length: maxRound }, (_, i) => {
      const cells = columns.map((s) => {
        const r = of(s).find((q) => q.round === i + 1);
        return r ? cell(r) : '–';
      });
      return `| ${i + 1} | ${cells.join(' | ')} |`;
    }),
    '',
  ];
  const lines = [
    ...header(`${ctx.dataset} — simulated labeling session`, ctx),
    `![${ctx.dataset} correction cost](loop.png)`,
    '',
    'Pixels to correct as a fraction of drawing from nothing (strokes to correct / strokes to draw):',
    '',
    ...roundTable(sessions, (r) =>
      r.drawPixels > 0 ? `${percent(r.changedFraction)} (${r.strokes}/${r.drawStrokes})` : `nothing to draw: ${r.changedPixels} px to erase (${r.strokes}/0)`),
  ];
  if (scored.length) {
    lines.push(
      `The same rounds' proposing models on the test split: pixels to correct as a fraction of drawing, pooled over its images (the same outside a ${BOUNDARY_TOLERANCE} px band around the true boundary; their mean Dice):`,
      '',
      ...roundTable(scored, (r) => `${percent(r.scoreChangedFraction)} (${r.scoreBandFraction === undefined ? '–' : percent(r.scoreBandFraction)}; ${r.modelLabels ? (r.scoreDice as number).toFixed(3) : '–'})`),
    );
  }
  const edited = scored.filter((s) => of(s).some((r) => r.scoreObjectEdits));
  if (edited.length) {
    lines.push(
      'Object edits the same models need on the test split, per 100 true objects: add / delete / split / merge (correction.ts, objectEdits):',
      '',
      ...roundTable(edited, (r) => {
        const e = r.scoreObjectEdits;
        if (!e) return 'all drawn';
        const per100 = (n: number) => ((100 * n) / Math.max(1, e.trueObjects)).toFixed(1);
        return `${per100(e.add)} / ${per100(e.delete)} / ${per100(e.split)} / ${per100(e.merge)}`;
      }),
    );
  }
  if (rounds.some((r) => r.promotionReason)) {
    lines.push(
      "Each retraining after the first, as the app reports it: the retrained model's foreground / seed thresholds (chosen on the val split) and the promotion's line:",
      '',
      ...roundTable(sessions, (r) => {
        if (!r.promotionReason) return '–';
        const thresholds = [r.foregroundThreshold, r.seedThreshold].filter((t) => t !== undefined).join(' / ');
        return `${thresholds ? `${thresholds}: ` : ''}${r.promotionReason}`;
      }),
    );
  }
  for (const s of sessions) {
    const rs = of(s).filter((r) => r.modelLabels > 0);
    const total = rs.reduce((a, r) => a + r.changedPixels, 0);
    const draw = rs.reduce((a, r) => a + r.drawPixels, 0);
    const strokes = rs.reduce((a, r) => a + r.strokes, 0);
    const drawStrokes = rs.reduce((a, r) => a + r.drawStrokes, 0);
    const tenth = of(s).find((r) => r.round === 10);
    lines.push(`- ${s}: from round 2 on, ${(100 * total / draw).toFixed(1)}% of the pixels and ${(100 * strokes / drawStrokes).toFixed(1)}% of the strokes of drawing from nothing` +
      (!tenth ? '' : tenth.drawPixels > 0 ? `; round 10: ${percent(tenth.changedFraction)} (target < 10%; ${percent(tenth.bandChangedFraction)} outside the ${BOUNDARY_TOLERANCE} px band), proposal Dice ${tenth.proposalDice.toFixed(3)}`
        : `; round 10's image has nothing to draw (${tenth.changedPixels} px to erase)`) +
      (tenth?.scoreChangedFraction !== undefined ? `; on the test split, round 10's model: ${percent(tenth.scoreChangedFraction)} (target < 10%${tenth.scoreBandFraction === undefined ? '' : `; ${percent(tenth.scoreBandFraction)} outside the band`}), Dice ${(tenth.scoreDice as number).toFixed(3)}` : ''));
  }
  lines.push('');
  const md = lines.join('\n');
  fs.writeFileSync(path.join(outDir, 'report.md'), md);
  return md;
}
