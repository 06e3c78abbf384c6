/** The folders a request names: resolved, checked, and kept inside the project where they must be. */
import fs from 'node:fs';
import path from 'node:path';
import type { Project } from '../store';
import { argumentError } from './errors';

/** Folders are what the user points at; each is resolved and must exist. */
export function existingFolder(dir: string, what: string): string {
  const resolved = path.resolve(dir);
  const stat = fs.statSync(resolved, { throwIfNoEntry: false });
  if (!stat?.isDirectory()) throw argumentError(`${what} ${resolved} is not a folder`);
  return resolved;
}

/** A path inside the project folder; anything resolving outside it (.., symlinks) is refused. */
export function insideProject(project: Project, ...parts: string[]): string {
  const root = fs.realpathSync(project.dir);
  const target = path.resolve(root, ...parts);
  if (target !== root && !target.startsWith(root + path.sep)) throw argumentError(`${parts.join('/')} is outside the project folder`);
  let existing = target;
  while (!fs.existsSync(existing)) existing = path.dirname(existing);
  const real = fs.realpathSync(existing);
  if (real !== root && !real.startsWith(root + path.sep)) throw argumentError(`${parts.join('/')} leads outside the project folder`);
  return target;
}
