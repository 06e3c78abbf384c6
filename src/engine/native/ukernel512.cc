// AVX-512F version of the GEMM microkernel (see ukernels.h). On CPUs with full-width 512-bit FMA
// units (AMD Zen 5, Intel server cores) it issues half the instructions of the AVX2 kernel for the
// same work, which is where Winograd's transform-domain products and the direct convolutions
// spend their time. Only this file is built with -mavx512f; the glue decides at run time whether
// it is called.
#include "ukernel512.h"

#include "kernels.h"

#include <immintrin.h>

namespace ml {

bool avx512_active = false;

void set_avx512(bool on) { avx512_active = on; }

namespace {

constexpr int kRows = 6;  // MR of ukernels.h: the A-operand layout is shared

// Activation codes of simd.h (kActLinear 0, kActRelu 1, kActRelu6 2, kActLeaky 3).
inline __m512 activate512(__m512 v, int act, __m512 alpha) {
  switch (act) {
    case 1:
      return _mm512_max_ps(_mm512_setzero_ps(), v);
    case 2:
      return _mm512_min_ps(_mm512_max_ps(_mm512_setzero_ps(), v), _mm512_set1_ps(6.0f));
    case 3: {
      const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
      return _mm512_mask_mul_ps(v, neg, v, alpha);
    }
    default:
      return v;
  }
}

}  // namespace

void ukr_rows16_avx512(int nseg, int seglen, const float* const* ap, const float* b, float* const* cp, int mr,
                       int nc, bool acc, const float* bias, int act, float alpha) {
  // Two sets of six accumulators, for even and odd k: twelve independent FMA chains keep both
  // FMA pipes busy through the FMA latency, as the AVX2 kernel's two columns of ymm do.
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  __m512 d0 = c0, d1 = c0, d2 = c0, d3 = c0, d4 = c0, d5 = c0;
  for (int s = 0; s < nseg; ++s, ap += kRows) {
    const float* a0 = ap[0];
    const float* a1 = ap[1];
    const float* a2 = ap[2];
    const float* a3 = ap[3];
    const float* a4 = ap[4];
    const float* a5 = ap[5];
    int k = 0;
    for (; k + 1 < seglen; k += 2, b += 32) {
      const __m512 b0 = _mm512_loadu_ps(b);
      const __m512 b1 = _mm512_loadu_ps(b + 16);
      c0 = _mm512_fmadd_ps(_mm512_set1_ps(a0[k]), b0, c0);
      c1 = _mm512_fmadd_ps(_mm512_set1_ps(a1[k]), b0, c1);
      c2 = _mm512_fmadd_ps(_mm512_set1_ps(a2[k]), b0, c2);
      c3 = _mm512_fmadd_ps(_mm512_set1_ps(a3[k]), b0, c3);
      c4 = _mm512_fmadd_ps(_mm512_set1_ps(a4[k]), b0, c4);
      c5 = _mm512_fmadd_ps(_mm512_set1_ps(a5[k]), b0, c5);
      d0 = _mm512_fmadd_ps(_mm512_set1_ps(a0[k + 1]), b1, d0);
      d1 = _mm512_fmadd_ps(_mm512_set1_ps(a1[k + 1]), b1, d1);
      d2 = _mm512_fmadd_ps(_mm512_set1_ps(a2[k + 1]), b1, d2);
      d3 = _mm512_fmadd_ps(_mm512_set1_ps(a3[k + 1]), b1, d3);
      d4 = _mm512_fmadd_ps(_mm512_set1_ps(a4[k + 1]), b1, d4);
      d5 = _mm512_fmadd_ps(_mm512_set1_ps(a5[k + 1]), b1, d5);
    }
    if (k < seglen) {
      const __m512 b0 = _mm512_loadu_ps(b);
      b += 16;
      c0 = _mm512_fmadd_ps(_mm512_set1_ps(a0[k]), b0, c0);
      c1 = _mm512_fmadd_ps(_mm512_set1_ps(a1[k]), b0, c1);
      c2 = _mm512_fmadd_ps(_mm512_set1_ps(a2[k]), b0, c2);
      c3 = _mm512_fmadd_ps(_mm512_set1_ps(a3[k]), b0, c3);
      c4 = _mm512_fmadd_ps(_mm512_set1_ps(a4[k]), b0, c4);
      c5 = _mm512_fmadd_ps(_mm512_set1_ps(a5[k]), b0, c5);
    }
  }
  const __mmask16 mask = static_cast<__mmask16>(nc >= 16 ? 0xFFFF : (1u << nc) - 1);
  const __m512 vbias = bias ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps();
  const __m512 valpha = _mm512_set1_ps(alpha);
  auto store = [&](float* c, __m512 v) __attribute__((always_inline)) {
    if (acc) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, c));
    v = activate512(_mm512_add_ps(v, vbias), act, valpha);
    _mm512_mask_storeu_ps(c, mask, v);
  };
  store(cp[0], _mm512_add_ps(c0, d0));
  if (mr > 1) store(cp[1], _mm512_add_ps(c1, d1));
  if (mr > 2) store(cp[2], _mm512_add_ps(c2, d2));
  if (mr > 3) store(cp[3], _mm512_add_ps(c3, d3));
  if (mr > 4) store(cp[4], _mm512_add_ps(c4, d4));
  if (mr > 5) store(cp[5], _mm512_add_ps(c5, d5));
}

}  // namespace ml
