// Helpers for the AVX2/FMA translation units only (they are compiled with -mavx2 -mfma; the glue
// is not). Everything here has internal linkage so that no AVX2-compiled copy of an inline
// function can be shared with, and picked by the linker for, the baseline x86-64 glue code.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "threadpool.h"

namespace ml {
namespace {

// Lane masks for the first n (0..8) floats of a vector, for loads/stores of partial tiles.
alignas(32) const int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

inline __m256i tail_mask(int n) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - n));
}

// Copies the first n (< 16) floats of an aligned tile: the partial-tile store of the kernels. Not
// vmaskmovps, whose store form is microcoded and very slow on AMD Zen, and not a loop, which GCC
// turns into a memcpy call.
inline void store_partial(float* p, const float* tile, int n) {
  if (n & 8) {
    _mm256_storeu_ps(p, _mm256_load_ps(tile));
    p += 8;
    tile += 8;
  }
  if (n & 4) {
    _mm_storeu_ps(p, _mm_loadu_ps(tile));
    p += 4;
    tile += 4;
  }
  if (n & 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(p), _mm_loadu_ps(tile));
    p += 2;
    tile += 2;
  }
  if (n & 1) *p = *tile;
}

inline void store_tail(float* p, __m256 v, int n) {
  alignas(32) float tile[8];
  _mm256_store_ps(tile, v);
  store_partial(p, tile, n);
}

// exp(x) for float32: range reduction by ln2 in two parts, degree-6 polynomial, exponent built
// directly. Max relative error about 2 ulp over the clamped range; inputs beyond it saturate to
// 0 / +inf as expf does (NaN propagates).
inline __m256 exp256(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.7228391f);
  const __m256 lo = _mm256_set1_ps(-103.972076f);
  const __m256 input = x;
  __m256 nan_mask = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
  __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n: n is in [-150, 128]; split in two factors so both stay normal numbers (the product
  // may underflow gradually, as expf does).
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i n1 = _mm256_srai_epi32(ni, 1);
  __m256i n2 = _mm256_sub_epi32(ni, n1);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), over);
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), under);
  return _mm256_blendv_ps(y, input, nan_mask);
}

inline __m256 sigmoid256(__m256 x) {
  // 1 / (1 + exp(-x)) with a true division: the result feeds gradients, so keep it accurate.
  __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

// Activation codes shared with the glue (kernels.h mirrors them).
enum : int { kActLinear = 0, kActRelu = 1, kActRelu6 = 2, kActLeaky = 3, kActSigmoid = 4 };

inline __m256 activate(__m256 v, int act, __m256 alpha) {
  switch (act) {
    case kActRelu:
      return _mm256_max_ps(_mm256_setzero_ps(), v);
    case kActRelu6:
      return _mm256_min_ps(_mm256_max_ps(_mm256_setzero_ps(), v), _mm256_set1_ps(6.0f));
    case kActLeaky: {
      __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
      return _mm256_blendv_ps(v, _mm256_mul_ps(v, alpha), neg);
    }
    case kActSigmoid:
      return sigmoid256(v);
    default:
      return v;
  }
}

inline float activate1(float v, int act, float alpha) {
  __m256 r = activate(_mm256_set1_ps(v), act, _mm256_set1_ps(alpha));
  return _mm256_cvtss_f32(r);
}

// 64-byte aligned scratch owned by one kernel call.
struct Scratch {
  float* p = nullptr;
  explicit Scratch(size_t nfloats) {
    size_t bytes = (nfloats * sizeof(float) + 63) & ~size_t(63);
    p = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
    if (!p) std::abort();
  }
  ~Scratch() { std::free(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// f(task, thread) for every task; thread < max_threads (pass the thread count per-thread scratch
// was sized for).
template <class F>
void parallel_for(long ntasks, F&& f, int max_threads = 1 << 30) {
  using Fn = typename std::remove_reference<F>::type;
  pool_run(
      ntasks, [](void* ctx, long task, int thread) { (*static_cast<Fn*>(ctx))(task, thread); },
      const_cast<void*>(static_cast<const void*>(&f)), max_threads);
}

inline long ceil_div(long a, long b) { return (a + b - 1) / b; }
inline long min_l(long a, long b) { return a < b ? a : b; }
inline long max_l(long a, long b) { return a > b ? a : b; }

}  // namespace
}  // namespace ml
