/**
 * The baseline a biologist would pick instead of maskloop: an ilastik-style pixel classifier. A
 * random forest on a bank of filters of the image (ilastik's defaults: Gaussian smoothing,
 * Laplacian of Gaussian, Gaussian gradient magnitude, difference of Gaussians, structure-tensor
 * and Hessian-of-Gaussian eigenvalues, at scales σ 0.7 to 10), trained on the pixels of the same
 * labeled images the network gets, predicting foreground per pixel. Written here so every report
 * can show it on the same label subsets; derivatives are finite differences of the smoothed image
 * (ilastik uses Gaussian derivative kernels, which differ at the smallest scale only).
 */
import { Rng } from '../shared/rng';

/** ilastik's default scales for every filter. */
export const FILTER_SCALES = [0.7, 1, 1.6, 3.5, 5, 10] as const;
/** Quantile bins per feature for split search. */
const BINS = 64;
/** Filters per scale and channel: smoothed, LoG, gradient magnitude, DoG, 2 structure-tensor and 2 Hessian eigenvalues. */
const PER_SCALE = 8;

export interface FeatureImage {
  width: number;
  height: number;
  /** Features per pixel. */
  count: number;
  /** Pixel-major: pixel i's features at [i * count, (i + 1) * count). */
  data: Float32Array;
}

function gaussianKernel(sigma: number): Float32Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) sum += k[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/** Separable Gaussian blur with mirrored borders. */
export function gaussianBlur(src: Float32Array, width: number, height: number, sigma: number): Float32Array {
  const k = gaussianKernel(sigma);
  const r = (k.length - 1) / 2;
  const mirror = (i: number, n: number) => (i < 0 ? Math.min(-i, n - 1) : i >= n ? Math.max(2 * n - 2 - i, 0) : i);
  const tmp = new Float32Array(src.length);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      let s = 0;
      for (let j = -r; j <= r; j++) s += k[j + r] * src[row + mirror(x + j, width)];
      tmp[row + x] = s;
    }
  }
  const out = new Float32Array(src.length);
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      let s = 0;
      for (let j = -r; j <= r; j++) s += k[j + r] * tmp[mirror(y + j, height) * width + x];
      out[y * width + x] = s;
    }
  }
  return out;
}

/** Eigenvalues of the symmetric 2x2 matrix [[a, b], [b, c]], larger first. */
function eigen2(a: number, b: number, c: number): [number, number] {
  const mean = (a + c) / 2;
  const d = Math.sqrt(((a - c) / 2) ** 2 + b * b);
  return [mean + d, mean - d];
}

/** The filter bank of one image (HWC floats, any channel count), plus the raw values: 1 + 48 features per channel. */
export function filterBank(pixels: Float32Array, width: number, height: number, channels: number): FeatureImage {
  const n = width * height;
  const count = channels * (1 + PER_SCALE * FILTER_SCALES.length);
  const data = new Float32Array(n * count);
  let f = 0;
  const put = (values: Float32Array) => {
    for (let i = 0; i < n; i++) data[i * count + f] = values[i];
    f++;
  };
  for (let c = 0; c < channels; c++) {
    const plane = new Float32Array(n);
    for (let i = 0; i < n; i++) plane[i] = pixels[i * channels + c];
    put(plane);
    for (const sigma of FILTER_SCALES) {
      const g = gaussianBlur(plane, width, height, sigma);
      const inner = gaussianBlur(plane, width, height, 0.66 * sigma);
      const ix = new Float32Array(n), iy = new Float32Array(n), ixx = new Float32Array(n), iyy = new Float32Array(n), ixy = new Float32Array(n);
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const i = y * width + x;
          const l = x > 0 ? i - 1 : i, r = x < width - 1 ? i + 1 : i, u = y > 0 ? i - width : i, d = y < height - 1 ? i + width : i;
          ix[i] = (g[r] - g[l]) / 2;
          iy[i] = (g[d] - g[u]) / 2;
          ixx[i] = g[r] - 2 * g[i] + g[l];
          iyy[i] = g[d] - 2 * g[i] + g[u];
          const ur = y > 0 && x < width - 1 ? i - width + 1 : i, ul = y > 0 && x > 0 ? i - width - 1 : i;
          const dr = y < height - 1 && x < width - 1 ? i + width + 1 : i, dl = y < height - 1 && x > 0 ? i + width - 1 : i;
          ixy[i] = (g[dr] - g[dl] - g[ur] + g[ul]) / 4;
        }
      }
      const log = new Float32Array(n), magnitude = new Float32Array(n), dog = new Float32Array(n);
      const h1 = new Float32Array(n), h2 = new Float32Array(n);
      const sxx = new Float32Array(n), syy = new Float32Array(n), sxy = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        log[i] = ixx[i] + iyy[i];
        magnitude[i] = Math.hypot(ix[i], iy[i]);
        dog[i] = g[i] - inner[i];
        [h1[i], h2[i]] = eigen2(ixx[i], ixy[i], iyy[i]);
        sxx[i] = ix[i] * ix[i];
        syy[i] = iy[i] * iy[i];
        sxy[i] = ix[i] * iy[i];
      }
      // The structure tensor is the gradient's outer product averaged over twice the scale (ilastik's outer scale).
      const [txx, tyy, txy] = [sxx, syy, sxy].map((t) => gaussianBlur(t, width, height, 2 * sigma));
      const s1 = new Float32Array(n), s2 = new Float32Array(n);
      for (let i = 0; i < n; i++) [s1[i], s2[i]] = eigen2(txx[i], txy[i], tyy[i]);
      for (const values of [g, log, magnitude, dog, s1, s2, h1, h2]) put(values);
    }
  }
  return { width, height, count, data };
}

interface Node {
  /** Leaf: probability of foreground; split: -1. */
  p: number;
  feature: number;
  threshold: number;
  left: number;
  right: number;
}

export interface ForestOptions {
  trees?: number;
  /**
   * Labeled pixels drawn per class for training, over all images (ilastik users label a few
   * thousand); spread evenly over the images.
   */
  samplesPerClass?: number;
  maxDepth?: number;
  seed?: number;
}

/** One tree in flat arrays (fast to walk): node i is a leaf when feature[i] < 0, with foreground probability p[i]. */
interface FlatTree {
  feature: Int32Array;
  threshold: Float32Array;
  left: Int32Array;
  right: Int32Array;
  p: Float32Array;
}

function flatten(nodes: Node[]): FlatTree {
  const n = nodes.length;
  const tree: FlatTree = { feature: new Int32Array(n), threshold: new Float32Array(n), left: new Int32Array(n), right: new Int32Array(n), p: new Float32Array(n) };
  nodes.forEach((node, i) => {
    tree.feature[i] = node.p >= 0 ? -1 : node.feature;
    tree.threshold[i] = node.threshold;
    tree.left[i] = node.left;
    tree.right[i] = node.right;
    tree.p[i] = node.p;
  });
  return tree;
}

/** A random forest of binary (foreground / background) trees. */
export class PixelForest {
  private constructor(private readonly trees: FlatTree[], readonly featureCount: number) {}

  /**
   * Trains on the labeled pixels of feature images: label 1 foreground, 0 background, anything
   * else (unknown) is left out. Each tree sees a bootstrap sample and picks each split among √F
   * random features, at the best Gini threshold among 63 quantiles of the training samples.
   */
  static train(images: { features: FeatureImage; labels: Uint8Array }[], options: ForestOptions = {}): PixelForest {
    const rng = new Rng(options.seed ?? 1);
    const perClass = Math.max(1, Math.floor((options.samplesPerClass ?? 20_000) / images.length));
    const count = images[0].features.count;
    const picked: { features: FeatureImage; pixel: number; cls: number }[] = [];
    for (const { features, labels } of images) {
      for (const cls of [0, 1]) {
        const pixels: number[] = [];
        for (let i = 0; i < labels.length; i++) if (labels[i] === cls) pixels.push(i);
        for (const pixel of rng.shuffle(pixels).slice(0, perClass)) picked.push({ features, pixel, cls });
      }
    }
    const ys = Uint8Array.from(picked, (p) => p.cls);
    if (!ys.includes(0) || !ys.includes(1)) throw new Error('the pixel classifier needs labeled foreground and background pixels');
    // Each feature is cut at BINS - 1 quantiles of the samples once; a node then splits on a bin
    // edge after one pass over its members (a histogram), as fast forest and boosting libraries do.
    const n = picked.length;
    const binned = new Uint8Array(n * count);
    const edges: Float32Array[] = [];
    for (let f = 0; f < count; f++) {
      const values = Float32Array.from(picked, (p) => p.features.data[p.pixel * count + f]);
      const sorted = values.slice().sort();
      const cut = new Float32Array(BINS - 1);
      for (let b = 1; b < BINS; b++) cut[b - 1] = sorted[Math.min(n - 1, Math.floor((b * n) / BINS))];
      edges.push(cut);
      for (let r = 0; r < n; r++) {
        // The bin is the number of edges at or below the value (binary search).
        let lo = 0, hi = BINS - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (cut[mid] <= values[r]) lo = mid + 1;
          else hi = mid;
        }
        binned[r * count + f] = lo;
      }
    }
    const maxDepth = options.maxDepth ?? 20;
    const tryFeatures = Math.max(1, Math.round(Math.sqrt(count)));
    const trees: FlatTree[] = [];
    const total = new Float64Array(BINS), pos = new Float64Array(BINS);
    for (let t = 0; t < (options.trees ?? 100); t++) {
      const sample = new Int32Array(n);
      for (let i = 0; i < n; i++) sample[i] = Math.floor(rng.next() * n);
      const nodes: Node[] = [];
      const grow = (members: Int32Array, depth: number): number => {
        let positives = 0;
        for (const m of members) positives += ys[m];
        const p = positives / members.length;
        const at = nodes.length;
        nodes.push({ p, feature: -1, threshold: 0, left: -1, right: -1 });
        if (depth >= maxDepth || positives === 0 || positives === members.length || members.length < 2) return at;
        let best = { gain: 0, feature: -1, bin: 0 };
        const parentGini = 1 - p * p - (1 - p) * (1 - p);
        for (let k = 0; k < tryFeatures; k++) {
          const f = Math.floor(rng.next() * count);
          total.fill(0);
          pos.fill(0);
          for (const m of members) {
            const b = binned[m * count + f];
            total[b]++;
            pos[b] += ys[m];
          }
          let leftN = 0, leftP = 0;
          for (let b = 0; b < BINS - 1; b++) {
            leftN += total[b];
            leftP += pos[b];
            const rightN = members.length - leftN;
            if (leftN === 0 || rightN === 0) continue;
            const pl = leftP / leftN, pr = (positives - leftP) / rightN;
            const gini = (leftN * (1 - pl * pl - (1 - pl) ** 2) + rightN * (1 - pr * pr - (1 - pr) ** 2)) / members.length;
            if (parentGini - gini > best.gain) best = { gain: parentGini - gini, feature: f, bin: b };
          }
        }
        if (best.feature < 0) return at;
        let leftCount = 0;
        for (const m of members) if (binned[m * count + best.feature] <= best.bin) leftCount++;
        const left = new Int32Array(leftCount), right = new Int32Array(members.length - leftCount);
        let l = 0, r = 0;
        for (const m of members) {
          if (binned[m * count + best.feature] <= best.bin) left[l++] = m;
          else right[r++] = m;
        }
        nodes[at].feature = best.feature;
        // Values below the bin's upper edge go left, as in training.
        nodes[at].threshold = edges[best.feature][best.bin];
        nodes[at].p = -1;
        nodes[at].left = grow(left, depth + 1);
        nodes[at].right = grow(right, depth + 1);
        return at;
      };
      grow(sample, 0);
      trees.push(flatten(nodes));
    }
    return new PixelForest(trees, count);
  }

  /** Foreground probability per pixel: the mean of the trees' leaf probabilities. */
  predict(features: FeatureImage): Float32Array {
    if (features.count !== this.featureCount) throw new Error(`the forest was trained on ${this.featureCount} features, got ${features.count}`);
    const n = features.width * features.height;
    const out = new Float32Array(n);
    const { data, count } = features;
    for (let i = 0; i < n; i++) {
      const base = i * count;
      let sum = 0;
      for (const { feature, threshold, left, right, p } of this.trees) {
        let node = 0;
        while (feature[node] >= 0) node = data[base + feature[node]] < threshold[node] ? left[node] : right[node];
        sum += p[node];
      }
      out[i] = sum / this.trees.length;
    }
    return out;
  }
}
