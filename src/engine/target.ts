/** The network's outputs for a segmentation target (src/shared/target), shared by training and inference. */
import { MAX_TARGET_CLASSES } from '../shared/types';
import type { SegmentationTarget } from '../shared/target';

export type { SegmentationTarget };

export function outputChannels(target: SegmentationTarget): number {
  if (target.kind === 'instance') return 3;
  if (!Number.isInteger(target.classes) || target.classes < 1 || target.classes > MAX_TARGET_CLASSES) {
    throw new Error(`semantic target needs 1..${MAX_TARGET_CLASSES} classes, got ${target.classes}`);
  }
  return target.classes === 1 ? 1 : target.classes + 1;
}
