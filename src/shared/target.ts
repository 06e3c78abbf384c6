/**
 * The segmentation target: what a network predicts, in one home for every layer. Its text form
 * ('semantic', 'semantic:K', 'instance') is what the command line and the IPC contract take; runs
 * and models record it as JSON.
 */
import { MAX_TARGET_CLASSES } from './types';

/**
 * 'semantic': K foreground classes (labels 1..K; K = 1 is a single sigmoid channel). 'instance':
 * touching objects are separated by predicting background (0), object interior (1) and object
 * boundary (2); instances are the connected interiors grown back over their boundaries.
 */
export type SegmentationTarget = { kind: 'semantic'; classes: number } | { kind: 'instance' };

/** The target a project trains when nothing says otherwise: one foreground class. */
export const DEFAULT_TARGET: SegmentationTarget = { kind: 'semantic', classes: 1 };

/** The text forms parseTarget accepts. */
export const TARGET_PATTERN = /^(?:semantic(?::(\d+))?|instance)$/;

/** 'semantic', 'semantic:K' (1 ≤ K ≤ MAX_TARGET_CLASSES) or 'instance'; anything else throws, saying what is accepted. */
export function parseTarget(text: string): SegmentationTarget {
  const m = TARGET_PATTERN.exec(text);
  if (!m) throw new Error(`a target is 'semantic', 'semantic:<classes>' or 'instance', not '${text}'`);
  if (text === 'instance') return { kind: 'instance' };
  const classes = m[1] === undefined ? 1 : Number(m[1]);
  if (classes < 1 || classes > MAX_TARGET_CLASSES) throw new Error(`a semantic target has 1 to ${MAX_TARGET_CLASSES} classes, not ${classes}`);
  return { kind: 'semantic', classes };
}

/** The text form of a target (parseTarget's inverse). */
export function formatTarget(target: SegmentationTarget): string {
  if (target.kind === 'instance') return 'instance';
  return target.classes === 1 ? 'semantic' : `semantic:${target.classes}`;
}

/** How runs and models record a target. */
export function recordTarget(target: SegmentationTarget): string {
  return JSON.stringify(target);
}

/** A target as a run or model recorded it (recordTarget); DEFAULT_TARGET where none was recorded. */
export function recordedTarget(recorded: unknown): SegmentationTarget {
  if (typeof recorded !== 'string') return DEFAULT_TARGET;
  const value = JSON.parse(recorded) as { kind?: unknown; classes?: unknown };
  return parseTarget(value.kind === 'instance' ? 'instance' : `semantic:${Number(value.classes ?? 1)}`);
}

export function sameTarget(a: SegmentationTarget, b: SegmentationTarget): boolean {
  return formatTarget(a) === formatTarget(b);
}
