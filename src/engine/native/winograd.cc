// 3x3 convolutions with stride 1 by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2016).
//
// Each 2x2 block of outputs ("tile") is computed from the 4x4 input patch under it:
//   Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A
// so that the channel reduction becomes 16 independent GEMMs, one per point xi of the 4x4
// transform domain: M[xi][tile][cout] = sum over cin of V[xi][tile][cin] * U[xi][cin][cout]. That is
// 16 multiply-adds per 4 outputs where direct convolution needs 36: 2.25x fewer. The transforms
// only add and subtract (G has halves), so the result stays within a few ulp of the direct sum.
//
// Tiles are processed in blocks small enough that a block's V and M stay in L2: input transform,
// the 16 GEMMs on the shared microkernel, output transform with bias and activation, then the
// next block. Each output is computed by exactly one block in a fixed order, so results are
// bit-identical for every thread count.
//
// The input gradient of a stride-1 3x3 convolution is itself one (of dy, with the filter rotated
// by 180 degrees and its channel axes swapped, and padding 2 - pad), so it shares the forward
// code. The filter gradient is the forward's adjoint: the same input transform, dy taken back
// through the output transform's transpose, and a GEMM per transform point that sums over tiles.
#include <cstring>

#include "driver.h"
#include "kernels.h"

namespace ml {
namespace {

// K (input channels) per GEMM pass: keeps a packed B panel (K x 16) within L1.
constexpr long kWinoChunkK = 512;
// Floats of V and M one block may hold: well within a 512 KB L2 next to B panels.
constexpr long kBlockFloats = 1L << 16;

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

// U[xi][ci][co] = (G g G^T)[xi] for G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]].
void transform_filter(const FilterView& f, long ic, long oc, float* u) {
  parallel_for(ic, [&](long ci, int) {
    for (long co = 0; co < oc; ++co) {
      float g[3][3], t[4][3];
      for (int kh = 0; kh < 3; ++kh)
        for (int kw = 0; kw < 3; ++kw) g[kh][kw] = f.at(kh, kw, ci, co);
      for (int j = 0; j < 3; ++j) {
        t[0][j] = g[0][j];
        t[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
        t[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
        t[3][j] = g[2][j];
      }
      for (int i = 0; i < 4; ++i) {
        const float r[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]), t[i][2]};
        for (int j = 0; j < 4; ++j) u[((i * 4 + j) * ic + ci) * oc + co] = r[j];
      }
    }
  });
}

// B^T d B for B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], on any type with
// + and - (8 channels in a vector, or one float for the channel tail).
template <class T, class Add, class Sub>
inline void input_transform(const T d[4][4], T v[16], Add add, Sub sub) {
  T e[4][4];
  for (int j = 0; j < 4; ++j) {
    e[0][j] = sub(d[0][j], d[2][j]);
    e[1][j] = add(d[1][j], d[2][j]);
    e[2][j] = sub(d[2][j], d[1][j]);
    e[3][j] = sub(d[1][j], d[3][j]);
  }
  for (int i = 0; i < 4; ++i) {
    v[i * 4 + 0] = sub(e[i][0], e[i][2]);
    v[i * 4 + 1] = add(e[i][1], e[i][2]);
    v[i * 4 + 2] = sub(e[i][2], e[i][1]);
    v[i * 4 + 3] = sub(e[i][1], e[i][3]);
  }
}

// A^T m A for A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].
template <class T, class Add, class Sub>
inline void output_transform(const T m[16], T y[2][2], Add add, Sub sub) {
  T s[2][4];
  for (int j = 0; j < 4; ++j) {
    s[0][j] = add(add(m[j], m[4 + j]), m[8 + j]);
    s[1][j] = sub(sub(m[4 + j], m[8 + j]), m[12 + j]);
  }
  for (int i = 0; i < 2; ++i) {
    y[i][0] = add(add(s[i][0], s[i][1]), s[i][2]);
    y[i][1] = sub(sub(s[i][1], s[i][2]), s[i][3]);
  }
}

// A e A^T for A = [[1, 0], [1, 1], [1, -1], [0, -1]]: a 2x2 block of output gradients taken back
// to the transform domain (the adjoint of output_transform).
template <class T, class Add, class Sub>
inline void gradient_transform(const T e[2][2], T w[16], T zero, Add add, Sub sub) {
  T r[4][2];
  for (int j = 0; j < 2; ++j) {
    r[0][j] = e[0][j];
    r[1][j] = add(e[0][j], e[1][j]);
    r[2][j] = sub(e[0][j], e[1][j]);
    r[3][j] = sub(zero, e[1][j]);
  }
  for (int i = 0; i < 4; ++i) {
    w[i * 4 + 0] = r[i][0];
    w[i * 4 + 1] = add(r[i][0], r[i][1]);
    w[i * 4 + 2] = sub(r[i][0], r[i][1]);
    w[i * 4 + 3] = sub(zero, r[i][1]);
  }
}

const auto vadd = [](__m256 a, __m256 b) { return _mm256_add_ps(a, b); };
const auto vsub = [](__m256 a, __m256 b) { return _mm256_sub_ps(a, b); };
const auto fadd = [](float a, float b) { return a + b; };
const auto fsub = [](float a, float b) { return a - b; };

// V[xi][t - t0][ci] = (B^T d B)[xi] for the 4x4 input patch d under each tile t in [t0, t1); V
// holds `stride` tiles per transform point.
void transform_input_block(const WinoShape& s, const float* x, long t0, long t1, long stride, float* V) {
  const long ic = s.ic, c8 = ic / 8 * 8;
  const long th = ceil_div(s.oh, 2), tw = ceil_div(s.ow, 2);
  for (long t = t0; t < t1; ++t) {
    const long n = t / (th * tw), r = t % (th * tw);
    const long iy0 = (r / tw) * 2 - s.pt, ix0 = (r % tw) * 2 - s.pl;
    const float* img = x + n * s.ih * s.iw * ic;
    const float* pix[4][4];  // null where the patch leaves the image (zero padding)
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const long yy = iy0 + i, xx = ix0 + j;
        pix[i][j] = yy >= 0 && yy < s.ih && xx >= 0 && xx < s.iw ? img + (yy * s.iw + xx) * ic : nullptr;
      }
    float* vt = V + (t - t0) * ic;
    long c = 0;
    for (; c < c8; c += 8) {
      __m256 d[4][4], v[16];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) d[i][j] = pix[i][j] ? _mm256_loadu_ps(pix[i][j] + c) : _mm256_setzero_ps();
      input_transform(d, v, vadd, vsub);
      for (int xi = 0; xi < 16; ++xi) _mm256_storeu_ps(vt + xi * stride * ic + c, v[xi]);
    }
    for (; c < ic; ++c) {
      float d[4][4], v[16];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) d[i][j] = pix[i][j] ? pix[i][j][c] : 0.0f;
      input_transform(d, v, fadd, fsub);
      for (int xi = 0; xi < 16; ++xi) vt[xi * stride * ic + c] = v[xi];
    }
  }
}

void winograd_conv(const WinoShape& s, const FilterView& f, const float* x, const float* bias, int act,
                   float alpha, float* y) {
  const long ic = s.ic, oc = s.oc;
  const long th = ceil_div(s.oh, 2), tw = ceil_div(s.ow, 2);
  const long ntiles = s.n * th * tw;
  if (ntiles == 0 || oc == 0) return;
  const int nt = pool_size();

  // Transformed filter, packed per transform point for the microkernel.
  Scratch umem(16 * ic * oc + 16);
  transform_filter(f, ic, oc, umem.p);
  const long pb_floats = PackedB::floats(static_cast<int>(ic), static_cast<int>(oc));
  Scratch bmem(16 * pb_floats + 16);
  PackedB pb[16];
  {
    const float** krow = new const float*[ic];
    for (int xi = 0; xi < 16; ++xi) {
      for (long ci = 0; ci < ic; ++ci) krow[ci] = umem.p + (xi * ic + ci) * oc;
      pb[xi] = pack_b(krow, 1, static_cast<int>(ic), static_cast<int>(oc), bmem.p + xi * pb_floats);
    }
    delete[] krow;
  }

  // Tiles per block: V and M within kBlockFloats, a whole number of microkernel rows, and at
  // least four blocks per thread when the layer is small enough to need it.
  long tb = max_l(MR, kBlockFloats / (16 * (ic + oc)) / MR * MR);
  tb = min_l(tb, max_l(MR, ceil_div(ceil_div(ntiles, 4L * nt), MR) * MR));
  const long nblocks = ceil_div(ntiles, tb);
  const long v_floats = 16 * tb * ic, m_floats = 16 * tb * oc;
  Scratch work((v_floats + m_floats) * nt + 16);
  const int nchunks = static_cast<int>(ceil_div(ic, kWinoChunkK));
  const long o8 = oc / 8 * 8;
  const __m256 valpha = _mm256_set1_ps(alpha);

  parallel_for(nblocks, [&](long block, int thread) {
    float* V = work.p + thread * (v_floats + m_floats);
    float* M = V + v_floats;
    const long t0 = block * tb, t1 = min_l(ntiles, t0 + tb);

    transform_input_block(s, x, t0, t1, tb, V);

    // The 16 GEMMs: M[xi] (tiles x oc) = V[xi] (tiles x ic) * U[xi] (ic x oc).
    const long rows = t1 - t0;
    for (int xi = 0; xi < 16; ++xi) {
      const float* vx = V + xi * tb * ic;
      float* mx = M + xi * tb * oc;
      for (int chunk = 0; chunk < nchunks; ++chunk) {
        const long k0 = chunk * kWinoChunkK;
        const int klen = static_cast<int>(min_l(kWinoChunkK, ic - k0));
        for (int p = 0; p < pb[xi].npanels; ++p) {
          const float* b = pb[xi].panel(p) + k0 * pb[xi].width(p);
          for (long m = 0; m < rows; m += MR) {
            const int mr = static_cast<int>(min_l(MR, rows - m));
            const float* ap[MR];
            float* cp[MR];
            for (int r = 0; r < MR; ++r) {
              const long row = r < mr ? m + r : m;  // rows past the block repeat a valid one
              ap[r] = vx + row * ic + k0;
              cp[r] = mx + row * oc + static_cast<long>(p) * NR;
            }
            ukr_rows_dispatch(pb[xi].width(p), 1, klen, ap, b, cp, mr, pb[xi].cols(p), chunk > 0, nullptr);
          }
        }
      }
    }

    // Output transform, bias and activation: y at the tile's (up to) 2x2 outputs.
    for (long t = t0; t < t1; ++t) {
      const long n = t / (th * tw), r = t % (th * tw);
      const long oy0 = (r / tw) * 2, ox0 = (r % tw) * 2;
      const bool in[2][2] = {{true, ox0 + 1 < s.ow}, {oy0 + 1 < s.oh, oy0 + 1 < s.oh && ox0 + 1 < s.ow}};
      float* out[2][2];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) out[i][j] = y + ((n * s.oh + oy0 + i) * s.ow + ox0 + j) * oc;
      const float* mt = M + (t - t0) * oc;
      long c = 0;
      for (; c < o8; c += 8) {
        __m256 m[16], v[2][2];
        for (int xi = 0; xi < 16; ++xi) m[xi] = _mm256_loadu_ps(mt + xi * tb * oc + c);
        output_transform(m, v, vadd, vsub);
        const __m256 b = bias ? _mm256_loadu_ps(bias + c) : _mm256_setzero_ps();
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 2; ++j)
            if (in[i][j]) _mm256_storeu_ps(out[i][j] + c, activate(_mm256_add_ps(v[i][j], b), act, valpha));
      }
      for (; c < oc; ++c) {
        float m[16], v[2][2];
        for (int xi = 0; xi < 16; ++xi) m[xi] = mt[xi * tb * oc + c];
        output_transform(m, v, fadd, fsub);
        const float b = bias ? bias[c] : 0.0f;
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 2; ++j)
            if (in[i][j]) out[i][j][c] = activate1(v[i][j] + b, act, alpha);
      }
    }
  }, nt);
}

// W[xi][t - t0][co] = (A e A^T)[xi] for the 2x2 block e of dy (zero beyond the output) of each
// tile t in [t0, t1); W holds `stride` tiles per transform point.
void transform_gradient_block(const WinoShape& s, const float* dy, long t0, long t1, long stride, float* W) {
  const long oc = s.oc, o8 = oc / 8 * 8;
  const long th = ceil_div(s.oh, 2), tw = ceil_div(s.ow, 2);
  for (long t = t0; t < t1; ++t) {
    const long n = t / (th * tw), r = t % (th * tw);
    const long oy0 = (r / tw) * 2, ox0 = (r % tw) * 2;
    const float* pix[2][2];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        pix[i][j] = oy0 + i < s.oh && ox0 + j < s.ow ? dy + ((n * s.oh + oy0 + i) * s.ow + ox0 + j) * oc : nullptr;
    float* wt = W + (t - t0) * oc;
    long c = 0;
    for (; c < o8; c += 8) {
      __m256 e[2][2], w[16];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) e[i][j] = pix[i][j] ? _mm256_loadu_ps(pix[i][j] + c) : _mm256_setzero_ps();
      gradient_transform(e, w, _mm256_setzero_ps(), vadd, vsub);
      for (int xi = 0; xi < 16; ++xi) _mm256_storeu_ps(wt + xi * stride * oc + c, w[xi]);
    }
    for (; c < oc; ++c) {
      float e[2][2], w[16];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) e[i][j] = pix[i][j] ? pix[i][j][c] : 0.0f;
      gradient_transform(e, w, 0.0f, fadd, fsub);
      for (int xi = 0; xi < 16; ++xi) wt[xi * stride * oc + c] = w[xi];
    }
  }
}

// The filter gradient, the adjoint of winograd_conv: dU[xi] = sum over tiles of V[xi]^T W[xi] (16
// GEMMs whose reduction runs over the tiles), then dw = G^T dU G per channel pair. As in the
// direct kernel, the reduction is split in chunks fixed by the problem, each summed into its own
// partial, and the partials added in a fixed order: bit-identical for any pool of up to 4 threads.
void winograd_filter_gradient(const WinoShape& s, const float* x, const float* dy, float* dw) {
  const long ic = s.ic, oc = s.oc, usize = 16 * ic * oc;
  const long th = ceil_div(s.oh, 2), tw = ceil_div(s.ow, 2);
  const long ntiles = s.n * th * tw;
  const int nt = pool_size();
  // Tiles per block from the cache alone (never the thread count: it fixes the summation order).
  const long tb = max_l(MR, kBlockFloats / (16 * (ic + oc)) / MR * MR);
  const long nblocks = ceil_div(ntiles, tb);
  const long nchunks = max_l(1, min_l(nblocks, max_l(8, 2L * nt)));
  Scratch partial(nchunks * usize + 16);
  const long v_floats = 16 * tb * ic, w_floats = 16 * tb * oc;
  Scratch work((v_floats + w_floats) * nt + 16);

  parallel_for(nchunks, [&](long chunk, int thread) {
    float* part = partial.p + chunk * usize;
    std::memset(part, 0, sizeof(float) * usize);
    float* V = work.p + thread * (v_floats + w_floats);
    float* W = V + v_floats;
    for (long b = chunk * nblocks / nchunks; b < (chunk + 1) * nblocks / nchunks; ++b) {
      const long t0 = b * tb, t1 = min_l(ntiles, t0 + tb);
      transform_input_block(s, x, t0, t1, tb, V);
      transform_gradient_block(s, dy, t0, t1, tb, W);
      const int rows = static_cast<int>(t1 - t0);
      for (int xi = 0; xi < 16; ++xi) {
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
      float u[4][4];
      for (int xi = 0; xi < 16; ++xi) {
        const long at = (xi * ic + ci) * oc + co;
        float acc = partial.p[at];
        for (long c = 1; c < nchunks; ++c) acc += partial.p[c * usize + at];
        u[xi / 4][xi % 4] = acc;
      }
      float t[3][4];
      for (int j = 0; j < 4; ++j) {
        t[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
        t[1][j] = 0.5f * (u[1][j] - u[2][j]);
        t[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
      }
      for (int i = 0; i < 3; ++i) {
        float* d = dw + (static_cast<long>(i) * 3 * ic + ci) * oc + co;
        d[0] = t[i][0] + 0.5f * (t[i][1] + t[i][2]);
        d[ic * oc] = 0.5f * (t[i][1] - t[i][2]);
        d[2 * ic * oc] = 0.5f * (t[i][1] + t[i][2]) + t[i][3];
      }
    }
  });
}

// Below this many channels on either side the transforms cost more than the multiplications they
// save, and the direct kernel's K (3 x channels per filter row) packs the microkernel better.
constexpr int kWinogradMinChannels = 8;

bool g_winograd_enabled = true;

}  // namespace

void set_winograd(bool enabled) { g_winograd_enabled = enabled; }

bool conv2d_forward_winograd(const ConvShape& s, const float* x, const float* w, const float* bias, int act,
                             float alpha, float* y) {
  if (!g_winograd_enabled || s.kh != 3 || s.kw != 3 || s.sh != 1 || s.sw != 1 || s.dh != 1 || s.dw != 1 ||
      s.ic < kWinogradMinChannels || s.oc < kWinogradMinChannels)
    return false;
  winograd_conv(WinoShape{s.n, s.ih, s.iw, s.ic, s.oh, s.ow, s.oc, s.pt, s.pl}, FilterView{w, s.ic, s.oc, false}, x,
                bias, act, alpha, y);
  return true;
}

bool conv2d_backprop_input_winograd(const ConvShape& s, const float* dy, const float* w, float* dx) {
  if (!g_winograd_enabled || s.kh != 3 || s.kw != 3 || s.sh != 1 || s.sw != 1 || s.ic < kWinogradMinChannels ||
      s.oc < kWinogradMinChannels)
    return false;
  // dx[i] = sum over taps k of dy[i + pad - k] w[k]: a convolution of dy with the rotated filter
  // and padding 2 - pad.
  winograd_conv(WinoShape{s.n, s.oh, s.ow, s.oc, s.ih, s.iw, s.ic, 2 - s.pt, 2 - s.pl},
                FilterView{w, s.ic, s.oc, true}, dy, nullptr, kActLinear, 0.0f, dx);
  return true;
}

bool conv2d_backprop_filter_winograd(const ConvShape& s, const float* x, const float* dy, float* dw) {
  if (!g_winograd_enabled || s.kh != 3 || s.kw != 3 || s.sh != 1 || s.sw != 1 || s.dh != 1 || s.dw != 1 ||
      s.ic < kWinogradMinChannels || s.oc < kWinogradMinChannels)
    return false;
  winograd_filter_gradient(WinoShape{s.n, s.ih, s.iw, s.ic, s.oh, s.ow, s.oc, s.pt, s.pl}, x, dy, dw);
  return true;
}

}  // namespace ml
