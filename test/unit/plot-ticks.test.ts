import { describe, expect, it } from 'vitest';
import { axisTicks } from '../../renderer/src/lib/plot';

describe('axisTicks', () => {
  it('writes each tick with the decimals its step needs, so no two ticks read the same', () => {
    for (const [a, b] of [[0.0101, 0.0135], [0.2, 0.9], [0.5, 0.52], [0, 1], [3, 1200], [0.00012, 0.00019], [1e5, 4e5]]) {
      const ticks = axisTicks(a, b);
      expect(ticks.length, `${a}..${b}`).toBeGreaterThanOrEqual(2);
      expect(new Set(ticks.map((t) => t.text)).size, `${a}..${b}: ${ticks.map((t) => t.text).join(' ')}`).toBe(ticks.length);
      for (const t of ticks) {
        expect(t.value).toBeGreaterThanOrEqual(a - 1e-12);
        expect(t.value).toBeLessThanOrEqual(b + 1e-12);
      }
    }
    expect(axisTicks(0.0101, 0.0135).map((t) => t.text)).toEqual(['0.011', '0.012', '0.013']);
    expect(axisTicks(0, 1).map((t) => t.text)).toEqual(['0.0', '0.2', '0.4', '0.6', '0.8', '1.0']);
  });

  it('integer axes (model ids, labeled images) tick only whole numbers', () => {
    expect(axisTicks(1, 2, 6, true).map((t) => t.text)).toEqual(['1', '2']);
    expect(axisTicks(1, 40, 6, true).map((t) => t.text)).toEqual(['10', '20', '30', '40']);
  });

  it('one tick for a flat series, none for no data', () => {
    expect(axisTicks(0.5, 0.5)).toEqual([{ value: 0.5, text: '0.5' }]);
    expect(axisTicks(NaN, NaN)).toEqual([]);
  });
});
