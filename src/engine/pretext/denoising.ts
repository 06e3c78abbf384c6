/**
 * Blind-spot denoising, after Noise2Void (Krull et al. 2019): a few scattered pixels of each
 * patch are replaced by a random neighbour's value and the whole U-Net predicts what was there.
 * Noise independent from pixel to pixel cannot be predicted from the neighbours, so the network
 * learns the signal: the structures of the images, whatever their noise (EM, low-light
 * fluorescence). Only the replaced pixels are scored.
 */
import { reconstructionBatch, reconstructionHeadShapes, scoredReconstructionLoss, type PretextTask } from './task';

/** Share of pixels replaced per patch (Noise2Void uses about 0.2% to 2%), and the neighbourhood radius. */
export const BLIND_SPOT_SHARE = 0.02;
const NEIGHBOURHOOD = 2;

export const denoising: PretextTask = {
  name: 'denoising',
  summary: 'predict scattered pixels from their neighbours (Noise2Void blind-spot denoising)',
  trains: 'unet',
  appliesTo: () => true,
  headShapes: (config) => reconstructionHeadShapes('denoising', config),
  makeBatch(patches, size, channels, rng) {
    const n = patches.length;
    const inputs = new Float32Array(n * size * size * channels);
    const targets = new Float32Array(n * size * size * channels);
    const blind = new Float32Array(n * size * size);
    const count = Math.max(1, Math.round(size * size * BLIND_SPOT_SHARE));
    patches.forEach((p, i) => {
      targets.set(p, i * p.length);
      inputs.set(p, i * p.length);
      for (let k = 0; k < count; k++) {
        const x = rng.int(size);
        const y = rng.int(size);
        // A neighbour other than the pixel itself, inside the patch.
        let nx = x;
        let ny = y;
        while (nx === x && ny === y) {
          nx = Math.min(size - 1, Math.max(0, x + rng.int(2 * NEIGHBOURHOOD + 1) - NEIGHBOURHOOD));
          ny = Math.min(size - 1, Math.max(0, y + rng.int(2 * NEIGHBOURHOOD + 1) - NEIGHBOURHOOD));
        }
        const at = i * size * size + y * size + x;
        blind[at] = 1;
        for (let c = 0; c < channels; c++) inputs[at * channels + c] = p[(ny * size + nx) * channels + c];
      }
    });
    return reconstructionBatch(inputs, targets, blind, n, size, channels);
  },
  loss: (model, head, batch) => scoredReconstructionLoss('denoising', model, head, batch),
};
