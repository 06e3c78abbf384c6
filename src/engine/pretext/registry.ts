/** Pretext tasks by name: the one list the CLI, the pretraining loop and the evaluation read. */
import { contrastive } from './contrastive';
import { crossChannel } from './crossChannel';
import { denoising } from './denoising';
import { inpainting, masked } from './inpainting';
import { jigsaw } from './jigsaw';
import { restoration } from './restoration';
import { rotation } from './rotation';
import type { PretextTask } from './task';

const tasks = new Map<string, PretextTask>();

export function registerPretextTask(task: PretextTask): void {
  if (tasks.has(task.name)) throw new Error(`pretext task '${task.name}' is already registered`);
  tasks.set(task.name, task);
}

export function pretextTask(name: string): PretextTask {
  const task = tasks.get(name);
  if (!task) throw new Error(`unknown pretext task '${name}' (known: ${[...tasks.keys()].join(', ')})`);
  return task;
}

export function pretextTaskNames(): string[] {
  return [...tasks.keys()];
}

for (const t of [rotation, jigsaw, inpainting, masked, restoration, denoising, contrastive, crossChannel]) registerPretextTask(t);
