// Elementwise ops, sums and row copies: memory-bound kernels on the training path (activations,
// their gradients, bias gradients, skip-connection concat and its split).
#include <cmath>
#include <cstring>

#include "kernels.h"
#include "simd.h"

namespace ml {
namespace {

// Elements per task: big enough to amortise dispatch, small enough to split a 1 MB tensor.
constexpr long kGrain = 1L << 15;

template <class F>
void for_blocks(long size, F&& f) {
  if (size <= kGrain) {
    f(0, size);
    return;
  }
  parallel_for(ceil_div(size, kGrain), [&](long t, int) { f(t * kGrain, min_l(size, (t + 1) * kGrain)); });
}

inline __m256 nan_if_unordered(__m256 r, __m256 a, __m256 b) {
  return _mm256_blendv_ps(r, _mm256_set1_ps(__builtin_nanf("")), _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
}

template <int OP>
inline __m256 unary_v(__m256 x, __m256 alpha) {
  switch (OP) {
    case U_RELU: return _mm256_max_ps(_mm256_setzero_ps(), x);  // NaN stays NaN, as Math.max
    case U_RELU6: {
      __m256 r = _mm256_min_ps(_mm256_max_ps(_mm256_setzero_ps(), x), _mm256_set1_ps(6.0f));
      return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    }
    case U_LEAKYRELU:
      return _mm256_blendv_ps(x, _mm256_mul_ps(x, alpha), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
    case U_SIGMOID: return sigmoid256(x);
    case U_STEP: {
      __m256 r = _mm256_blendv_ps(alpha, _mm256_set1_ps(1.0f), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ));
      return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    }
    case U_NEG: return _mm256_xor_ps(x, _mm256_set1_ps(-0.0f));
    case U_EXP: return exp256(x);
    case U_SQUARE: return _mm256_mul_ps(x, x);
    case U_ABS: return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    case U_SQRT: return _mm256_sqrt_ps(x);
    case U_RSQRT: return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_sqrt_ps(x));
    case U_RECIPROCAL: return _mm256_div_ps(_mm256_set1_ps(1.0f), x);
    default: return x;
  }
}

// y[i] = op(x[i]) for i in [i0, i1), on this thread.
template <int OP>
inline void unary_span(const float* x, float* y, long i0, long i1, __m256 va) {
  long i = i0;
  for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(y + i, unary_v<OP>(_mm256_loadu_ps(x + i), va));
  if (i < i1) {
    const __m256i m = tail_mask(static_cast<int>(i1 - i));
    store_tail(y + i, unary_v<OP>(_mm256_maskload_ps(x + i, m), va), static_cast<int>(i1 - i));
  }
}

template <int OP>
void unary_t(const float* x, float* y, long size, float alpha) {
  const __m256 va = _mm256_set1_ps(alpha);
  for_blocks(size, [&](long i0, long i1) { unary_span<OP>(x, y, i0, i1, va); });
}

template <int OP>
inline __m256 binary_v(__m256 a, __m256 b) {
  switch (OP) {
    case B_ADD: return _mm256_add_ps(a, b);
    case B_SUB: return _mm256_sub_ps(a, b);
    case B_MUL: return _mm256_mul_ps(a, b);
    case B_DIV: return _mm256_div_ps(a, b);
    case B_MAX: return nan_if_unordered(_mm256_max_ps(a, b), a, b);
    case B_MIN: return nan_if_unordered(_mm256_min_ps(a, b), a, b);
    case B_SQDIFF: {
      __m256 d = _mm256_sub_ps(a, b);
      return _mm256_mul_ps(d, d);
    }
    default: return a;
  }
}

// One row segment [i0, i1) of a row of `inner` elements; a/b already point at the row (or at the
// broadcast vector, indexed the same way).
template <int OP>
inline void binary_span(const float* a, const float* b, float* out, long i0, long i1, bool a_scalar,
                        bool b_scalar) {
  const __m256 as = _mm256_set1_ps(a[0]), bs = _mm256_set1_ps(b[0]);
  long i = i0;
  for (; i + 8 <= i1; i += 8) {
    __m256 va = a_scalar ? as : _mm256_loadu_ps(a + i);
    __m256 vb = b_scalar ? bs : _mm256_loadu_ps(b + i);
    _mm256_storeu_ps(out + i, binary_v<OP>(va, vb));
  }
  if (i < i1) {
    const __m256i m = tail_mask(static_cast<int>(i1 - i));
    __m256 va = a_scalar ? as : _mm256_maskload_ps(a + i, m);
    __m256 vb = b_scalar ? bs : _mm256_maskload_ps(b + i, m);
    store_tail(out + i, binary_v<OP>(va, vb), static_cast<int>(i1 - i));
  }
}

template <int OP>
void binary_t(const float* a, const float* b, float* out, long rows, long inner, int a_layout, int b_layout) {
  // An operand holding a single value is a scalar, whatever its layout.
  const bool a_scalar = (a_layout == L_ROW && inner == 1) || (a_layout == L_COLUMN && rows == 1);
  const bool b_scalar = (b_layout == L_ROW && inner == 1) || (b_layout == L_COLUMN && rows == 1);
  if (a_scalar || b_scalar || (a_layout == L_FULL && b_layout == L_FULL)) {
    // Flat: treat everything as one row of rows * inner elements.
    const long size = rows * inner;
    for_blocks(size, [&](long i0, long i1) { binary_span<OP>(a, b, out, i0, i1, a_scalar, b_scalar); });
    return;
  }
  auto row_of = [inner](const float* x, int layout, long r) {
    return layout == L_ROW ? x : layout == L_COLUMN ? x + r : x + r * inner;
  };
  const long per = max_l(1, kGrain / max_l(1, inner));
  parallel_for(ceil_div(rows, per), [&](long t, int) {
    for (long r = t * per; r < min_l(rows, (t + 1) * per); ++r) {
      binary_span<OP>(row_of(a, a_layout, r), row_of(b, b_layout, r), out + r * inner, 0, inner,
                      a_layout == L_COLUMN, b_layout == L_COLUMN);
    }
  });
}

inline double hsum_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// Sum of x[0..n) in double (tfjs sums in double; float accumulation over ~1e5 terms would drift).
double sum_contig(const float* x, long n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  long i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  double s = hsum_pd(_mm256_add_pd(a0, a1));
  for (; i < n; ++i) s += x[i];
  return s;
}

// acc[0..inner) += sum over m in [m0, m1) of x[m * inner + i], in double.
void sum_cols(const float* x, long m0, long m1, long inner, double* acc) {
  long i = 0;
  for (; i + 16 <= inner; i += 16) {
    __m256d s0 = _mm256_loadu_pd(acc + i), s1 = _mm256_loadu_pd(acc + i + 4);
    __m256d s2 = _mm256_loadu_pd(acc + i + 8), s3 = _mm256_loadu_pd(acc + i + 12);
    for (long m = m0; m < m1; ++m) {
      const float* p = x + m * inner + i;
      __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8);
      s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v0)));
      s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1)));
      s2 = _mm256_add_pd(s2, _mm256_cvtps_pd(_mm256_castps256_ps128(v1)));
      s3 = _mm256_add_pd(s3, _mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1)));
    }
    _mm256_storeu_pd(acc + i, s0);
    _mm256_storeu_pd(acc + i + 4, s1);
    _mm256_storeu_pd(acc + i + 8, s2);
    _mm256_storeu_pd(acc + i + 12, s3);
  }
  for (; i + 4 <= inner; i += 4) {
    __m256d s0 = _mm256_loadu_pd(acc + i);
    for (long m = m0; m < m1; ++m) s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm_loadu_ps(x + m * inner + i)));
    _mm256_storeu_pd(acc + i, s0);
  }
  for (; i < inner; ++i) {
    double s = acc[i];
    for (long m = m0; m < m1; ++m) s += x[m * inner + i];
    acc[i] = s;
  }
}

}  // namespace

void unary(int op, const float* x, float* y, long size, float alpha) {
  switch (op) {
#define ML_U(OP) case OP: unary_t<OP>(x, y, size, alpha); break;
    ML_U(U_RELU) ML_U(U_RELU6) ML_U(U_LEAKYRELU) ML_U(U_SIGMOID) ML_U(U_STEP) ML_U(U_NEG)
    ML_U(U_EXP) ML_U(U_SQUARE) ML_U(U_ABS) ML_U(U_SQRT) ML_U(U_RSQRT) ML_U(U_RECIPROCAL)
#undef ML_U
    default: break;
  }
}

void binary(int op, const float* a, const float* b, float* out, long rows, long inner, int a_layout,
            int b_layout) {
  switch (op) {
#define ML_B(OP) case OP: binary_t<OP>(a, b, out, rows, inner, a_layout, b_layout); break;
    ML_B(B_ADD) ML_B(B_SUB) ML_B(B_MUL) ML_B(B_DIV) ML_B(B_MAX) ML_B(B_MIN) ML_B(B_SQDIFF)
#undef ML_B
    default: break;
  }
}

void reduce_sum(const float* x, float* y, long outer, long mid, long inner) {
  const long out_size = outer * inner;
  if (out_size == 0) return;
  if (mid == 0) {
    std::memset(y, 0, sizeof(float) * out_size);
    return;
  }
  // The reduction is split in chunks fixed by the problem size, never by the thread count, and
  // partials are combined in chunk order: the result does not depend on scheduling.
  const long total = outer * mid * inner;
  if (outer * inner >= 64 || total <= 4 * kGrain) {
    if (inner == 1) {
      const long per = max_l(1, kGrain / mid);
      parallel_for(ceil_div(outer, per), [&](long t, int) {
        for (long o = t * per; o < min_l(outer, (t + 1) * per); ++o) y[o] = static_cast<float>(sum_contig(x + o * mid, mid));
      });
      return;
    }
    if (outer >= 4) {
      const long per = max_l(1, kGrain / max_l(1, mid * inner));
      parallel_for(ceil_div(outer, per), [&](long t, int) {
        double* acc = new double[inner];
        for (long o = t * per; o < min_l(outer, (t + 1) * per); ++o) {
          std::memset(acc, 0, sizeof(double) * inner);
          sum_cols(x + o * mid * inner, 0, mid, inner, acc);
          for (long i = 0; i < inner; ++i) y[o * inner + i] = static_cast<float>(acc[i]);
        }
        delete[] acc;
      });
      return;
    }
  }
  // Few outputs, long reduction (bias gradients, full sums): chunk the reduction axis.
  const long nch = min_l(mid, max_l(1, min_l(16, total / (4 * kGrain))));
  double* part = new double[nch * out_size];
  std::memset(part, 0, sizeof(double) * nch * out_size);
  parallel_for(outer * nch, [&](long t, int) {
    const long o = t / nch, ch = t % nch;
    const long m0 = ch * mid / nch, m1 = (ch + 1) * mid / nch;
    double* acc = part + ch * out_size + o * inner;
    if (inner == 1) acc[0] = sum_contig(x + o * mid + m0, m1 - m0);
    else sum_cols(x + o * mid * inner, m0, m1, inner, acc);
  });
  for (long i = 0; i < out_size; ++i) {
    double s = 0;
    for (long ch = 0; ch < nch; ++ch) s += part[ch * out_size + i];
    y[i] = static_cast<float>(s);
  }
  delete[] part;
}

void softmax(const float* x, float* y, long rows, long classes) {
  if (rows == 0 || classes == 0) return;
  const long per = max_l(1, kGrain / classes);
  parallel_for(ceil_div(rows, per), [&](long t, int) {
    const long r0 = t * per, r1 = min_l(rows, (t + 1) * per);
    // Shifted by each row's largest logit, so that exp cannot overflow; the shifted block is then
    // exponentiated as one contiguous span, in vectors, whatever the class count.
    for (long r = r0; r < r1; ++r) {
      const float* xr = x + r * classes;
      float m = xr[0];
      for (long k = 1; k < classes; ++k) m = xr[k] > m ? xr[k] : m;
      for (long k = 0; k < classes; ++k) y[r * classes + k] = xr[k] - m;
    }
    unary_span<U_EXP>(y, y, r0 * classes, r1 * classes, _mm256_setzero_ps());
    for (long r = r0; r < r1; ++r) {
      float* yr = y + r * classes;
      float sum = 0.0f;
      for (long k = 0; k < classes; ++k) sum += yr[k];
      const float inv = 1.0f / sum;
      for (long k = 0; k < classes; ++k) yr[k] *= inv;
    }
  });
}

namespace {

// The same operations in the same order as tfjs' Adam, each rounded to float32: no multiply and
// add contracted into an FMA, so that the update is bit for bit the one the other backends make.
__attribute__((optimize("fp-contract=off"))) void adam_span(const float* x, const float* g, const float* m, const float* v,
                                                             float* x_out, float* m_out, float* v_out, long i0, long i1,
                                                             const AdamStep& a) {
  const __m256 b1 = _mm256_set1_ps(a.beta1), rest1 = _mm256_set1_ps(a.one_minus_beta1);
  const __m256 b2 = _mm256_set1_ps(a.beta2), rest2 = _mm256_set1_ps(a.one_minus_beta2);
  const __m256 c1 = _mm256_set1_ps(a.correction1), c2 = _mm256_set1_ps(a.correction2);
  const __m256 eps = _mm256_set1_ps(a.epsilon), rate = _mm256_set1_ps(-a.learning_rate);
  long i = i0;
  for (; i + 8 <= i1; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1), _mm256_mul_ps(gi, rest1));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2), _mm256_mul_ps(_mm256_mul_ps(gi, gi), rest2));
    const __m256 step = _mm256_div_ps(_mm256_div_ps(mi, c1), _mm256_add_ps(_mm256_sqrt_ps(_mm256_div_ps(vi, c2)), eps));
    _mm256_storeu_ps(m_out + i, mi);
    _mm256_storeu_ps(v_out + i, vi);
    _mm256_storeu_ps(x_out + i, _mm256_add_ps(_mm256_mul_ps(step, rate), _mm256_loadu_ps(x + i)));
  }
  for (; i < i1; ++i) {
    const float mi = m[i] * a.beta1 + g[i] * a.one_minus_beta1;
    const float vi = v[i] * a.beta2 + (g[i] * g[i]) * a.one_minus_beta2;
    const float step = (mi / a.correction1) / (std::sqrt(vi / a.correction2) + a.epsilon);
    m_out[i] = mi;
    v_out[i] = vi;
    x_out[i] = step * -a.learning_rate + x[i];
  }
}

}  // namespace

void adam(const float* x, const float* g, const float* m, const float* v, float* x_out, float* m_out, float* v_out, long size,
          const AdamStep& a) {
  for_blocks(size, [&](long i0, long i1) { adam_span(x, g, m, v, x_out, m_out, v_out, i0, i1, a); });
}

void copy_rows(const float* src, long src_stride, float* dst, long dst_stride, long rows, long len) {
  if (rows == 0 || len == 0) return;
  const long per = max_l(1, kGrain / len);
  parallel_for(ceil_div(rows, per), [&](long t, int) {
    for (long r = t * per; r < min_l(rows, (t + 1) * per); ++r)
      std::memcpy(dst + r * dst_stride, src + r * src_stride, sizeof(float) * len);
  });
}

}  // namespace ml
