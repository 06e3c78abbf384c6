// 3x3 convolutions with stride 1 by Winograd's minimal filtering (Lavin & Gray 2016).
//
// Each m x m block of outputs ("tile") is computed from the (m+2) x (m+2) input patch d under it:
//   Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A
// so that the channel reduction becomes (m+2)^2 independent GEMMs, one per point xi of the
// transform domain: M[xi][tile][cout] = sum over cin of V[xi][tile][cin] * U[xi][cin][cout].
// F(2x2, 3x3) needs 16 multiply-adds per 4 outputs and F(4x4, 3x3) 36 per 16, where direct
// convolution needs 9 per output: 2.25x and 4x fewer. F(2x2)'s transforms only add and subtract
// (G has halves), so its result stays within a few ulp of the direct sum; F(4x4)'s use factors up
// to 8 and lose about one more decimal digit, which is still far inside the engine's tolerance
// (1e-4 of the output's scale, tested against tfjs' cpu backend).
//
// Tiles are processed in blocks small enough that a block's V and M stay in L2: input transform,
// the GEMMs on the shared microkernel, output transform with bias and activation, then the next
// block. Each output is computed by exactly one block in a fixed order, so results are
// bit-identical for every thread count.
//
// The input gradient of a stride-1 3x3 convolution is itself one (of dy, with the filter rotated
// by 180 degrees and its channel axes swapped, and padding 2 - pad), so it shares the forward
// code. The filter gradient is the forward's adjoint: the same input transform, dy taken back
// through the output transform's transpose, and a GEMM per transform point that sums over tiles.
// It uses F(2x2): its reduction runs over every pixel of the batch, where F(4x4)'s larger factors
// would cost accuracy that the forward's short reductions do not notice.
#include <chrono>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "driver.h"
#include "kernels.h"

namespace ml {
namespace {

// K (input channels) per GEMM pass: keeps a packed B panel (K x 16) within L1.
constexpr long kWinoChunkK = 512;
// Floats of V and M one block may hold: well within a 512 KB L2 next to B panels.
constexpr long kBlockFloats = 1L << 16;

// Arithmetic on one float, or on 8 channels in a vector, for the transforms.
struct VecOps {
  using T = __m256;
  static constexpr long width = 8;
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T zero() { return _mm256_setzero_ps(); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(float k, T a) { return _mm256_mul_ps(_mm256_set1_ps(k), a); }
  static T fma(float k, T a, T b) { return _mm256_fmadd_ps(_mm256_set1_ps(k), a, b); }  // k * a + b
};
struct FloatOps {
  using T = float;
  static constexpr long width = 1;
  static T load(const float* p) { return *p; }
  static void store(float* p, T v) { *p = v; }
  static T zero() { return 0.0f; }
  static T add(T a, T b) { return a + b; }
  static T sub(T a, T b) { return a - b; }
  static T mul(float k, T a) { return k * a; }
  static T fma(float k, T a, T b) { return k * a + b; }
};

// f(ops, c) for channels [c, c + ops.width) from 0 to count: 8 at a time in vectors, then one at a time.
template <class Fn>
inline void by_channels(long count, Fn&& f) {
  long c = 0;
  for (; c + VecOps::width <= count; c += VecOps::width) f(VecOps{}, c);
  for (; c < count; ++c) f(FloatOps{}, c);
}

// out = T in T^T for a 1-D transform T of N values into R: T along the columns, then the rows.
// f1d(in, stride, out) applies T to one line (a lambda, so that it inlines).
template <int N, int R, class T, class F1d>
inline void apply2d(const T (&in)[N][N], T (&out)[R][R], F1d f1d) {
  T mid[R][N];
  for (int j = 0; j < N; ++j) f1d(&in[0][j], N, &mid[0][j]);
  for (int i = 0; i < R; ++i) f1d(&mid[i][0], 1, &out[i][0]);
}

// The 1-D transforms of F(m, 3), each applied along columns and then rows for 2-D. s is the
// stride between the elements of one line, in and out alike.
//   input:    B^T, (m+2) -> (m+2)     output:   A^T, (m+2) -> m     filter: G, 3 -> (m+2)
//   gradient: A,   m -> (m+2)          filter gradient: G^T, (m+2) -> 3
struct F2 {
  static constexpr int m = 2, a = 4;
  template <class O, class T>
  static void input(const T* d, int s, T* o) {
    o[0] = O::sub(d[0], d[2 * s]);
    o[s] = O::add(d[s], d[2 * s]);
    o[2 * s] = O::sub(d[2 * s], d[s]);
    o[3 * s] = O::sub(d[s], d[3 * s]);
  }
  template <class O, class T>
  static void output(const T* d, int s, T* o) {
    o[0] = O::add(O::add(d[0], d[s]), d[2 * s]);
    o[s] = O::sub(O::sub(d[s], d[2 * s]), d[3 * s]);
  }
  static void filter(const float* g, int s, float* o) {
    o[0] = g[0];
    o[s] = 0.5f * (g[0] + g[s] + g[2 * s]);
    o[2 * s] = 0.5f * (g[0] - g[s] + g[2 * s]);
    o[3 * s] = g[2 * s];
  }
  template <class O, class T>
  static void gradient(const T* e, int s, T* o) {
    o[0] = e[0];
    o[s] = O::add(e[0], e[s]);
    o[2 * s] = O::sub(e[0], e[s]);
    o[3 * s] = O::sub(O::zero(), e[s]);
  }
  static void filter_gradient(const float* u, int s, float* o) {
    o[0] = u[0] + 0.5f * (u[s] + u[2 * s]);
    o[s] = 0.5f * (u[s] - u[2 * s]);
    o[2 * s] = 0.5f * (u[s] + u[2 * s]) + u[3 * s];
  }
};

struct F4 {
  static constexpr int m = 4, a = 6;
  template <class O, class T>
  static void input(const T* d, int s, T* o) {
    // Shared partial sums of B^T's rows (4 -5 . 1 / -4 -4 1 1 / 4 -4 -1 1 / -2 -1 2 1 / 2 -1 -2 1 / 4 . -5 . 1).
    const T p = O::fma(-4.0f, d[2 * s], d[4 * s]);  // d4 - 4 d2
    const T q = O::fma(-4.0f, d[s], d[3 * s]);      // d3 - 4 d1
    const T r = O::sub(d[4 * s], d[2 * s]);         // d4 - d2
    const T t = O::mul(2.0f, O::sub(d[3 * s], d[s]));  // 2 (d3 - d1)
    o[0] = O::fma(4.0f, d[0], O::fma(-5.0f, d[2 * s], d[4 * s]));
    o[s] = O::add(p, q);
    o[2 * s] = O::sub(p, q);
    o[3 * s] = O::add(r, t);
    o[4 * s] = O::sub(r, t);
    o[5 * s] = O::fma(4.0f, d[s], O::fma(-5.0f, d[3 * s], d[5 * s]));
  }
  template <class O, class T>
  static void output(const T* d, int s, T* o) {
    const T p = O::add(d[s], d[2 * s]), q = O::sub(d[s], d[2 * s]);
    const T r = O::add(d[3 * s], d[4 * s]), t = O::sub(d[3 * s], d[4 * s]);
    o[0] = O::add(O::add(d[0], p), r);
    o[s] = O::fma(2.0f, t, q);
    o[2 * s] = O::fma(4.0f, r, p);
    o[3 * s] = O::add(O::fma(8.0f, t, q), d[5 * s]);
  }
  static void filter(const float* g, int s, float* o) {
    o[0] = g[0] / 4;
    o[s] = -(g[0] + g[s] + g[2 * s]) / 6;
    o[2 * s] = -(g[0] - g[s] + g[2 * s]) / 6;
    o[3 * s] = g[0] / 24 + g[s] / 12 + g[2 * s] / 6;
    o[4 * s] = g[0] / 24 - g[s] / 12 + g[2 * s] / 6;
    o[5 * s] = g[2 * s];
  }
};

struct WinoShape {
  long n, ih, iw, ic;  // the input the tiles read
  long oh, ow, oc;     // the output they write
  long pt, pl;         // padding before
};

// Filter tap (kh, kw) from input channel ci to output channel co, as the convolution computed
// here sees it.
struct FilterView {
  const float* w;  // [3, 3, w_ic, w_oc]
  long w_ic, w_oc;
  bool rotated;  // the input gradient's view: w rotated 180 degrees, channel axes swapped
  float at(int kh, int kw, long ci, long co) const {
    return rotated ? w[((static_cast<long>(2 - kh) * 3 + (2 - kw)) * w_ic + co) * w_oc + ci]
                   : w[((static_cast<long>(kh) * 3 + kw) * w_ic + ci) * w_oc + co];
  }
};

// U[xi][ci][co] = (G g G^T)[xi].
template <class F>
void transform_filter(const FilterView& f, long ic, long oc, float* u) {
  constexpr int a = F::a;
  parallel_for(ic, [&](long ci, int) {
    for (long co = 0; co < oc; ++co) {
      float g[3][3], r[a][a];
      for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw) g[kh][kw] = f.at(kh, kw, ci, co);
      apply2d(g, r, [](const float* i, int st, float* o) { F::filter(i, st, o); });
      for (int xi = 0; xi < a * a; ++xi) u[(xi * ic + ci) * oc + co] = r[xi / a][xi % a];
    }
  });
}

// Tile t's coordinates: image n, first output row and column.
struct TileGrid {
  long th, tw;
  TileGrid(const WinoShape& s, int m) : th(ceil_div(s.oh, m)), tw(ceil_div(s.ow, m)) {}
  long count(const WinoShape& s) const { return s.n * th * tw; }
  void at(long t, int m, long* n, long* oy, long* ox) const {
    *n = t / (th * tw);
    const long r = t % (th * tw);
    *oy = (r / tw) * m;
    *ox = (r % tw) * m;
  }
};

// Tiles of a transform block: out[xi][t - t0][c] = (T p T^T)[xi] for each tile t in [t0, t1), where
// p is the N x N patch of `img` (an NHWC batch of h x w x ch) whose corner lies at the tile's first
// output pixel plus (dy, dx), zero outside the image; out holds `stride` tiles per transform
// point. Line::apply<O>(in, stride, out) applies the 1-D transform T (N -> R values) to one line,
// in O's arithmetic.
template <int N, int R, class Line>
void transform_patches(const WinoShape& s, int m, const float* img, long h, long w, long ch, long dy, long dx,
                       long t0, long t1, long stride, float* out, Line) {
  const TileGrid grid(s, m);
  for (long t = t0; t < t1; ++t) {
    long n, oy, ox;
    grid.at(t, m, &n, &oy, &ox);
    const float* pix[N][N];  // null where the patch leaves the image
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) {
        const long yy = oy + dy + i, xx = ox + dx + j;
        pix[i][j] = yy >= 0 && yy < h && xx >= 0 && xx < w ? img + ((n * h + yy) * w + xx) * ch : nullptr;
      }
    float* ot = out + (t - t0) * ch;
    by_channels(ch, [&](auto ops, long c) {
      using O = decltype(ops);
      typename O::T p[N][N], v[R][R];
      for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) p[i][j] = pix[i][j] ? O::load(pix[i][j] + c) : O::zero();
      apply2d(p, v, [](const auto* i, int st, auto* o) { Line::template apply<O>(i, st, o); });
      for (int xi = 0; xi < R * R; ++xi) O::store(ot + xi * stride * ch + c, v[xi / R][xi % R]);
    });
  }
}

// V[xi][t - t0][ci] = (B^T d B)[xi] for the input patch d under each tile t in [t0, t1).
template <class F>
struct InputLine {
  template <class O, class T>
  static void apply(const T* i, int st, T* o) { F::template input<O>(i, st, o); }
};
template <class F>
void transform_input_block(const WinoShape& s, const float* x, long t0, long t1, long stride, float* V) {
  transform_patches<F::a, F::a>(s, F::m, x, s.ih, s.iw, s.ic, -s.pt, -s.pl, t0, t1, stride, V, InputLine<F>{});
}

template <class F>
void winograd_conv(const WinoShape& s, const FilterView& f, const float* x, const float* bias, int act,
                   float alpha, float* y) {
  constexpr int m = F::m, a = F::a, points = a * a;
  const long ic = s.ic, oc = s.oc;
  const TileGrid grid(s, m);
  const long ntiles = grid.count(s);
  if (ntiles == 0 || oc == 0) return;
  const int nt = pool_size();

  // Transformed filter, packed per transform point for the microkernel.
  Scratch umem(points * ic * oc + 16);
  transform_filter<F>(f, ic, oc, umem.p);
  const long pb_floats = PackedB::floats(static_cast<int>(ic), static_cast<int>(oc));
  Scratch bmem(points * pb_floats + 16);
  PackedB pb[points];
  {
    const float** krow = new const float*[ic];
    for (int xi = 0; xi < points; ++xi) {
      for (long ci = 0; ci < ic; ++ci) krow[ci] = umem.p + (xi * ic + ci) * oc;
      pb[xi] = pack_b(krow, 1, static_cast<int>(ic), static_cast<int>(oc), bmem.p + xi * pb_floats);
    }
    delete[] krow;
  }

  // Tiles per block: V and M within kBlockFloats, a whole number of microkernel rows, and at
  // least four blocks per thread when the layer is small enough to need it.
  long tb = max_l(MR, kBlockFloats / (points * (ic + oc)) / MR * MR);
  tb = min_l(tb, max_l(MR, ceil_div(ceil_div(ntiles, 4L * nt), MR) * MR));
  const long nblocks = ceil_div(ntiles, tb);
  const long v_floats = points * tb * ic, m_floats = points * tb * oc;
  Scratch work((v_floats + m_floats) * nt + 16);
  const int nchunks = static_cast<int>(ceil_div(ic, kWinoChunkK));
  const __m256 valpha = _mm256_set1_ps(alpha);

  parallel_for(nblocks, [&](long block, int thread) {
    float* V = work.p + thread * (v_floats + m_floats);
    float* M = V + v_floats;
    const long t0 = block * tb, t1 = min_l(ntiles, t0 + tb);
    transform_input_block<F>(s, x, t0, t1, tb, V);

    // The GEMMs: M[xi] (tiles x oc) = V[xi] (tiles x ic) * U[xi] (ic x oc).
    const long rows = t1 - t0;
    for (int xi = 0; xi < points; ++xi) {
      const float* vx = V + xi * tb * ic;
      float* mx = M + xi * tb * oc;
      for (int chunk = 0; chunk < nchunks; ++chunk) {
        const long k0 = chunk * kWinoChunkK;
        const int klen = static_cast<int>(min_l(kWinoChunkK, ic - k0));
        for (int p = 0; p < pb[xi].npanels; ++p) {
          const float* b = pb[xi].panel(p) + k0 * pb[xi].width(p);
          for (long r0 = 0; r0 < rows; r0 += MR) {
            const int mr = static_cast<int>(min_l(MR, rows - r0));
            const float* ap[MR];
            float* cp[MR];
            for (int r = 0; r < MR; ++r) {
              const long row = r < mr ? r0 + r : r0;  // rows past the block repeat a valid one
              ap[r] = vx + row * ic + k0;
              cp[r] = mx + row * oc + static_cast<long>(p) * NR;
            }
            ukr_rows_dispatch(pb[xi].width(p), 1, klen, ap, b, cp, mr, pb[xi].cols(p), chunk > 0, nullptr);
          }
        }
      }
    }

    // Output transform, bias and activation: y at the tile's (up to) m x m outputs.
    for (long t = t0; t < t1; ++t) {
      long n, oy, ox;
      grid.at(t, m, &n, &oy, &ox);
      const int rows_in = static_cast<int>(min_l(m, s.oh - oy)), cols_in = static_cast<int>(min_l(m, s.ow - ox));
      float* out = y + ((n * s.oh + oy) * s.ow + ox) * oc;
      const float* mt = M + (t - t0) * oc;
      by_channels(oc, [&](auto ops, long c) {
        using O = decltype(ops);
        typename O::T d[a][a], v[m][m];
        for (int xi = 0; xi < points; ++xi) d[xi / a][xi % a] = O::load(mt + xi * tb * oc + c);
        apply2d(d, v, [](const auto* i, int st, auto* o) { F::template output<O>(i, st, o); });
        const typename O::T b = bias ? O::load(bias + c) : O::zero();
        for (int i = 0; i < rows_in; ++i)
          for (int j = 0; j < cols_in; ++j) {
            float* p = out + (i * s.ow + j) * oc + c;
            if constexpr (O::width == 1) *p = activate1(v[i][j] + b, act, alpha);
            else O::store(p, activate(O::add(v[i][j], b), act, valpha));
          }
      });
    }
  }, nt);
}

// W[xi][t - t0][co] = (A e A^T)[xi] for the 2x2 block e of dy (zero beyond the output) of each
// tile t in [t0, t1).
struct GradientLine {
  template <class O, class T>
  static void apply(const T* i, int st, T* o) { F2::gradient<O>(i, st, o); }
};
void transform_gradient_block(const WinoShape& s, const float* dy, long t0, long t1, long stride, float* W) {
  transform_patches<F2::m, F2::a>(s, F2::m, dy, s.oh, s.ow, s.oc, 0, 0, t0, t1, stride, W, GradientLine{});
}

// The filter gradient, the adjoint of winograd_conv<F2>: dU[xi] = sum over tiles of V[xi]^T W[xi]
// (16 GEMMs whose reduction runs over the tiles), then dw = G^T dU G per channel pair. As in the
// direct kernel, the reduction is split in chunks fixed by the problem, each summed into its own
// partial, and the partials added in a fixed order: bit-identical for any pool of up to 4 threads.
void winograd_filter_gradient(const WinoShape& s, const float* x, const float* dy, float* dw) {
  using F = F2;
  constexpr int a = F::a, points = a * a;
  const long ic = s.ic, oc = s.oc, usize = points * ic * oc;
  const long ntiles = TileGrid(s, F::m).count(s);
  const int nt = pool_size();
  // Tiles per block from the cache alone (never the thread count: it fixes the summation order).
  const long tb = max_l(MR, kBlockFloats / (points * (ic + oc)) / MR * MR);
  const long nblocks = ceil_div(ntiles, tb);
  const long nchunks = max_l(1, min_l(nblocks, max_l(8, 2L * nt)));
  Scratch partial(nchunks * usize + 16);
  const long v_floats = points * tb * ic, w_floats = points * tb * oc;
  Scratch work((v_floats + w_floats) * nt + 16);

  parallel_for(nchunks, [&](long chunk, int thread) {
    float* part = partial.p + chunk * usize;
    std::memset(part, 0, sizeof(float) * usize);
    float* V = work.p + thread * (v_floats + w_floats);
    float* W = V + v_floats;
    for (long b = chunk * nblocks / nchunks; b < (chunk + 1) * nblocks / nchunks; ++b) {
      const long t0 = b * tb, t1 = min_l(ntiles, t0 + tb);
      transform_input_block<F>(s, x, t0, t1, tb, V);
      transform_gradient_block(s, dy, t0, t1, tb, W);
      const int rows = static_cast<int>(t1 - t0);
      for (int xi = 0; xi < points; ++xi) {
        const float* vx = V + xi * tb * ic;
        const float* wx = W + xi * tb * oc;
        float* ux = part + xi * ic * oc;
        for (long ci = 0; ci < ic; ci += MR) {
          const int rr = static_cast<int>(min_l(MR, ic - ci));
          for (long co = 0; co < oc; co += NR) {
            const int nc = static_cast<int>(min_l(NR, oc - co));
            outer_block(rr, nc, 1, rows, vx + ci, ic, 0, wx + co, oc, 0, ux + ci * oc + co, oc);
          }
        }
      }
    }
  }, nt);

  // Sum the partials (fixed order), then dw = G^T dU G, one input channel per task.
  parallel_for(ic, [&](long ci, int) {
    for (long co = 0; co < oc; ++co) {
      float u[a][a], g[3][3];
      for (int xi = 0; xi < points; ++xi) {
        const long at = (xi * ic + ci) * oc + co;
        float acc = partial.p[at];
        for (long c = 1; c < nchunks; ++c) acc += partial.p[c * usize + at];
        u[xi / a][xi % a] = acc;
      }
      apply2d(u, g, [](const float* i, int st, float* o) { F::filter_gradient(i, st, o); });
      for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw) dw[((static_cast<long>(kh) * 3 + kw) * ic + ci) * oc + co] = g[kh][kw];
    }
  });
}

// Below this many channels on either side the transforms cost more than the multiplications they
// save, and the direct kernel's K (3 x channels per filter row) packs the microkernel better.
constexpr int kWinogradMinChannels = 8;

// The tiles the forward and the input gradient use: kWinogradAuto, 4, 2, or 0 for none (see
// set_winograd).
int g_tiles = kWinogradAuto;

bool takes(const ConvShape& s) {
  return g_tiles != 0 && s.kh == 3 && s.kw == 3 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 &&
         s.ic >= kWinogradMinChannels && s.oc >= kWinogradMinChannels;
}

// Under kWinogradAuto, the tile chosen for each kind of convolution met so far: channels in and
// out, and the output's pixels rounded down to a power of two. Which tile is faster depends on
// the core (with AVX-512 products F(2x2) measured faster on a Zen 5 and F(4x4) on a Xeon for the
// same layers; with AVX2, F(4x4) on a Zen 3) and on the work per call (on the Xeon F(2x2) won at
// batch 1 and F(4x4) at batch 8, at 128² and below). Rounding the size keeps a folder of images
// of many sizes from timing every layer anew for each.
std::mutex g_plans_mutex;
std::unordered_map<uint64_t, int> g_plans;

uint64_t plan_key(long ic, long oc, int size_log2) {
  return (static_cast<uint64_t>(ic) << 40) | (static_cast<uint64_t>(oc & 0xFFFFFF) << 16) |
         static_cast<uint64_t>(size_log2 & 0xFFFF);
}

uint64_t plan_key(const WinoShape& w) {
  int size_log2 = 0;
  for (long pixels = w.n * w.oh * w.ow; pixels > 1; pixels >>= 1) ++size_log2;
  return plan_key(w.ic, w.oc, size_log2);
}

// F(4x4) where the output is large enough that its tiles are mostly whole; F(2x2) on the small
// maps deep in a U-Net, where 4x4 tiles would be mostly padding. Under kWinogradAuto the first
// call of a kind runs each twice, timed, on the call's own inputs and output (no extra memory),
// and the faster one's output is what the call leaves: every call of that kind, this one
// included, computes with the same tile. Timings differ from run to run, so the plans are saved
// and handed to the next process (tilePlans.ts): a kind keeps its tile on this machine, and the
// same labels and seed train the same model again.
template <class... Args>
void forward_conv(const WinoShape& w, Args... args) {
  if (g_tiles == 2 || w.oh < 8 || w.ow < 8) return winograd_conv<F2>(w, args...);
  if (g_tiles == 4) return winograd_conv<F4>(w, args...);
  const uint64_t key = plan_key(w);
  int planned = 0;
  {
    std::lock_guard<std::mutex> lock(g_plans_mutex);
    const auto plan = g_plans.find(key);
    if (plan != g_plans.end()) planned = plan->second;
  }
  if (planned == 4) return winograd_conv<F4>(w, args...);
  if (planned == 2) return winograd_conv<F2>(w, args...);
  auto seconds = [&](auto conv) {
    const auto start = std::chrono::steady_clock::now();
    conv();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double f4 = 1e30, f2 = 1e30;
  for (int round = 0; round < 2; ++round) {
    f4 = std::min(f4, seconds([&] { winograd_conv<F4>(w, args...); }));
    f2 = std::min(f2, seconds([&] { winograd_conv<F2>(w, args...); }));
  }
  const int tile = f4 < f2 ? 4 : 2;
  if (tile == 4) winograd_conv<F4>(w, args...);  // the output holds F(2x2)'s until then
  std::lock_guard<std::mutex> lock(g_plans_mutex);
  g_plans.emplace(key, tile);
}

}  // namespace

long winograd_plans(int* plans, long capacity) {
  std::lock_guard<std::mutex> lock(g_plans_mutex);
  long i = 0;
  for (const auto& [key, tile] : g_plans) {
    if (i < capacity) {
      int* p = plans + 4 * i;
      p[0] = static_cast<int>(key >> 40);
      p[1] = static_cast<int>((key >> 16) & 0xFFFFFF);
      p[2] = static_cast<int>(key & 0xFFFF);
      p[3] = tile;
    }
    ++i;
  }
  return i;
}

bool add_winograd_plan(int ic, int oc, int size_log2, int tile) {
  if ((tile != 2 && tile != 4) || ic <= 0 || oc <= 0 || oc > 0xFFFFFF || size_log2 < 0 || size_log2 > 62) return false;
  std::lock_guard<std::mutex> lock(g_plans_mutex);
  return g_plans.emplace(plan_key(ic, oc, size_log2), tile).second;
}

long winograd_plan_count() {
  std::lock_guard<std::mutex> lock(g_plans_mutex);
  return static_cast<long>(g_plans.size());
}

void set_winograd(int tiles) { g_tiles = tiles == kWinogradAuto || tiles == 4 || tiles == 2 ? tiles : 0; }

int winograd_tiles() { return g_tiles; }

bool conv2d_forward_winograd(const ConvShape& s, const float* x, const float* w, const float* bias, int act,
                             float alpha, float* y) {
  if (!takes(s)) return false;
  forward_conv(WinoShape{s.n, s.ih, s.iw, s.ic, s.oh, s.ow, s.oc, s.pt, s.pl}, FilterView{w, s.ic, s.oc, false}, x,
               bias, act, alpha, y);
  return true;
}

bool conv2d_backprop_input_winograd(const ConvShape& s, const float* dy, const float* w, float* dx) {
  if (!takes(s)) return false;
  // dx[i] = sum over taps k of dy[i + pad - k] w[k]: a convolution of dy with the rotated filter
  // and padding 2 - pad.
  forward_conv(WinoShape{s.n, s.oh, s.ow, s.oc, s.ih, s.iw, s.ic, 2 - s.pt, 2 - s.pl}, FilterView{w, s.ic, s.oc, true},
               dy, static_cast<const float*>(nullptr), static_cast<int>(kActLinear), 0.0f, dx);
  return true;
}

bool conv2d_backprop_filter_winograd(const ConvShape& s, const float* x, const float* dy, float* dw) {
  if (!takes(s)) return false;
  winograd_filter_gradient(WinoShape{s.n, s.ih, s.iw, s.ic, s.oh, s.ow, s.oc, s.pt, s.pl}, x, dy, dw);
  return true;
}

}  // namespace ml
