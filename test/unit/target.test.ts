import { describe, expect, it } from 'vitest';
import { DEFAULT_TARGET, formatTarget, parseTarget, recordedTarget, recordTarget, sameTarget } from '../../src/shared/target';
import { outputChannels } from '../../src/engine/target';
import { MAX_TARGET_CLASSES } from '../../src/shared/types';

describe('the segmentation target', () => {
  it('has one text form, parsed and written back the same', () => {
    for (const text of ['semantic', 'semantic:3', 'instance', `semantic:${MAX_TARGET_CLASSES}`]) expect(formatTarget(parseTarget(text))).toBe(text);
    expect(parseTarget('semantic:1')).toEqual(DEFAULT_TARGET);
    expect(formatTarget(parseTarget('semantic:1'))).toBe('semantic');
  });

  it('refuses what the engine cannot train, saying what it accepts', () => {
    expect(() => parseTarget('semantic:0')).toThrow(/1 to 254 classes, not 0/);
    expect(() => parseTarget(`semantic:${MAX_TARGET_CLASSES + 1}`)).toThrow(/1 to 254 classes/);
    expect(() => parseTarget('objects')).toThrow(/'semantic', 'semantic:<classes>' or 'instance', not 'objects'/);
    expect(() => parseTarget('semantic:2.5')).toThrow();
    // Whatever parses, the network can be built for.
    expect(outputChannels(parseTarget(`semantic:${MAX_TARGET_CLASSES}`))).toBe(MAX_TARGET_CLASSES + 1);
  });

  it('is recorded by runs and models and read back, one foreground class where none was recorded', () => {
    for (const t of [parseTarget('instance'), parseTarget('semantic:4'), DEFAULT_TARGET]) expect(sameTarget(recordedTarget(recordTarget(t)), t)).toBe(true);
    // What trainModel wrote before this module existed.
    expect(recordedTarget('{"kind":"semantic","classes":2}')).toEqual({ kind: 'semantic', classes: 2 });
    expect(recordedTarget(undefined)).toEqual(DEFAULT_TARGET);
    expect(sameTarget(parseTarget('semantic'), parseTarget('semantic:2'))).toBe(false);
  });
});
