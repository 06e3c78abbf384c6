/** The one promotion rule the app, `maskloop train` and the simulated session share. */
import { describe, expect, it } from 'vitest';
import { PROMOTION_TOLERANCE, promotionDecision } from '../../src/engine/train/select';

const current = { score: { dice: 0.8 }, trainImages: 4, valImages: 1, id: 7 };

describe('promotionDecision', () => {
  it('promotes the first model, and any model that scores better', () => {
    expect(promotionDecision({ score: { dice: 0.1 }, trainImages: 1, valImages: 0 }, null)).toEqual({ promote: true, reason: 'promoted: the first model' });
    expect(promotionDecision({ score: { dice: 0.81 }, trainImages: 4, valImages: 1 }, current)).toMatchObject({ promote: true, reason: 'promoted: val Dice 0.810 vs 0.800 of model #7' });
    expect(promotionDecision({ score: { dice: 0.81 }, trainImages: 5, valImages: 2 }, current)).toMatchObject({ promote: true, reason: 'promoted: val Dice 0.810 vs 0.800 of model #7' });
  });

  it('a model that learned from more labels replaces the current one unless val says it is clearly worse', () => {
    expect(promotionDecision({ score: { dice: 0.8 - PROMOTION_TOLERANCE / 2 }, trainImages: 5, valImages: 1 }, current)).toMatchObject({ promote: true, reason: expect.stringMatching(/^promoted: learned from 5 labeled images instead of 4/) });
    expect(promotionDecision({ score: { dice: 0.8 - 2 * PROMOTION_TOLERANCE }, trainImages: 9, valImages: 2 }, current)).toMatchObject({ promote: false, reason: expect.stringMatching(/^kept model #7: .* more than 0.02 below, despite 5 more labeled image/) });
  });

  it('one that learned from no more labels must beat the current one; ties keep it', () => {
    expect(promotionDecision({ score: { dice: 0.8 }, trainImages: 4, valImages: 1 }, current)).toMatchObject({ promote: false, reason: expect.stringMatching(/^kept model #7: learned from no more labeled images, and .* does not beat it/) });
  });

  it('one that learned from no more labels cannot win on val images only it was fitted to', () => {
    // The new label went to val: the newcomer chose its weights and thresholds on it, the current model never saw it.
    const decision = promotionDecision({ score: { dice: 0.9 }, trainImages: 4, valImages: 2 }, current);
    expect(decision).toEqual({ promote: false, reason: 'kept model #7: learned from no more labeled images; val Dice 0.900 vs 0.800 of model #7 was fitted to 1 val image(s) model #7 never saw' });
  });

  it('instance targets compare F1, not Dice', () => {
    const instances = { score: { dice: 0.9, f1: 0.7 }, trainImages: 4, valImages: 1, id: 3 };
    expect(promotionDecision({ score: { dice: 0.95, f1: 0.69 }, trainImages: 4, valImages: 1 }, instances).promote).toBe(false);
    expect(promotionDecision({ score: { dice: 0.85, f1: 0.71 }, trainImages: 4, valImages: 1 }, instances)).toMatchObject({ promote: true, reason: expect.stringContaining('val F1 0.710 vs 0.700') });
  });
});
