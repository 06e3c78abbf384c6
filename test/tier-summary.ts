/**
 * A last line for `npm test` saying which tiers could not run here and why, with the one command
 * that installs what is missing: a skipped tier must never read as a passed one.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Reporter } from 'vitest/reporters';
import { CHROMIUM } from './e2e/chromium';
import { defaultDataRoot } from '../src/imaging/datasets';

/** Why each tier that needs something outside npm cannot run, with the fix; empty when all can. */
export function unavailableTiers(): string[] {
  const missing: string[] = [];
  if (!existsSync(CHROMIUM)) {
    missing.push(`browser e2e tier SKIPPED: ${CHROMIUM} is not installed; install it with \`sudo apt-get install chromium\` (Debian/Ubuntu), then run npm test again`);
  }
  const data = defaultDataRoot();
  if (!existsSync(path.join(data, 'manifest.json'))) {
    missing.push(`real-data integration tests SKIPPED: no ${path.join(data, 'manifest.json')}; put the microscopy sets there or set MASKLOOP_DATA to their folder`);
  }
  return missing;
}

export default class TierSummary implements Reporter {
  onFinished(): void {
    const missing = unavailableTiers();
    if (missing.length === 0) {
      console.log(`\nmaskloop: every test tier can run here (Chromium at ${CHROMIUM}, data at ${defaultDataRoot()})`);
      return;
    }
    for (const line of missing) console.log(`\nmaskloop: ${line}`);
  }
}
