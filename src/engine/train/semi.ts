/**
 * Semi-supervised fine-tuning: how candidates that also learn from images without labels are
 * named, and where their unlabeled patches come from. Two recipes, alone or together: consistency
 * training (consistency.ts, SEMI) and joint denoising (jointDenoising.ts, DENOISE).
 */
import { UNKNOWN, type EngineImage, type LabeledImage } from '../data';

/**
 * Suffixes of a candidate's name, in `maskloop train` and in the evaluations alike: SEMI for
 * consistency training ('scratch+semi', 'inpainting+semi'), DENOISE for joint denoising
 * ('scratch+denoise'); both as 'scratch+denoise+semi'.
 */
export const SEMI = '+semi';
export const DENOISE = '+denoise';

/** A candidate's initialisation without the suffixes, and which semi-supervised recipes it names. */
export function semiSupervised(name: string): { base: string; semi: boolean; denoise: boolean } {
  const semi = name.endsWith(SEMI);
  const rest = semi ? name.slice(0, -SEMI.length) : name;
  const denoise = rest.endsWith(DENOISE);
  return { base: denoise ? rest.slice(0, -DENOISE.length) : rest, semi, denoise };
}

/** Where unlabeled patches come from: images without labels, and labeled images whose labels leave pixels unknown. */
export type UnlabeledPool = Array<EngineImage & { labels?: Uint8Array }>;

/** The images of a pool: every unlabeled image, and the labeled ones that leave any pixel unknown. */
export function unlabeledPool(unlabeled: EngineImage[], labeled: LabeledImage[]): UnlabeledPool {
  return [...unlabeled, ...labeled.filter((im) => im.labels.includes(UNKNOWN))];
}
