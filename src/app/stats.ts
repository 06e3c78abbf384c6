/** Statistics: the learning curve of the project's models and the annotation time saved. */
import type { ProgressStats } from '../shared/types';
import type { AppContext, DomainHandlers } from './context';
import { modelSummary } from './models';

export function statsHandlers(ctx: AppContext): DomainHandlers<'stats:progress'> {
  return {
    'stats:progress': (): ProgressStats => {
      const project = ctx.requireProject();
      const models = project.listModels({ kind: 'segmentation' }).sort((a, b) => a.createdAt - b.createdAt || a.id - b.id);
      const trainRuns = project.listRuns({ kind: 'train' });
      const curve = models.flatMap((m) => {
        const s = modelSummary(m);
        const recorded = trainRuns.find((r) => r.modelId === m.id)?.config.train;
        const trainImages = s.trainImages ?? (typeof recorded === 'number' && Number.isFinite(recorded) ? recorded : null);
        return s.valDice === null || trainImages === null ? [] : [{ modelId: m.id, createdAt: m.createdAt, trainImages, valDice: s.valDice, promoted: m.promoted }];
      });
      const { total, byKind, estimatedTimeSavedMs } = project.annotationSummary();
      return { curve, annotation: { total, byKind, estimatedTimeSavedMs } };
    },
  };
}
