/** Projects: create, open, close, the recent list, settings, export, and the folder browser. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { retrainPolicyState } from '../jobs/workflows/trainModel';
import type { FolderListing, ProjectSummary } from '../shared/types';
import { createProject, DATABASE_FILE, openProject, type Project } from '../store';
import type { AppContext, DomainHandlers } from './context';
import { argumentError } from './errors';
import { resumableRuns } from './jobs';
import { modelSummary } from './models';
import { existingFolder, insideProject } from './paths';

const IMAGE_EXTENSIONS = /\.(png|jpe?g|tiff?)$/i;

export function projectSummary(project: Project): ProjectSummary {
  const promoted = project.promotedModel();
  return {
    dir: project.dir, name: project.info.name, uuid: project.info.uuid, createdAt: project.info.createdAt,
    counts: project.countImages(), promotedModel: promoted ? modelSummary(promoted) : null, rollbackTo: project.rollbackTarget(), settings: project.getSettings(),
    retrain: retrainPolicyState(project), resumableRuns: resumableRuns(project),
  };
}

async function adopt(ctx: AppContext, project: Project): Promise<ProjectSummary> {
  try {
    await ctx.setProject(project);
  } catch (error) {
    await ctx.setProject(null).catch(() => undefined);
    throw error;
  }
  ctx.recent.remember(project.dir, project.info.name);
  ctx.changed(['images', 'labels', 'predictions', 'models', 'runs', 'settings']);
  return projectSummary(project);
}

/**
 * A class can be removed only while no label uses it: its pixels would otherwise stay in the
 * labels under a class nobody can see or name.
 */
async function refuseRemovingUsedClasses(ctx: AppContext, project: Project, keep: number): Promise<void> {
  if (keep >= project.getSetting('classNames').length) return;
  const using = await ctx.pixels.call('imagesUsingClassesAbove', keep);
  if (using.length) {
    throw argumentError(`class ${keep + 1} is used in ${using.length} image(s) (${using.slice(0, 3).join(', ')}${using.length > 3 ? ', …' : ''}): erase it there first`);
  }
}

function listFolders(dir: string | undefined): FolderListing {
  const resolved = existingFolder(dir ?? os.homedir(), 'folder');
  const entries = fs.readdirSync(resolved, { withFileTypes: true });
  const folders = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => ({ name: e.name, path: path.join(resolved, e.name), isProject: fs.existsSync(path.join(resolved, e.name, DATABASE_FILE)) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const parent = path.dirname(resolved);
  return {
    dir: resolved, parent: parent === resolved ? null : parent, folders,
    imageFiles: entries.filter((e) => e.isFile() && IMAGE_EXTENSIONS.test(e.name)).length,
    isProject: fs.existsSync(path.join(resolved, DATABASE_FILE)),
  };
}

type ProjectChannel = 'app:info' | 'project:create' | 'project:open' | 'project:close' | 'project:recent' | 'project:summary'
  | 'project:setSettings' | 'project:export' | 'fs:listFolders' | 'dialog:chooseFolder';

export function projectHandlers(ctx: AppContext): DomainHandlers<ProjectChannel> {
  return {
    'app:info': () => ({
      version: ctx.options.version ?? '0.0.0', shell: ctx.options.shell, platform: process.platform,
      engineBackend: ctx.runner.backend, project: ctx.project ? projectSummary(ctx.project) : null,
    }),
    'project:create': ({ dir, name }) => {
      const root = path.resolve(dir);
      return adopt(ctx, createProject(root, { name: name ?? path.basename(root) }));
    },
    'project:open': ({ dir }) => adopt(ctx, openProject(existingFolder(dir, 'project folder'))),
    'project:close': async () => {
      await ctx.setProject(null);
      ctx.emit({ type: 'project-closed' });
      return null;
    },
    'project:recent': () => ctx.recent.list(),
    'project:summary': () => projectSummary(ctx.requireProject()),
    'project:setSettings': async (settings) => {
      const project = ctx.requireProject();
      if (settings.autoRetrainAfterLabels !== undefined) project.setSetting('autoRetrainAfterLabels', settings.autoRetrainAfterLabels);
      if (settings.defaultAuthor !== undefined) project.setSetting('defaultAuthor', settings.defaultAuthor);
      if (settings.classNames !== undefined) {
        await refuseRemovingUsedClasses(ctx, project, settings.classNames.length);
        project.setSetting('classNames', settings.classNames);
      }
      ctx.changed(['settings']);
      ctx.maybeRetrain(project);
      return project.getSettings();
    },
    'project:export': ({ format, what, folder }) => {
      const out = insideProject(ctx.requireProject(), 'exports', folder);
      return ctx.pixels.call('exportMasks', { out, format, what });
    },
    'fs:listFolders': ({ dir }) => listFolders(dir),
    'dialog:chooseFolder': async ({ title }) => {
      if (!ctx.options.chooseFolder) throw argumentError('there is no native folder dialog in the browser: use fs:listFolders');
      return ctx.options.chooseFolder(title);
    },
  };
}
