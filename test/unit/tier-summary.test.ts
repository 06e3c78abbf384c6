import { afterEach, describe, expect, it, vi } from 'vitest';
import { unavailableTiers } from '../tier-summary';

afterEach(() => vi.unstubAllEnvs());

describe('the test run says which tiers could not run', () => {
  it('names a missing data folder and how to provide it', () => {
    vi.stubEnv('MASKLOOP_DATA', '/nonexistent/maskloop-data');
    const lines = unavailableTiers();
    expect(lines.some((l) => l.startsWith('real-data integration tests SKIPPED') && l.includes('MASKLOOP_DATA'))).toBe(true);
  });
});
