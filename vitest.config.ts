import { defineConfig } from 'vitest/config';

// One runner for every tier. Engine tests are CPU-heavy and the machine has two cores, so
// files run in forked processes (the native addon and tfjs' global engine stay per-process)
// and at most two at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
