import { defineConfig } from 'vitest/config';

// One runner for every tier. Engine tests are CPU-heavy and the machine has two cores, so
// files run in forked processes (the native addon and tfjs' global engine stay per-process)
// and at most two at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    setupFiles: ['test/helpers/cache-per-file.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // Timeouts catch hangs, never slowness: a test doing real training on a busy 2-core machine
    // may take several times its quiet duration, so no default sits near any test's real length.
    testTimeout: 600_000,
    hookTimeout: 600_000,
    // The tier summary says which tiers could not run here (no Chromium, no data) and how to fix it.
    reporters: ['default', './test/tier-summary.ts'],
  },
});
