/**
 * What the command line needs around a project: opening it from --project, --target and --shard.
 * Decoding images and labels for the engine lives in src/jobs/data (shared with the app).
 */
import path from 'node:path';
import type { SegmentationTarget } from '../engine/target';
import { openProject, type Project } from '../store';
import { UsageError, type CommandContext, type OptionSpec } from './command';
import { parseTarget } from '../shared/target';

export const PROJECT_OPTION: Record<string, OptionSpec> = {
  project: { type: 'string', short: 'p', default: '.', description: 'project folder', valueName: 'dir' },
};

export function openFromOptions(values: CommandContext['values']): Project {
  const dir = path.resolve(String(values.project ?? '.'));
  return openProject(dir);
}

/** --target (parseTarget's text form); a bad one is a usage error. */
export function parseTargetOption(value: unknown): SegmentationTarget {
  try {
    return parseTarget(String(value ?? 'semantic'));
  } catch (err) {
    throw new UsageError(`--target: ${(err as Error).message}`);
  }
}

/** `--shard i/N`, else a SLURM array or a Kubernetes indexed Job, else the whole set. */
export function resolveShard(value: unknown, env: NodeJS.ProcessEnv = process.env): { index: number; count: number } {
  if (typeof value === 'string') {
    const m = /^(\d+)\/(\d+)$/.exec(value);
    if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new UsageError(`--shard must be i/N with 0 ≤ i < N, got '${value}'`);
    return { index: Number(m[1]), count: Number(m[2]) };
  }
  if (env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_COUNT !== undefined) {
    const min = Number(env.SLURM_ARRAY_TASK_MIN ?? 0);
    return { index: Number(env.SLURM_ARRAY_TASK_ID) - min, count: Number(env.SLURM_ARRAY_TASK_COUNT) };
  }
  if (env.JOB_COMPLETION_INDEX !== undefined && env.MASKLOOP_SHARD_COUNT !== undefined) {
    return { index: Number(env.JOB_COMPLETION_INDEX), count: Number(env.MASKLOOP_SHARD_COUNT) };
  }
  return { index: 0, count: 1 };
}
