/** The project store: one folder per project, project.sqlite plus cache/ (DESIGN.md, "A project on disk"). */
export { createProject, openProject, Project, DATABASE_FILE, CACHE_SUBDIRS, type OpenOptions } from './project';
export { StoreError, type StoreErrorCode } from './errors';
export { BUSY_TIMEOUT_MS } from './db';
export { migrate, schemaVersion, type MigrationResult } from './migrate';
export { MIGRATIONS, SCHEMA_VERSION, type Migration } from './migrations';
export { fingerprintFile } from './files';
export { SETTINGS, type SettingKey, type Settings } from './settings';
export type { LabelArray, LabelDtype, LabelMask } from './codec';
export * from './types';
