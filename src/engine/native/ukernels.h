// Register-blocked AVX2/FMA microkernels (6 rows x 16 columns of C in 12 ymm accumulators).
// Internal linkage: included by each AVX2 translation unit that needs them.
#pragma once

#include "simd.h"
#include "ukernel512.h"

namespace ml {
namespace {

constexpr int MR = 6;   // rows of C per microkernel call
constexpr int NR = 16;  // columns of C per packed panel (two ymm)

struct Epilogue {
  const float* bias;  // at the panel's first column; null when none
  int act;
  float alpha;
};

// C[6 x (8*NV)] (+)= A * B where
//   A is given as nseg segments of seglen contiguous floats per row: segment s of row r starts at
//     ap[s * 6 + r] (rows >= mr must still point at readable memory; their results are dropped).
//     This lets convolutions read the image in place: a segment is one filter tap's channel run.
//   B is packed: for each k, 8*NV consecutive floats (32-byte aligned).
//   C row r starts at cp[r]; only the first nc (<= 8*NV) columns and mr rows are written.
// acc: add to C instead of overwriting. ep: applied after accumulation (last K chunk only).
template <int NV>
__attribute__((noinline)) void ukr_rows(int nseg, int seglen, const float* const* ap, const float* b,
                                        float* const* cp, int mr, int nc, bool acc, const Epilogue* ep) {
  static_assert(NV == 1 || NV == 2, "panel width is 8 or 16");
  // Named accumulators rather than an array: every index must be a compile-time constant or GCC
  // keeps them in memory.
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int s = 0; s < nseg; ++s, ap += MR) {
    const float* a0 = ap[0];
    const float* a1 = ap[1];
    const float* a2 = ap[2];
    const float* a3 = ap[3];
    const float* a4 = ap[4];
    const float* a5 = ap[5];
    for (int k = 0; k < seglen; ++k) {
      const __m256 b0 = _mm256_load_ps(b);
      const __m256 b1 = NV == 2 ? _mm256_load_ps(b + 8) : b0;
      b += 8 * NV;
      __m256 t;
#define ML_ROW(R)                                  \
  t = _mm256_broadcast_ss(a##R + k);               \
  c##R##0 = _mm256_fmadd_ps(t, b0, c##R##0);       \
  if (NV == 2) c##R##1 = _mm256_fmadd_ps(t, b1, c##R##1);
      ML_ROW(0) ML_ROW(1) ML_ROW(2) ML_ROW(3) ML_ROW(4) ML_ROW(5)
#undef ML_ROW
    }
  }
  const bool full = nc == 8 * NV;
  const __m256i m0 = tail_mask(nc < 8 ? nc : 8);
  const __m256i m1 = tail_mask(nc > 8 ? nc - 8 : 0);
  __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
  if (ep && ep->bias) {
    bias0 = _mm256_maskload_ps(ep->bias, m0);
    if (NV == 2) bias1 = _mm256_maskload_ps(ep->bias + 8, m1);
  }
  const int act = ep ? ep->act : kActLinear;
  const __m256 alpha = _mm256_set1_ps(ep ? ep->alpha : 0.0f);
  auto store = [&](float* c, __m256 v0, __m256 v1) __attribute__((always_inline)) {
    if (acc) {
      v0 = _mm256_add_ps(v0, full ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, m0));
      if (NV == 2) v1 = _mm256_add_ps(v1, full ? _mm256_loadu_ps(c + 8) : _mm256_maskload_ps(c + 8, m1));
    }
    if (ep) {
      v0 = activate(_mm256_add_ps(v0, bias0), act, alpha);
      if (NV == 2) v1 = activate(_mm256_add_ps(v1, bias1), act, alpha);
    }
    if (full) {
      _mm256_storeu_ps(c, v0);
      if (NV == 2) _mm256_storeu_ps(c + 8, v1);
    } else {
      // Not vmaskmovps: its store form is microcoded and very slow on AMD Zen.
      alignas(32) float tile[16];
      _mm256_store_ps(tile, v0);
      if (NV == 2) _mm256_store_ps(tile + 8, v1);
      store_partial(c, tile, nc);
    }
  };
  store(cp[0], c00, c01);
  if (mr > 1) store(cp[1], c10, c11);
  if (mr > 2) store(cp[2], c20, c21);
  if (mr > 3) store(cp[3], c30, c31);
  if (mr > 4) store(cp[4], c40, c41);
  if (mr > 5) store(cp[5], c50, c51);
}

// C[R x (8*NV)] += sum over a 2-D walk (nrows x ncols steps) of outer products a (x) b, where
// a = R consecutive floats and b = 8*NV consecutive floats (masked to nc when MASKED). Both
// operands are read in place with independent column/row strides, which is what a filter
// gradient needs: a walks the input image, b walks dy, and the reduction runs over pixels.
template <int R, int NV, bool MASKED>
inline void ukr_outer(int nrows, int ncols, const float* a, long a_cs, long a_rs, const float* b,
                      long b_cs, long b_rs, float* c, long ldc, int nc) {
  __m256 c0[R], c1[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    c0[r] = _mm256_setzero_ps();
    c1[r] = _mm256_setzero_ps();
  }
  const __m256i m0 = tail_mask(nc < 8 ? nc : 8);
  const __m256i m1 = tail_mask(nc > 8 ? nc - 8 : 0);
  for (int y = 0; y < nrows; ++y) {
    const float* pa = a + y * a_rs;
    const float* pb = b + y * b_rs;
    for (int x = 0; x < ncols; ++x, pa += a_cs, pb += b_cs) {
      __m256 b0 = MASKED ? _mm256_maskload_ps(pb, m0) : _mm256_loadu_ps(pb);
      __m256 b1 = b0;
      if (NV == 2) b1 = MASKED ? _mm256_maskload_ps(pb + 8, m1) : _mm256_loadu_ps(pb + 8);
#pragma GCC unroll 6
      for (int r = 0; r < R; ++r) {
        __m256 t = _mm256_broadcast_ss(pa + r);
        c0[r] = _mm256_fmadd_ps(t, b0, c0[r]);
        if (NV == 2) c1[r] = _mm256_fmadd_ps(t, b1, c1[r]);
      }
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    float* pc = c + r * ldc;
    if (MASKED) {
      alignas(32) float tile[16];
      _mm256_store_ps(tile, c0[r]);
      if (NV == 2) _mm256_store_ps(tile + 8, c1[r]);
      for (int j = 0; j < nc; ++j) tile[j] += pc[j];
      store_partial(pc, tile, nc);
    } else {
      _mm256_storeu_ps(pc, _mm256_add_ps(c0[r], _mm256_loadu_ps(pc)));
      if (NV == 2) _mm256_storeu_ps(pc + 8, _mm256_add_ps(c1[r], _mm256_loadu_ps(pc + 8)));
    }
  }
}

// Dispatches ukr_outer on a runtime row count (1..6) and column count (1..16).
inline void outer_block(int rows, int nc, int nrows, int ncols, const float* a, long a_cs, long a_rs,
                        const float* b, long b_cs, long b_rs, float* c, long ldc) {
#define ML_CASE(R)                                                                                   \
  case R:                                                                                            \
    if (nc == 16) ukr_outer<R, 2, false>(nrows, ncols, a, a_cs, a_rs, b, b_cs, b_rs, c, ldc, nc);    \
    else if (nc > 8) ukr_outer<R, 2, true>(nrows, ncols, a, a_cs, a_rs, b, b_cs, b_rs, c, ldc, nc);  \
    else if (nc == 8) ukr_outer<R, 1, false>(nrows, ncols, a, a_cs, a_rs, b, b_cs, b_rs, c, ldc, nc); \
    else ukr_outer<R, 1, true>(nrows, ncols, a, a_cs, a_rs, b, b_cs, b_rs, c, ldc, nc);              \
    break;
  switch (rows) {
    ML_CASE(1) ML_CASE(2) ML_CASE(3) ML_CASE(4) ML_CASE(5) ML_CASE(6)
    default:
      break;
  }
#undef ML_CASE
}

// B packed in panels of NR columns; the last panel is 8 wide when at most 8 columns remain.
// Panel j starts at data + j * K * NR; within it, row k is at k * width.
struct PackedB {
  float* data = nullptr;
  int K = 0, N = 0, npanels = 0;
  int width(int j) const {
    int rem = N - j * NR;
    return rem >= NR ? NR : (rem > 8 ? NR : 8);
  }
  int cols(int j) const {
    int rem = N - j * NR;
    return rem >= NR ? NR : rem;
  }
  const float* panel(int j) const { return data + static_cast<long>(j) * K * NR; }
  static long floats(int K, int N) { return static_cast<long>(ceil_div(N, NR)) * K * NR; }
};

// Packs B where element (k, n) is krow[k][n * col_stride]. dst holds PackedB::floats(K, N).
// Large B (deep layers: up to 1152 x 128, read with a column stride for the input gradient) is
// packed panel-parallel, so that it is no serial step between parallel GEMMs.
inline PackedB pack_b(const float* const* krow, long col_stride, int K, int N, float* dst) {
  PackedB pb;
  pb.data = dst;
  pb.K = K;
  pb.N = N;
  pb.npanels = static_cast<int>(ceil_div(N, NR));
  auto pack_panel = [&](long j, int) {
    float* p = dst + j * K * NR;
    const int w = pb.width(static_cast<int>(j)), nc = pb.cols(static_cast<int>(j));
    const long n0 = j * NR;
    for (int k = 0; k < K; ++k) {
      const float* src = krow[k] + n0 * col_stride;
      float* d = p + static_cast<long>(k) * w;
      if (col_stride == 1) {
        std::memcpy(d, src, sizeof(float) * nc);
      } else {
        for (int n = 0; n < nc; ++n) d[n] = src[n * col_stride];
      }
      for (int n = nc; n < w; ++n) d[n] = 0.0f;
    }
  };
  if (static_cast<long>(K) * N >= (1L << 16) && pb.npanels > 1) {
    parallel_for(pb.npanels, pack_panel);
  } else {
    for (int j = 0; j < pb.npanels; ++j) pack_panel(j, 0);
  }
  return pb;
}

inline void ukr_rows_dispatch(int width, int nseg, int seglen, const float* const* ap,
                              const float* b, float* const* cp, int mr, int nc, bool acc,
                              const Epilogue* ep) {
  // 16-column panels go to the AVX-512 kernel where it runs (it has no sigmoid epilogue).
  if (width == 16 && avx512_active && !(ep && ep->act == kActSigmoid)) {
    ukr_rows16_avx512(nseg, seglen, ap, b, cp, mr, nc, acc, ep ? ep->bias : nullptr, ep ? ep->act : kActLinear,
                      ep ? ep->alpha : 0.0f);
  } else if (width == 16) ukr_rows<2>(nseg, seglen, ap, b, cp, mr, nc, acc, ep);
  else ukr_rows<1>(nseg, seglen, ap, b, cp, mr, nc, acc, ep);
}

}  // namespace
}  // namespace ml
