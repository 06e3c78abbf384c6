import { initEngine } from '../src/engine/backend';
import { loadDataset } from '../src/imaging/datasets';
import { prepareDataset, chooseLabeled, asLabeled, segmentationTarget } from '../src/engine/eval/setup';
import { finetune } from '../src/engine/train/finetune';
import { DEFAULT_ARCH } from '../src/engine/model/unet';
import { DEFAULT_SCHEDULE } from '../src/engine/train/optimizerState';
import { predictImage } from '../src/engine/infer/predict';
const name = process.argv[2] as any; const target = process.argv[3] as any; const k = +process.argv[4]; const subset = +process.argv[5];
await initEngine({ log: false });
const data = await loadDataset(name, {});
const ds = prepareDataset(data, target, { valImages: 8, testImages: 20 });
const seed = 1 + subset;
const train = chooseLabeled(ds.train, k, seed * 1009 + k);
const { model, meta } = await finetune({ images: asLabeled(train), target: segmentationTarget(ds.target), config: DEFAULT_ARCH, steps: 50, batchSize: 8, patchSize: 128, learningRate: 0.002, schedule: DEFAULT_SCHEDULE, seed, calibrate: false });
const ths = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
const rows = async (ims: any[], useGt: boolean) => {
  const acc = ths.map(() => ({ tp: 0, fp: 0, fn: 0, d: 0, n: 0 }));
  for (const im of ims) {
    const p = await predictImage(model, im.image);
    const c = p.channels;
    const gt = useGt ? im.gt.foreground : im.labels;
    ths.forEach((t, j) => {
      let tp = 0, fp = 0, fn = 0;
      for (let i = 0; i < gt.length; i++) {
        const fg = c === 1 ? p.probabilities[i] : 1 - p.probabilities[i * c];
        const m = fg >= t; const g = gt[i] > 0 && gt[i] !== 255;
        if (m && g) tp++; else if (m) fp++; else if (g) fn++;
      }
      const a = acc[j]; a.tp += tp; a.fp += fp; a.fn += fn; a.d += 2 * tp / (2 * tp + fp + fn); a.n++;
    });
  }
  return acc.map((a) => `${(a.d / a.n).toFixed(3)}(${(2 * a.tp / (2 * a.tp + a.fp + a.fn)).toFixed(3)})`).join(' ');
};
console.log(`${name} k=${k} subset=${subset} images ${train.map((t) => t.name).join(',')}`);
console.log('t      ', ths.join('        '));
console.log('train  ', await rows(train, false));
console.log('val    ', await rows(ds.val, true));
console.log('test   ', await rows(ds.test, true));
