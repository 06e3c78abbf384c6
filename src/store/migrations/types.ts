import type { Db } from '../db';

/**
 * One schema step. `version` equals the number in the file name (NNNN-name.ts); `up` runs inside
 * the runner's transaction, so it must not open its own or change journal pragmas.
 */
export interface Migration {
  version: number;
  name: string;
  up(db: Db): void;
}
