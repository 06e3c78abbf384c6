/**
 * Training settings: the one home of their defaults, read by the IPC contract, the CLI, the app,
 * the jobs and the evaluations, so that what is measured is what users get.
 *
 * Training is given wall-clock time, not steps: a user waits seconds, and a faster machine should
 * train more in them. The engine turns a budget into steps once, before training, from a measured
 * step time (engine/train/budget.ts), so a run is still a fixed number of steps that is recorded,
 * resumed and reproduced. Steps remain an option wherever a budget is.
 */
export const TRAINING = {
  /** Fine-tuning's base rate (Adam, cosine decay to a twentieth). */
  learningRate: 0.002,
  /** Pretraining's rate (constant: the decay was measured for fine-tuning only). */
  pretrainLearningRate: 0.001,
  /** The first model of a project (or target): every candidate initialisation trains within it. */
  firstModelSeconds: 120,
  /** Each later retraining: the promoted model continued on all current labels. */
  retrainSeconds: 60,
  /** Background pretraining, while the first images are labeled. */
  pretrainSeconds: 1200,
  /**
   * After a pretraining, where labels exist: a quick fine-tune from scratch and from the new
   * weights, sharing this many seconds, tells the user what the pretraining is worth on val.
   */
  pretrainProbeSeconds: 60,
  /**
   * Pretraining crops from at most this many of the project's images held in memory at once,
   * together at most pretrainMaxPixels; a project with more streams them through (ProjectImageStream).
   */
  pretrainMaxImages: 256,
  /** Pixel values (pixels x channels) of the images pretraining holds at once (2^26: 256 MB as float32). */
  pretrainMaxPixels: 2 ** 26,
  /**
   * Pixel values of the most of one image pretraining holds (2^24: a 4096² grey region, 64 MB as
   * float32): a larger image (a whole slide, a stitched mosaic) contributes a region this size,
   * another one each time the window moves, read from the file without decoding it whole where
   * the format allows (tiled TIFF).
   */
  pretrainRegionPixels: 2 ** 24,
  /** Steps between two moves of pretraining's window over a project's images (each move brings in a quarter of the window). */
  pretrainTurnoverSteps: 100,
  /** Steps between a pretraining's resumable checkpoints. */
  pretrainCheckpointEvery: 50,
  /**
   * Semi-supervised fine-tuning (consistency training, a candidate of a first model) samples its
   * unlabeled crops from at most this many of the project's unlabeled images held in memory.
   */
  consistencyMaxImages: 64,
  /** The unlabeled images it holds have at most this many pixels together (2^26: 256 MB as float32), whatever their size. */
  consistencyMaxPixels: 2 ** 26,
} as const;

/** The longest budget any setting accepts (a week), against typos that would hold a job for years. */
export const MAX_BUDGET_SECONDS = 7 * 24 * 3600;
