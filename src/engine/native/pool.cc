// Max pooling and nearest-neighbour resizing (NHWC), forward and backward, vectorised over
// channels (contiguous in NHWC).
#include <cstring>

#include "kernels.h"
#include "simd.h"

namespace ml {
namespace {

// Rows of work per task for memory-bound kernels: small enough to balance, large enough to
// amortise dispatch.
long rows_per_task(long rows, long floats_per_row) {
  const long target = 1L << 15;  // floats per task
  return max_l(1, min_l(rows, target / max_l(1, floats_per_row)));
}

struct Window {
  long y0, y1, x0, x1;  // valid input rows/cols
};

inline Window window(long oy, long ox, int kh, int kw, int sh, int sw, int pt, int pl, long h, long w) {
  const long yc = oy * sh - pt, xc = ox * sw - pl;
  return {max_l(0, yc), min_l(h, yc + kh), max_l(0, xc), min_l(w, xc + kw)};
}

void pool_pixel(const float* xn, float* out, const Window& win, long w, long c) {
  long ch = 0;
  const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
  for (; ch + 8 <= c; ch += 8) {
    __m256 m = ninf;
    for (long y = win.y0; y < win.y1; ++y)
      for (long x = win.x0; x < win.x1; ++x) m = _mm256_max_ps(_mm256_loadu_ps(xn + (y * w + x) * c + ch), m);
    _mm256_storeu_ps(out + ch, m);
  }
  for (; ch < c; ++ch) {
    float m = -__builtin_inff();
    for (long y = win.y0; y < win.y1; ++y)
      for (long x = win.x0; x < win.x1; ++x) {
        const float v = xn[(y * w + x) * c + ch];
        if (v > m) m = v;  // same comparison as tfjs: NaN never wins
      }
    out[ch] = m;
  }
}

// Adds dy to the first strict maximum of the window, channels [c0, c1).
void unpool_pixel(const float* xn, const float* dyp, float* dxn, const Window& win, long w, long c,
                  long c0, long c1) {
  long ch = c0;
  const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
  for (; ch + 8 <= c1; ch += 8) {
    __m256 m = ninf;
    __m256i pos = _mm256_set1_epi32(-1);
    int idx = 0;
    for (long y = win.y0; y < win.y1; ++y)
      for (long x = win.x0; x < win.x1; ++x, ++idx) {
        const __m256 v = _mm256_loadu_ps(xn + (y * w + x) * c + ch);
        const __m256 gt = _mm256_cmp_ps(v, m, _CMP_GT_OQ);
        m = _mm256_blendv_ps(m, v, gt);
        pos = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(pos),
                                                   _mm256_castsi256_ps(_mm256_set1_epi32(idx)), gt));
      }
    const __m256 g = _mm256_loadu_ps(dyp + ch);
    idx = 0;
    for (long y = win.y0; y < win.y1; ++y)
      for (long x = win.x0; x < win.x1; ++x, ++idx) {
        const __m256 hit = _mm256_castsi256_ps(_mm256_cmpeq_epi32(pos, _mm256_set1_epi32(idx)));
        float* d = dxn + (y * w + x) * c + ch;
        _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), _mm256_and_ps(g, hit)));
      }
  }
  for (; ch < c1; ++ch) {
    float m = -__builtin_inff();
    long best = -1;
    for (long y = win.y0; y < win.y1; ++y)
      for (long x = win.x0; x < win.x1; ++x) {
        const float v = xn[(y * w + x) * c + ch];
        if (v > m) {
          m = v;
          best = (y * w + x) * c + ch;
        }
      }
    if (best >= 0) dxn[best] += dyp[ch];
  }
}

void fill_zero(float* p, long size) {
  const long per = 1L << 16;
  parallel_for(ceil_div(size, per), [&](long t, int) {
    const long i0 = t * per;
    std::memset(p + i0, 0, sizeof(float) * min_l(per, size - i0));
  });
}

}  // namespace

void max_pool(const float* x, float* y, int n, int h, int w, int c, int kh, int kw, int sh, int sw,
              int pt, int pl, int oh, int ow) {
  const long rows = static_cast<long>(n) * oh;
  if (rows == 0 || ow == 0 || c == 0) return;
  const long per = rows_per_task(rows, static_cast<long>(ow) * c * kh);
  parallel_for(ceil_div(rows, per), [&](long task, int) {
    for (long r = task * per; r < min_l(rows, (task + 1) * per); ++r) {
      const long b = r / oh, oy = r % oh;
      const float* xn = x + b * h * w * c;
      float* out = y + r * ow * c;
      for (long ox = 0; ox < ow; ++ox) pool_pixel(xn, out + ox * c, window(oy, ox, kh, kw, sh, sw, pt, pl, h, w), w, c);
    }
  });
}

void max_pool_grad(const float* dy, const float* x, float* dx, int n, int h, int w, int c, int kh,
                   int kw, int sh, int sw, int pt, int pl, int oh, int ow) {
  const long size = static_cast<long>(n) * h * w * c;
  if (size == 0) return;
  fill_zero(dx, size);
  if (static_cast<long>(oh) * ow == 0) return;
  const long img = static_cast<long>(h) * w * c;
  if (kh <= sh) {
    // Windows of different output rows touch disjoint input rows: split by output rows.
    const long rows = static_cast<long>(n) * oh;
    const long per = rows_per_task(rows, static_cast<long>(ow) * c * kh);
    parallel_for(ceil_div(rows, per), [&](long task, int) {
      for (long r = task * per; r < min_l(rows, (task + 1) * per); ++r) {
        const long b = r / oh, oy = r % oh;
        for (long ox = 0; ox < ow; ++ox) {
          unpool_pixel(x + b * img, dy + (r * ow + ox) * c, dx + b * img,
                       window(oy, ox, kh, kw, sh, sw, pt, pl, h, w), w, c, 0, c);
        }
      }
    });
    return;
  }
  // Overlapping windows: each task owns one image and a block of channels.
  const long cblk = 32;
  const long ncb = ceil_div(c, cblk);
  parallel_for(static_cast<long>(n) * ncb, [&](long task, int) {
    const long b = task / ncb;
    const long c0 = (task % ncb) * cblk, c1 = min_l(c, c0 + cblk);
    for (long oy = 0; oy < oh; ++oy)
      for (long ox = 0; ox < ow; ++ox)
        unpool_pixel(x + b * img, dy + ((b * oh + oy) * ow + ox) * c, dx + b * img,
                     window(oy, ox, kh, kw, sh, sw, pt, pl, h, w), w, c, c0, c1);
  });
}

void resize_nearest(const float* x, float* y, int n, int h, int w, int c, int oh, int ow,
                    const int* src_row, const int* src_col) {
  const long rows = static_cast<long>(n) * oh;
  if (rows == 0 || ow == 0 || c == 0) return;
  const long per = rows_per_task(rows, static_cast<long>(ow) * c);
  parallel_for(ceil_div(rows, per), [&](long task, int) {
    for (long r = task * per; r < min_l(rows, (task + 1) * per); ++r) {
      const long b = r / oh, oy = r % oh;
      const float* xrow = x + ((b * h) + src_row[oy]) * static_cast<long>(w) * c;
      float* out = y + r * ow * c;
      for (long ox = 0; ox < ow; ++ox) std::memcpy(out + ox * c, xrow + static_cast<long>(src_col[ox]) * c, sizeof(float) * c);
    }
  });
}

void resize_nearest_grad(const float* dy, float* dx, int n, int h, int w, int c, int oh, int ow,
                         const int* src_row, const int* src_col) {
  const long size = static_cast<long>(n) * h * w * c;
  if (size == 0) return;
  // Output rows that read input row sy form the range [first[sy], first[sy + 1]) because the
  // source row is non-decreasing in the output row for every tfjs mode; a task per input row
  // therefore owns its dx row outright.
  bool monotonic = true;
  for (int i = 1; i < oh; ++i) monotonic = monotonic && src_row[i] >= src_row[i - 1];
  if (!monotonic) {
    fill_zero(dx, size);
    parallel_for(n, [&](long b, int) {
      for (long oy = 0; oy < oh; ++oy) {
        float* dxr = dx + (b * h + src_row[oy]) * static_cast<long>(w) * c;
        const float* dyr = dy + (b * oh + oy) * static_cast<long>(ow) * c;
        for (long ox = 0; ox < ow; ++ox) {
          float* d = dxr + static_cast<long>(src_col[ox]) * c;
          const float* g = dyr + ox * c;
          for (long ch = 0; ch < c; ++ch) d[ch] += g[ch];
        }
      }
    });
    return;
  }
  long* first = new long[h + 1];
  {
    long oy = 0;
    for (int sy = 0; sy <= h; ++sy) {
      while (oy < oh && src_row[oy] < sy) ++oy;
      first[sy] = oy;
    }
  }
  const long rows = static_cast<long>(n) * h;
  const long per = rows_per_task(rows, static_cast<long>(w) * c * max_l(1, oh / max_l(1, h)));
  parallel_for(ceil_div(rows, per), [&](long task, int) {
    for (long r = task * per; r < min_l(rows, (task + 1) * per); ++r) {
      const long b = r / h, sy = r % h;
      float* dxr = dx + r * static_cast<long>(w) * c;
      std::memset(dxr, 0, sizeof(float) * w * c);
      for (long oy = first[sy]; oy < first[sy + 1]; ++oy) {
        const float* dyr = dy + (b * oh + oy) * static_cast<long>(ow) * c;
        for (long ox = 0; ox < ow; ++ox) {
          float* d = dxr + static_cast<long>(src_col[ox]) * c;
          const float* g = dyr + ox * c;
          long ch = 0;
          for (; ch + 8 <= c; ch += 8) _mm256_storeu_ps(d + ch, _mm256_add_ps(_mm256_loadu_ps(d + ch), _mm256_loadu_ps(g + ch)));
          for (; ch < c; ++ch) d[ch] += g[ch];
        }
      }
    }
  });
  delete[] first;
}

}  // namespace ml
