/**
 * One job request of the app's contract, run by the matching workflow. The request has already
 * been validated against src/shared's schemas by the app.
 */
import type { JobRequest } from '../shared/ipc';
import type { TrainOutcome } from '../shared/types';
import type { Project } from '../store';
import type { WorkHooks } from './hooks';
import { importImages } from './workflows/importImages';
import { prelabel } from './workflows/prelabel';
import { pretrainEncoder } from './workflows/pretrainEncoder';
import { trainModel } from './workflows/trainModel';
import { candidateRecord } from '../engine/train/select';
import { parseTarget } from '../shared/target';

export interface JobOutcome {
  status: 'completed' | 'cancelled';
  message: string;
  trainOutcome: TrainOutcome | null;
  imageIds: number[];
  skipped: boolean;
}

const nothing = { trainOutcome: null, imageIds: [], skipped: false };

export async function runJob(project: Project, request: JobRequest, resumeRunId: number | null, hooks: WorkHooks): Promise<JobOutcome> {
  switch (request.kind) {
    case 'import': {
      const r = await importImages(project, { folder: request.folder, split: request.split }, hooks);
      return { ...nothing, status: r.status, message: r.message };
    }
    case 'pretrain': {
      const { kind: _, resume, ...settings } = request;
      const r = await pretrainEncoder(project, { ...settings, resume: resumeRunId ?? resume }, hooks);
      return { ...nothing, status: r.status, message: r.message };
    }
    case 'train': {
      const r = await trainModel(project, { ...request, target: parseTarget(request.target), resume: resumeRunId ?? undefined }, hooks);
      if (r.status === 'skipped') return { ...nothing, status: 'completed', skipped: true, message: `not retraining: ${r.newLabels} new label(s), ${r.needed || 'no'} needed` };
      if (r.status === 'cancelled') return { ...nothing, status: 'cancelled', message: 'cancelled; it can be resumed' };
      return {
        ...nothing, status: 'completed', message: r.message,
        trainOutcome: {
          modelId: r.modelId, init: r.init, valDice: r.valDice, incumbentId: r.incumbentId, incumbentDice: r.incumbentDice,
          valF1: r.valF1, incumbentF1: r.incumbentF1, promoted: r.promoted, decision: r.decision,
          candidates: r.candidates.map(candidateRecord),
        },
      };
    }
    case 'prelabel': {
      const r = await prelabel(project, { imageIds: request.imageIds }, hooks);
      return { ...nothing, status: r.status, imageIds: r.imageIds, message: `${r.images} proposal(s) made, ${r.skipped} already up to date` };
    }
  }
}
