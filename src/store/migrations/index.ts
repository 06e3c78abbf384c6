import { migration as m0001 } from './0001-images-labels';
import { migration as m0002 } from './0002-models-predictions';
import { migration as m0003 } from './0003-runs-events';
import { migration as m0004 } from './0004-reject-events';
import type { Migration } from './types';

export type { Migration } from './types';

/**
 * Every migration, in order. Listed by hand (a bundler cannot glob); a test checks this list
 * against the NNNN-name.ts files in this folder so a forgotten entry fails CI.
 */
export const MIGRATIONS: readonly Migration[] = [m0001, m0002, m0003, m0004];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;
