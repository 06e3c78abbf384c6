/** What a segmentation network predicts, shared by training and inference. */
import { MAX_TARGET_CLASSES } from '../shared/types';

/**
 * What the network predicts. 'semantic': K foreground classes (labels 1..K; K = 1 is a single
 * sigmoid channel). 'instance': touching objects are separated by predicting background (0),
 * object interior (1) and object boundary (2); instances are the connected interiors grown back
 * over their boundaries (src/imaging/instances).
 */
export type SegmentationTarget = { kind: 'semantic'; classes: number } | { kind: 'instance' };

export function outputChannels(target: SegmentationTarget): number {
  if (target.kind === 'instance') return 3;
  if (!Number.isInteger(target.classes) || target.classes < 1 || target.classes > MAX_TARGET_CLASSES) {
    throw new Error(`semantic target needs 1..${MAX_TARGET_CLASSES} classes, got ${target.classes}`);
  }
  return target.classes === 1 ? 1 : target.classes + 1;
}
