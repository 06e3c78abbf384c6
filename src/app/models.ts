/** Models: the list with each model's val verdict, promotion by hand and rollback. */
import type { ModelSummary } from '../shared/types';
import type { ModelRecord } from '../store';
import type { AppContext, DomainHandlers } from './context';
import { argumentError } from './errors';

function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export function modelSummary(m: ModelRecord): ModelSummary {
  const metrics = m.valMetrics ?? {};
  const candidates = Array.isArray(metrics.candidates)
    ? metrics.candidates.flatMap((c) => (c && typeof c === 'object' && !Array.isArray(c) && typeof c.name === 'string' && typeof c.dice === 'number'
      ? [{ name: c.name, dice: c.dice, ...(typeof c.f1 === 'number' ? { f1: c.f1 } : {}), ...(typeof c.stoppedAt === 'number' ? { stoppedAt: c.stoppedAt } : {}) }]
      : []))
    : [];
  return {
    id: m.id, kind: m.kind, parentId: m.parentId, pretextInit: m.pretextInit, createdAt: m.createdAt, promoted: m.promoted,
    valDice: numberOrNull(metrics.dice), incumbentDice: numberOrNull(metrics.incumbentDice),
    valF1: numberOrNull(metrics.f1), incumbentF1: numberOrNull(metrics.incumbentF1), incumbentId: numberOrNull(metrics.incumbentId),
    trainImages: numberOrNull(metrics.trainImages), valImages: numberOrNull(metrics.valImages), candidates, semiSupervised: metrics.semiSupervised === true,
    decision: typeof metrics.decision === 'string' ? metrics.decision : null,
  };
}

export function modelHandlers(ctx: AppContext): DomainHandlers<'models:list' | 'models:promote' | 'models:rollback'> {
  return {
    'models:list': () => ctx.requireProject().listModels().sort((a, b) => b.createdAt - a.createdAt || b.id - a.id).map(modelSummary),
    'models:promote': ({ modelId }) => {
      const project = ctx.requireProject();
      const model = project.getModel(modelId);
      if (!model) throw argumentError(`model ${modelId} is not in this project`);
      if (model.kind !== 'segmentation') throw argumentError(`model ${modelId} is a ${model.kind} checkpoint, not a segmentation model`);
      const promoted = project.promoteModel(modelId, { reason: 'promoted in the app' });
      ctx.changed(['models']);
      return modelSummary(promoted);
    },
    'models:rollback': () => {
      const rolled = ctx.requireProject().rollbackModel();
      ctx.changed(['models']);
      return modelSummary(rolled);
    },
  };
}
