/**
 * The speed and memory of `maskloop prelabel` on a real folder, as a user runs it: decode, normalise,
 * predict, post-process and write every mask, with a model of the default architecture. The
 * weights are fresh (their values do not change the work), so no labels are needed.
 *
 *   npx tsx tools/prelabel-speed.ts <image-folder> [--target semantic|instance]
 *
 * Prints one JSON line: images, megapixels per second (prelabel's own figure), seconds, and this
 * process's peak resident memory. `npm run bench -- --prelabel <folder>` runs it in a process of its
 * own, so that the peak is prelabel's and not the bench's.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { initEngine } from '../src/engine/backend';
import { DEFAULT_ARCH, REFERENCE_UNET, UNet } from '../src/engine/model/unet';
import { outputChannels } from '../src/engine/target';
import { saveSegmentationModel } from '../src/engine/train/finetune';
import { prelabel } from '../src/jobs/workflows/prelabel';
import { recordTarget } from '../src/shared/target';
import { createProject } from '../src/store';
import { parseTargetOption } from '../src/cli/projectData';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { target: { type: 'string', default: 'semantic' } } });
const folder = positionals[0];
if (!folder) throw new Error('usage: prelabel-speed.ts <image-folder> [--target semantic|instance]');
const target = parseTargetOption(values.target as string);

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'maskloop-prelabel-speed-'));
try {
  await initEngine({ log: false });
  const project = createProject(path.join(work, 'project'), { name: 'prelabel speed' });
  try {
    const config = { ...REFERENCE_UNET, ...DEFAULT_ARCH, outChannels: outputChannels(target) };
    const model = UNet.create(config, 1);
    const file = project.cachePath('checkpoints', 'untrained.ckpt');
    await saveSegmentationModel(file, model, { kind: 'segmentation', config, target, init: 'scratch', step: 0, totalSteps: 0, seed: 1, patchSize: 256, losses: [], trainedOn: 0 });
    model.dispose();
    const record = project.addModel({ kind: 'segmentation', checkpointPath: file, config: { ...DEFAULT_ARCH, target: recordTarget(target) } });
    project.promoteModel(record.id, { reason: 'speed measurement' });
    const result = await prelabel(project, { folder, out: path.join(work, 'masks') });
    console.log(JSON.stringify({
      folder: path.resolve(folder),
      target: values.target,
      images: result.images,
      failed: result.failed.length,
      megapixelsPerSecond: Math.round(result.megapixelsPerSecond * 1000) / 1000,
      seconds: Math.round(result.seconds * 10) / 10,
      peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    }));
  } finally {
    project.close();
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
