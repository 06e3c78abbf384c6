/**
 * Masked-image modelling: random square blocks are hidden and the whole U-Net reconstructs them;
 * the loss counts only hidden pixels, so copying the input earns nothing.
 * - 'inpainting' (Pathak et al. 2016; MAE-style): 8 px blocks, 40% hidden.
 * - 'masked' (after SparK, for convolutional networks): 16 px blocks, 60% hidden. A block is two
 *   bottleneck cells of the default four-level U-Net (8 px each) wide, so every hole hides whole
 *   bottleneck positions; an 8 px hole at 40% can mostly be filled by interpolating its visible
 *   neighbours, which teaches little about the structures around it.
 */
import { reconstructionBatch, reconstructionHeadShapes, scoredReconstructionLoss, type PretextTask } from './task';

/** A masked-modelling task hiding a share `ratio` of `block` x `block` blocks. */
function blockMasking(name: string, summary: string, block: number, ratio: number): PretextTask {
  return {
    name,
    summary,
    trains: 'unet',
    appliesTo: () => true,
    headShapes: (config) => reconstructionHeadShapes(name, config),
    makeBatch(patches, size, channels, rng) {
      const n = patches.length;
      const inputs = new Float32Array(n * size * size * channels);
      const targets = new Float32Array(n * size * size * channels);
      const hidden = new Float32Array(n * size * size);
      const blocks = Math.ceil(size / block);
      patches.forEach((p, i) => {
        targets.set(p, i * p.length);
        inputs.set(p, i * p.length);
        for (let by = 0; by < blocks; by++) {
          for (let bx = 0; bx < blocks; bx++) {
            if (rng.next() >= ratio) continue;
            for (let y = by * block; y < Math.min(size, (by + 1) * block); y++) {
              for (let x = bx * block; x < Math.min(size, (bx + 1) * block); x++) {
                const px = i * size * size + y * size + x;
                hidden[px] = 1;
                // Hidden pixels read as 0 (the normalised background level), not as noise, so
                // the network cannot recover them from per-pixel statistics.
                for (let c = 0; c < channels; c++) inputs[px * channels + c] = 0;
              }
            }
          }
        }
      });
      return reconstructionBatch(inputs, targets, hidden, n, size, channels);
    },
    loss: (model, head, batch) => scoredReconstructionLoss(name, model, head, batch),
  };
}

export const INPAINT_BLOCK = 8;
export const INPAINT_RATIO = 0.4;
export const inpainting = blockMasking('inpainting', 'reconstruct randomly hidden 8x8 blocks (masked-image modelling)', INPAINT_BLOCK, INPAINT_RATIO);

/** Two bottleneck cells of the default U-Net, and SparK's share of hidden blocks. */
export const MASKED_BLOCK = 16;
export const MASKED_RATIO = 0.6;
export const masked = blockMasking('masked', 'reconstruct 60% of the image hidden in 16x16 blocks (SparK-style masked modelling)', MASKED_BLOCK, MASKED_RATIO);
