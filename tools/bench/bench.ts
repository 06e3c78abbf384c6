/**
 * `npm run -s bench -- [--json] [--peer] [--steps n] [--repeats n] [--conv auto|f4|f2|direct] [--isa avx2|avx512] [--prelabel <folder>]`: times DESIGN.md's reference U-Net on the
 * chosen backend — training and inference at batch 8 on 128x128 inputs after warm-up, and one
 * 512x512 proposal end to end — and, with --peer, PyTorch on the same network in the same run,
 * reporting the ratios for the reference U-Net and for the network maskloop trains (batch
 * normalisation; absolute figures drift with whatever else the machine runs; --repeats n
 * alternates the two engines n times and reports the median ratio and each pair's). It also times
 * the same network with batch normalisation, the shape maskloop trains, against the plain one, and
 * names the CPU with its nominal peak, so throughput reads as GFLOP/s and a share of that peak.
 * With --prelabel it also prelabels a real folder as `maskloop prelabel` does, in a process of its
 * own (tools/prelabel-speed.ts), and reports its megapixels per second and peak memory.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initEngine } from '../../src/engine/backend';
import { classMap, predictImage } from '../../src/engine/infer/predict';
import { prepareImage } from '../../src/engine/input';
import { convolutionFlops, REFERENCE_UNET, UNet } from '../../src/engine/model/unet';
import { describeCpu } from './cpu';
import { convAlgorithm, loadNativeAddon, WINOGRAD_TILE, type ConvAlgorithm } from '../../src/engine/native/index';
import { syntheticNuclei } from '../../src/imaging/synthetic';
import { REFERENCE_BATCH, REFERENCE_INPUT, referenceThroughput } from './throughput';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    peer: { type: 'boolean', default: false },
    steps: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    python: { type: 'string', default: '/usr/bin/python3' },
    // 3x3 stride-1 convolutions of the native backend: 'auto' (what the product runs: per kind
    // of convolution the faster Winograd tile), 'f4' (Winograd F(4x4, 3x3) where it applies),
    // 'f2' (F(2x2, 3x3) only) or 'direct', to measure what each buys.
    conv: { type: 'string' },
    // The GEMM microkernel: 'avx512' where the CPU has AVX-512F (the default there), or 'avx2'.
    isa: { type: 'string' },
    prelabel: { type: 'string' },
    repeats: { type: 'string', default: '1' },
  },
});
if (args.conv !== undefined && !(args.conv in WINOGRAD_TILE)) throw new Error(`--conv takes one of ${Object.keys(WINOGRAD_TILE).join(', ')}, not ${args.conv}`);
const steps = Number(args.steps);
const repeats = Math.max(1, Number(args.repeats));
const warmup = Number(args.warmup);

const info = await initEngine({ log: !args.json });
if (args.isa !== undefined && args.isa !== 'avx2' && args.isa !== 'avx512') throw new Error(`--isa takes avx2 or avx512, not ${args.isa}`);
const addon = info.choice === 'native' ? loadNativeAddon().addon : null;
if (addon) {
  if (args.conv) addon.setWinograd(WINOGRAD_TILE[args.conv as ConvAlgorithm]);
  if (args.isa && addon.setAvx512(args.isa === 'avx512') !== (args.isa === 'avx512')) throw new Error('--isa avx512: this CPU has no AVX-512F');
}
const conv = addon ? convAlgorithm(addon.getWinograd()) : undefined;
const model = UNet.create(REFERENCE_UNET, 1);
const { trainImagesPerSecond, predictImagesPerSecond } = await referenceThroughput(model, { steps, warmup });
const normed = UNet.create({ ...REFERENCE_UNET, norm: 'batch' }, 1);
const withBatchNorm = await referenceThroughput(normed, { steps, warmup });
const batchNorm: Record<string, unknown> = {
  trainImagesPerSecond: round(withBatchNorm.trainImagesPerSecond),
  predictImagesPerSecond: round(withBatchNorm.predictImagesPerSecond),
  trainRatioVsPlain: round(withBatchNorm.trainImagesPerSecond / trainImagesPerSecond, 3),
  predictRatioVsPlain: round(withBatchNorm.predictImagesPerSecond / predictImagesPerSecond, 3),
};

// One 512x512 proposal from a raw 16-bit image: normalise, tile, predict, threshold.
const raw = syntheticNuclei({ width: 512, height: 512, seed: 3 }).image;
// The median of three timed runs after one that warms up.
const medianMs = async (run: () => Promise<unknown>) => {
  await run();
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[1];
};
const tile512Ms = await medianMs(async () => classMap(await predictImage(model, prepareImage(raw), { tile: 256, overlap: 32, batchSize: 4 })));
// The same image as proposals make it by default (one whole-image pass), without and with
// test-time augmentation (the eight symmetries averaged).
const proposal512Ms = await medianMs(async () => classMap(await predictImage(model, prepareImage(raw))));
const proposal512TtaMs = await medianMs(async () => classMap(await predictImage(model, prepareImage(raw), { tta: true })));

// Throughput as a share of the machine: the convolutions' operations per image as direct
// convolution counts them (training about 3x a forward pass). Winograd's 3x3 kernels do fewer
// multiplications than that count, so the share can pass 1: it reads as work done, not as
// arithmetic units kept busy.
const cpu = describeCpu(info.threads, info.choice === 'native' && args.isa !== 'avx2');
const forwardFlops = convolutionFlops(REFERENCE_UNET, REFERENCE_INPUT);
const predictGflops = (predictImagesPerSecond * forwardFlops) / 1e9;
const trainGflops = (trainImagesPerSecond * 3 * forwardFlops) / 1e9;

const result: Record<string, unknown> = {
  backend: info.choice,
  threads: info.threads,
  conv,
  cpu,
  forwardGflopPerImage: round(forwardFlops / 1e9, 3),
  trainGflops: round(trainGflops),
  predictGflops: round(predictGflops),
  trainShareOfPeak: round(trainGflops / cpu.peakGflops, 3),
  predictShareOfPeak: round(predictGflops / cpu.peakGflops, 3),
  parameters: model.parameterCount(),
  batch: REFERENCE_BATCH,
  inputSize: REFERENCE_INPUT,
  trainImagesPerSecond: round(trainImagesPerSecond),
  predictImagesPerSecond: round(predictImagesPerSecond),
  tile512Ms: round(tile512Ms),
  proposal512Ms: round(proposal512Ms),
  proposal512TtaMs: round(proposal512TtaMs),
  batchNorm,
  peakRssMB: round(process.resourceUsage().maxRSS / 1024),
};
if (args.peer) {
  // Alternating pairs: whatever else slows the machine slows the next pair alike, not one side.
  // Both networks: the reference U-Net, and the one maskloop trains (batch normalisation).
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'torch_peer.py');
  const networks = [
    { key: 'plain', model, norm: 'none', first: { trainImagesPerSecond, predictImagesPerSecond } },
    { key: 'batchNorm', model: normed, norm: 'batch', first: withBatchNorm },
  ] as const;
  const ratios: Record<string, { train: number[]; predict: number[] }> = { plain: { train: [], predict: [] }, batchNorm: { train: [], predict: [] } };
  const peers: Record<string, unknown> = {};
  pairs: for (let r = 0; r < repeats; r++) {
    for (const net of networks) {
      const own = r === 0 ? net.first : await referenceThroughput(net.model, { steps, warmup });
      const peer = runPeer(script, info.threads, net.norm);
      if ('error' in peer) {
        peers.error = peer.error;
        break pairs;
      }
      peers[net.key] = peer;
      ratios[net.key].train.push(own.trainImagesPerSecond / Number(peer.trainImagesPerSecond));
      ratios[net.key].predict.push(own.predictImagesPerSecond / Number(peer.predictImagesPerSecond));
    }
  }
  result.peer = peers.error ? { error: peers.error } : peers.plain;
  if (ratios.plain.train.length) {
    result.trainRatioVsPeer = round(median(ratios.plain.train), 3);
    result.predictRatioVsPeer = round(median(ratios.plain.predict), 3);
    result.ratiosVsPeer = { train: ratios.plain.train.map((v) => round(v, 3)), predict: ratios.plain.predict.map((v) => round(v, 3)) };
  }
  if (ratios.batchNorm.train.length) {
    batchNorm.peer = peers.batchNorm;
    batchNorm.trainRatioVsPeer = round(median(ratios.batchNorm.train), 3);
    batchNorm.predictRatioVsPeer = round(median(ratios.batchNorm.predict), 3);
    batchNorm.ratiosVsPeer = { train: ratios.batchNorm.train.map((v) => round(v, 3)), predict: ratios.batchNorm.predict.map((v) => round(v, 3)) };
  }
}
normed.dispose();
model.dispose();

if (args.prelabel) result.prelabel = runPrelabel(args.prelabel);

if (!args.json) {
  const rows: Array<[string, string]> = [
    ['backend', `${info.choice} (${info.threads} threads${conv ? `, ${conv} 3x3 convolutions` : ''})`],
    ['CPU', `${cpu.model} (${cpu.vendor}${cpu.family !== undefined ? ` family ${cpu.family} model ${cpu.modelNumber}` : ''}), ${cpu.vectors}, ${cpu.cores} cores at ${cpu.ghz.toFixed(2)} GHz`],
    ['nominal peak (GFLOP/s, FP32)', `${round(cpu.peakGflops)} (${cpu.flopsPerCycle} FLOP/cycle/core)`],
    ['train GFLOP/s, direct-convolution count (share of peak)', `${round(trainGflops)} (${round(trainGflops / cpu.peakGflops, 3)})`],
    ['predict GFLOP/s, direct-convolution count (share of peak)', `${round(predictGflops)} (${round(predictGflops / cpu.peakGflops, 3)})`],
    ['parameters', String(result.parameters)],
    ['train images/s (batch 8, 128x128)', String(result.trainImagesPerSecond)],
    ['predict images/s (batch 8, 128x128)', String(result.predictImagesPerSecond)],
    ['512x512 proposal, end to end, 256² tiles (ms)', String(result.tile512Ms)],
    ['512x512 proposal, end to end, as proposals run (ms)', String(result.proposal512Ms)],
    ['the same with test-time augmentation (ms)', String(result.proposal512TtaMs)],
    ['with batch norm: train images/s (ratio)', `${batchNorm.trainImagesPerSecond} (${batchNorm.trainRatioVsPlain})`],
    ['with batch norm: predict images/s (ratio)', `${batchNorm.predictImagesPerSecond} (${batchNorm.predictRatioVsPlain})`],
    ['peak RSS (MB)', String(result.peakRssMB)],
  ];
  // "median (each pair's)" with --repeats, else the one ratio.
  const ratioRow = (label: string, ratio: unknown, spread: number[]): [string, string] =>
    repeats > 1 ? [`${label} (median of ${repeats})`, `${ratio} (${spread.join(', ')})`] : [label, String(ratio)];
  if (result.peer && typeof result.peer === 'object' && !('error' in result.peer)) {
    const p = result.peer as Record<string, number | string>;
    const spread = result.ratiosVsPeer as { train: number[]; predict: number[] };
    rows.push(
      [`peer: ${p.peer} train images/s`, String(round(p.trainImagesPerSecond as number))],
      [`peer: predict images/s`, String(round(p.predictImagesPerSecond as number))],
      ratioRow('train ratio vs peer', result.trainRatioVsPeer, spread.train),
      ratioRow('predict ratio vs peer', result.predictRatioVsPeer, spread.predict),
    );
  } else if (result.peer) {
    rows.push(['peer', `not measured: ${(result.peer as { error: string }).error}`]);
  }
  if (batchNorm.ratiosVsPeer) {
    const spread = batchNorm.ratiosVsPeer as { train: number[]; predict: number[] };
    rows.push(
      ratioRow('with batch norm: train ratio vs peer', batchNorm.trainRatioVsPeer, spread.train),
      ratioRow('with batch norm: predict ratio vs peer', batchNorm.predictRatioVsPeer, spread.predict),
    );
  }
  if (result.prelabel) {
    const p = result.prelabel as Record<string, number | string>;
    rows.push(['error' in p ? 'prelabel' : `prelabel ${p.folder}`, 'error' in p ? `not measured: ${p.error}` : `${p.images} images, ${p.megapixelsPerSecond} MP/s, peak RSS ${p.peakRssMB} MB`]);
  }
  const w = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
}
console.log(JSON.stringify(result));

function runPeer(script: string, threads: number, norm: 'none' | 'batch'): Record<string, number | string> | { error: string } {
  if (!fs.existsSync(args.python)) return { error: `${args.python} not found (install Debian's python3-torch)` };
  const run = spawnSync(args.python, [script, '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup), '--norm', norm], { encoding: 'utf8' });
  if (run.status !== 0) return { error: (run.stderr || `exit ${run.status}`).trim().split('\n').pop() as string };
  const last = run.stdout.trim().split('\n').pop() as string;
  return JSON.parse(last);
}

/** `maskloop prelabel` of a real folder, timed in a child process so that its peak memory is its own. */
function runPrelabel(folder: string): Record<string, number | string> | { error: string } {
  const tool = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'prelabel-speed.ts');
  const tsx = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', '.bin', 'tsx');
  const run = spawnSync(tsx, [tool, folder], { encoding: 'utf8', env: { ...process.env, MASKLOOP_THREADS: String(info.threads) } });
  if (run.status !== 0) return { error: (run.stderr || `exit ${run.status}`).trim().split('\n').pop() as string };
  return JSON.parse(run.stdout.trim().split('\n').pop() as string);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
