/**
 * U-Net built from a config. The encoder is a separable part (own parameter names, own forward
 * pass) because it is what self-supervised pretext tasks pretrain; the decoder and the head are
 * added for segmentation. Parameters are plain named tf.Variables so that checkpoints are a flat
 * name → tensor map and transfer between tasks is a matter of names.
 */
import * as tf from '@tensorflow/tfjs';

/** 'batch': batch normalisation between each 3x3 convolution and its ReLU; 'none': plain conv+ReLU. */
export type Normalisation = 'none' | 'batch';
export const NORMALISATIONS: readonly Normalisation[] = ['none', 'batch'];

export interface UNetConfig {
  /** Image channels the network reads. */
  inChannels: number;
  /** Output channels: 1 = binary (sigmoid), >1 = classes incl. background (softmax). */
  outChannels: number;
  /** Resolution levels including the bottleneck; the input side must be divisible by 2^(depth-1). */
  depth: number;
  /** Filters at the first level; doubled at each level below. */
  baseFilters: number;
  /** 3x3 conv+ReLU layers per level (2 in the classic U-Net). */
  convsPerLevel?: number;
  /** Default 'none', so that models saved before normalisation existed load unchanged. */
  norm?: Normalisation;
}

/** DESIGN.md's reference network for every speed figure (≈0.5 M parameters). */
export const REFERENCE_UNET: UNetConfig = { inChannels: 1, outChannels: 1, depth: 4, baseFilters: 16, convsPerLevel: 2 };

/**
 * The shape of every model maskloop trains, in projects and evaluations alike: the reference's,
 * with batch normalisation. Without it, the short fine-tunings that few labels allow were fragile
 * (docs/results/history-2026-12-03.md: ISBI scratch at one label 0.60 without, 0.74 with).
 */
export const DEFAULT_ARCH = { depth: REFERENCE_UNET.depth, baseFilters: REFERENCE_UNET.baseFilters, norm: 'batch' } as const satisfies Partial<UNetConfig>;

/** Weight of the newest batch in the running statistics that inference uses. */
export const BATCH_NORM_MOMENTUM = 0.1;
const BATCH_NORM_EPSILON = 1e-3;

export type Params = Map<string, tf.Variable>;

export interface EncoderFeatures {
  /** One feature map per level above the bottleneck, full resolution first. */
  skips: tf.Tensor4D[];
  bottom: tf.Tensor4D;
}

/** The network's shape without its input and output channels: what a checkpoint's kind of U-Net is. */
export type Architecture = Omit<UNetConfig, 'inChannels' | 'outChannels'>;

/** The architecture of a config, with the defaults filled in. */
export function architectureOf(config: Architecture): Required<Architecture> {
  return { depth: config.depth, baseFilters: config.baseFilters, convsPerLevel: config.convsPerLevel ?? 2, norm: config.norm ?? 'none' };
}

export function validateConfig(config: UNetConfig): Required<UNetConfig> {
  const c = { ...config, ...architectureOf(config) };
  const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
  if (!positiveInt(c.inChannels)) throw new Error(`U-Net: inChannels must be a positive integer, got ${c.inChannels}`);
  if (!positiveInt(c.outChannels)) throw new Error(`U-Net: outChannels must be a positive integer, got ${c.outChannels}`);
  if (!positiveInt(c.depth) || c.depth > 8) throw new Error(`U-Net: depth must be 1..8, got ${c.depth}`);
  if (!positiveInt(c.baseFilters)) throw new Error(`U-Net: baseFilters must be a positive integer, got ${c.baseFilters}`);
  if (!positiveInt(c.convsPerLevel)) throw new Error(`U-Net: convsPerLevel must be a positive integer, got ${c.convsPerLevel}`);
  if (!NORMALISATIONS.includes(c.norm)) throw new Error(`U-Net: norm must be ${NORMALISATIONS.map((n) => `'${n}'`).join(' or ')}, got ${String(c.norm)}`);
  return c;
}

export function filtersAt(config: UNetConfig, level: number): number {
  return config.baseFilters * 2 ** level;
}

/** Spatial sizes given to the network must be multiples of this. */
export function sizeMultiple(config: UNetConfig): number {
  return 2 ** (config.depth - 1);
}

/** Shapes of every parameter, in creation order; the single definition of the architecture's weights. */
/**
 * Floating-point operations (a multiply-add counts two) of the convolutions in one forward pass
 * of a size x size image: each 3x3 or 1x1 convolution at its level's resolution. A training step
 * costs about three times this per image (the forward pass and two gradients).
 */
export function convolutionFlops(config: UNetConfig, size: number): number {
  let flops = 0;
  for (const [name, shape] of parameterShapes(config)) {
    if (!name.endsWith('.w')) continue;
    const level = name === 'head.w' ? 0 : Number(/^(?:enc|dec)(\d+)\./.exec(name)![1]);
    const [k, , cin, cout] = shape;
    flops += 2 * k * k * cin * cout * (size / 2 ** level) ** 2;
  }
  return flops;
}

export function parameterShapes(config: UNetConfig): Array<[string, number[]]> {
  const c = validateConfig(config);
  const shapes: Array<[string, number[]]> = [];
  const conv = (name: string, k: number, cin: number, cout: number) => {
    shapes.push([`${name}.w`, [k, k, cin, cout]]);
    // Normalisation subtracts the mean, so a bias before it would do nothing: beta replaces it.
    if (c.norm === 'batch' && name !== 'head') {
      for (const part of BATCH_NORM_PARTS) shapes.push([`${name}.${part}`, [cout]]);
    } else {
      shapes.push([`${name}.b`, [cout]]);
    }
  };
  let cin = c.inChannels;
  for (let level = 0; level < c.depth; level++) {
    const f = filtersAt(c, level);
    for (let i = 0; i < c.convsPerLevel; i++) {
      conv(`enc${level}.conv${i}`, 3, i === 0 ? cin : f, f);
    }
    cin = f;
  }
  for (let level = c.depth - 2; level >= 0; level--) {
    const f = filtersAt(c, level);
    conv(`dec${level}.up`, 3, filtersAt(c, level + 1), f);
    for (let i = 0; i < c.convsPerLevel; i++) {
      conv(`dec${level}.conv${i}`, 3, i === 0 ? 2 * f : f, f);
    }
  }
  conv('head', 1, c.baseFilters, c.outChannels);
  return shapes;
}

export function isEncoderParam(name: string): boolean {
  return name.startsWith('enc');
}

export function isHeadParam(name: string): boolean {
  return name.startsWith('head.');
}

/** Scale and shift (learned), then the running mean and variance (measured, not trained). */
const BATCH_NORM_PARTS = ['gamma', 'beta', 'mean', 'var'] as const;

/** Running statistics: stored and transferred with the weights, but no optimizer touches them. */
export function isStatistic(name: string): boolean {
  return name.endsWith('.mean') || name.endsWith('.var');
}

/** The normalisation a set of named weights was trained with. */
export function normalisationOf(weights: Map<string, unknown>): Normalisation {
  for (const name of weights.keys()) if (name.endsWith('.gamma')) return 'batch';
  return 'none';
}

/** He-normal initialisation for ReLU networks, seeded so runs are reproducible. */
export function initTensor(name: string, shape: number[], seed: number): tf.Tensor {
  if (name.endsWith('.gamma') || name.endsWith('.var')) return tf.ones(shape);
  if (name.endsWith('.b') || name.endsWith('.beta') || name.endsWith('.mean')) return tf.zeros(shape);
  const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  return tf.truncatedNormal(shape, 0, Math.sqrt(2 / fanIn), 'float32', seed);
}

/** Per-channel statistics of a batch, handed to whoever keeps the running ones. */
type StatisticsSink = (mean: tf.Tensor1D, variance: tf.Tensor1D, count: number) => void;

/**
 * A backend that runs training batch normalisation and the ReLU after it as two fused kernels
 * (the native backend: batchnorm.cc). Features are NHWC; statistics per channel.
 */
export interface FusedBatchNormBackend {
  batchNormForward(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, eps: number, relu: boolean):
    { y: tf.Tensor4D; mean: tf.Tensor1D; invStd: tf.Tensor1D; variance: tf.Tensor1D };
  batchNormBackward(dy: tf.Tensor4D, x: tf.Tensor4D, y: tf.Tensor4D, mean: tf.Tensor1D, invStd: tf.Tensor1D, gamma: tf.Tensor, relu: boolean):
    { dx: tf.Tensor4D; dgamma: tf.Tensor1D; dbeta: tf.Tensor1D };
}

function fusedBatchNormBackend(): FusedBatchNormBackend | null {
  const backend = tf.backend() as Partial<FusedBatchNormBackend>;
  return typeof backend.batchNormForward === 'function' && typeof backend.batchNormBackward === 'function' ? (backend as FusedBatchNormBackend) : null;
}

/**
 * Batch normalisation of NHWC features over batch and space, then a ReLU when `relu`, with the
 * gradient written out: tfjs' automatic gradient of the same formula runs about twice as many
 * full-size kernels (every broadcast in the forward pass becomes a reduction and a multiplication
 * by ones). A backend with fused kernels runs it as one kernel each way. `onStatistics` receives
 * the batch's mean and (biased) variance per channel.
 */
export function normaliseBatch(
  features: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  onStatistics: StatisticsSink = () => {},
  relu = false,
): tf.Tensor4D {
  const fused = fusedBatchNormBackend();
  if (fused) return fusedNormaliseBatch(fused, features, gamma, beta, onStatistics, relu);
  const normalised = composedNormaliseBatch(features, gamma, beta, onStatistics);
  return relu ? tf.relu(normalised) : normalised;
}

function fusedNormaliseBatch(backend: FusedBatchNormBackend, features: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, onStatistics: StatisticsSink, relu: boolean): tf.Tensor4D {
  const [n, h, w] = features.shape;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, g, b] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const out = backend.batchNormForward(x as tf.Tensor4D, g, b, BATCH_NORM_EPSILON, relu);
    tf.tidy(() => onStatistics(out.mean, out.variance, n * h * w));
    out.variance.dispose();
    save([x, out.y, out.mean, out.invStd, g]);
    return {
      value: out.y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ys, mean, invStd, scale] = saved;
        const grads = backend.batchNormBackward(dy as tf.Tensor4D, xs as tf.Tensor4D, ys as tf.Tensor4D, mean as tf.Tensor1D, invStd as tf.Tensor1D, scale, relu);
        return [grads.dx, grads.dgamma, grads.dbeta];
      },
    };
  });
  return op(features, gamma, beta) as tf.Tensor4D;
}

function composedNormaliseBatch(features: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, onStatistics: StatisticsSink): tf.Tensor4D {
  const [n, h, w] = features.shape;
  const count = n * h * w;
  const inverse = 1 / count;
  const axes = [0, 1, 2];
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, g, b] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    // tf.sum over the leading axes runs as one native reduction; tf.moments would transpose first.
    const mean = tf.mul(tf.sum(x, axes), inverse) as tf.Tensor1D;
    const centred = tf.sub(x, mean);
    const variance = tf.mul(tf.sum(tf.square(centred), axes), inverse) as tf.Tensor1D;
    tf.tidy(() => onStatistics(mean, variance, count));
    const inverseStd = tf.rsqrt(tf.add(variance, BATCH_NORM_EPSILON));
    const normalised = tf.mul(centred, inverseStd);
    save([normalised, inverseStd, g]);
    return {
      value: tf.add(tf.mul(normalised, g), b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xHat, invStd, scale] = saved;
        const dBeta = tf.sum(dy, axes);
        const dGamma = tf.sum(tf.mul(dy, xHat), axes);
        // d/dx of gamma·x̂ + beta, with x̂'s dependence on the batch mean and variance.
        const dx = tf.mul(tf.sub(tf.sub(dy, tf.mul(dBeta, inverse)), tf.mul(xHat, tf.mul(dGamma, inverse))), tf.mul(scale, invStd));
        return [dx, dGamma, dBeta];
      },
    };
  });
  return op(features, gamma, beta) as tf.Tensor4D;
}

export class UNet {
  readonly config: Required<UNetConfig>;
  readonly params: Params;

  private constructor(config: UNetConfig, params: Params) {
    this.config = validateConfig(config);
    this.params = params;
  }

  static create(config: UNetConfig, seed = 1): UNet {
    const params: Params = new Map();
    parameterShapes(config).forEach(([name, shape], i) => {
      const init = initTensor(name, shape, seed * 1000 + i);
      params.set(name, tf.variable(init, !isStatistic(name), `${name}#${nextModelId()}`));
      init.dispose();
    });
    return new UNet(config, params);
  }

  /** Builds a model from named weights (a checkpoint); shapes must match the config exactly. */
  static fromWeights(config: UNetConfig, weights: Map<string, tf.Tensor>): UNet {
    const params: Params = new Map();
    const id = nextModelId();
    for (const [name, shape] of parameterShapes(config)) {
      const w = weights.get(name);
      if (!w) throw new Error(`checkpoint has no weight '${name}' for this U-Net config`);
      if (!tf.util.arraysEqual(w.shape, shape)) {
        throw new Error(`weight '${name}' has shape [${w.shape}], the config needs [${shape}]`);
      }
      params.set(name, tf.variable(w, !isStatistic(name), `${name}#${id}`));
    }
    return new UNet(config, params);
  }

  /**
   * Copies every weight whose name and shape match from a pretrained model (encoder, and the
   * decoder where the pretext task trained one); returns the names copied. The head is never
   * copied: its meaning is task-specific.
   */
  loadMatching(weights: Map<string, tf.Tensor>, include: (name: string) => boolean = () => true): string[] {
    const copied: string[] = [];
    for (const [name, variable] of this.params) {
      const w = weights.get(name);
      if (!w || isHeadParam(name) || !include(name)) continue;
      if (!tf.util.arraysEqual(w.shape, variable.shape)) continue;
      variable.assign(w);
      copied.push(name);
    }
    return copied;
  }

  private p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new Error(`U-Net has no parameter '${name}'`);
    return v;
  }

  /**
   * 3x3 (or head 1x1) convolution and its activation. With batch normalisation, training
   * normalises by the batch's statistics and moves the running ones towards them; inference folds
   * the running statistics into the filter and bias, so it costs no more than a plain convolution.
   */
  private conv(name: string, x: tf.Tensor4D, training: boolean, activation: 'relu' | 'linear' = 'relu'): tf.Tensor4D {
    const filter = this.p(`${name}.w`) as tf.Tensor4D;
    if (!this.params.has(`${name}.gamma`)) return this.convWithBias(x, filter, this.p(`${name}.b`), training, activation);
    const gamma = this.p(`${name}.gamma`);
    const beta = this.p(`${name}.beta`);
    const runningMean = this.p(`${name}.mean`);
    const runningVar = this.p(`${name}.var`);
    if (!training) {
      const scale = tf.mul(gamma, tf.rsqrt(tf.add(runningVar, BATCH_NORM_EPSILON)));
      const folded = tf.mul(filter, scale) as tf.Tensor4D;
      const bias = tf.sub(beta, tf.mul(runningMean, scale));
      return tf.fused.conv2d({ x, filter: folded, bias, strides: 1, pad: 'same', activation });
    }
    return normaliseBatch(tf.conv2d(x, filter, 1, 'same'), gamma, beta, (mean, variance, count) => {
      const unbiased = tf.mul(variance, count / Math.max(count - 1, 1));
      runningMean.assign(tf.add(tf.mul(runningMean, 1 - BATCH_NORM_MOMENTUM), tf.mul(mean, BATCH_NORM_MOMENTUM)));
      runningVar.assign(tf.add(tf.mul(runningVar, 1 - BATCH_NORM_MOMENTUM), tf.mul(unbiased, BATCH_NORM_MOMENTUM)));
    }, activation === 'relu');
  }

  private convWithBias(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor, training: boolean, activation: 'relu' | 'linear'): tf.Tensor4D {
    // Under a gradient tape tfjs un-fuses a conv with an activation entirely (conv, bias add,
    // activation); with 'linear' it keeps the bias fused, which saves a pass over the output.
    if (activation === 'relu' && training) {
      return tf.relu(tf.fused.conv2d({ x, filter, bias, strides: 1, pad: 'same', activation: 'linear' }));
    }
    return tf.fused.conv2d({ x, filter, bias, strides: 1, pad: 'same', activation });
  }

  /** `training`: under a training step (batch statistics, running statistics updated). */
  encode(x: tf.Tensor4D, training = false): EncoderFeatures {
    const { depth, convsPerLevel, inChannels } = this.config;
    if (x.shape[3] !== inChannels) throw new Error(`U-Net expects ${inChannels} channels, got ${x.shape[3]}`);
    const m = sizeMultiple(this.config);
    if (x.shape[1] % m !== 0 || x.shape[2] % m !== 0) {
      throw new Error(`U-Net input ${x.shape[1]}x${x.shape[2]} is not a multiple of ${m}`);
    }
    const skips: tf.Tensor4D[] = [];
    let h = x;
    for (let level = 0; level < depth; level++) {
      if (level > 0) h = tf.maxPool(h, 2, 2, 'valid');
      for (let i = 0; i < convsPerLevel; i++) h = this.conv(`enc${level}.conv${i}`, h, training);
      if (level < depth - 1) skips.push(h);
    }
    return { skips, bottom: h };
  }

  /** Decoder features (baseFilters channels at full resolution), before the head. */
  decode(features: EncoderFeatures, training = false): tf.Tensor4D {
    const { depth, convsPerLevel } = this.config;
    let h = features.bottom;
    for (let level = depth - 2; level >= 0; level--) {
      const skip = features.skips[level];
      const up = tf.image.resizeNearestNeighbor(h, [skip.shape[1], skip.shape[2]]);
      h = this.conv(`dec${level}.up`, up, training);
      h = tf.concat([skip, h], 3);
      for (let i = 0; i < convsPerLevel; i++) h = this.conv(`dec${level}.conv${i}`, h, training);
    }
    return h;
  }

  /** Logits; apply probabilities() for sigmoid / softmax outputs. */
  forward(x: tf.Tensor4D, training = false): tf.Tensor4D {
    return this.head(this.decode(this.encode(x, training), training), training);
  }

  /** Logits of the decoder's features (decode); forward is encode, decode and this. */
  head(features: tf.Tensor4D, training = false): tf.Tensor4D {
    return this.conv('head', features, training, 'linear');
  }

  probabilities(logits: tf.Tensor4D): tf.Tensor4D {
    return this.config.outChannels === 1 ? tf.sigmoid(logits) : tf.softmax(logits);
  }

  predict(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.probabilities(this.forward(x)));
  }

  /** The trainable parameters (running statistics excluded) that pass the filter. */
  variables(filter: (name: string) => boolean = () => true): tf.Variable[] {
    return [...this.params].filter(([name]) => !isStatistic(name) && filter(name)).map(([, v]) => v);
  }

  parameterCount(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  /** Plain tensors keyed by parameter name (views of the variables: do not dispose). */
  weights(): Map<string, tf.Tensor> {
    return new Map([...this.params].map(([name, v]) => [name, v as tf.Tensor]));
  }

  /** Copies of every parameter, running statistics included, for `restore`; the caller disposes them. */
  snapshot(): Map<string, tf.Tensor> {
    return new Map([...this.params].map(([name, v]) => [name, tf.clone(v)]));
  }

  /** Puts back the parameters of a snapshot of this model. */
  restore(snapshot: Map<string, tf.Tensor>): void {
    for (const [name, v] of this.params) {
      const saved = snapshot.get(name);
      if (!saved || !tf.util.arraysEqual(saved.shape, v.shape)) throw new Error(`snapshot has no parameter '${name}' of shape [${v.shape}]`);
      v.assign(saved);
    }
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}

// tf.Variable names must be unique per process; several models (pretext, fine-tune, candidates)
// coexist, so each model gets its own suffix.
let modelCounter = 0;
function nextModelId(): number {
  return ++modelCounter;
}
