/** Recently opened projects, kept in the app's state folder (not in any project). */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { DATABASE_FILE } from '../store';
import type { RecentProject } from '../shared/types';

const MAX_RECENT = 12;
const stored = z.array(z.object({ dir: z.string(), name: z.string(), openedAt: z.number() }));

export class RecentProjects {
  private readonly file: string;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, 'recent.json');
  }

  list(): RecentProject[] {
    let entries: z.infer<typeof stored> = [];
    try {
      entries = stored.parse(JSON.parse(fs.readFileSync(this.file, 'utf8')));
    } catch {
      // Missing or damaged: the list only saves a few clicks, so start afresh rather than fail.
    }
    return entries.map((e) => ({ ...e, exists: fs.existsSync(path.join(e.dir, DATABASE_FILE)) }));
  }

  remember(dir: string, name: string): void {
    const entries = this.list().filter((e) => e.dir !== dir).map(({ dir: d, name: n, openedAt }) => ({ dir: d, name: n, openedAt }));
    entries.unshift({ dir, name, openedAt: Date.now() });
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(entries.slice(0, MAX_RECENT), null, 1));
    fs.renameSync(tmp, this.file);
  }
}
