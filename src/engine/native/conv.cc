// Convolution forward and backward as implicit GEMMs over NHWC tensors.
//
// Forward: C[pixel, cout] = sum over taps t and channels c of x[pixel shifted by t, c] * w[t, c, cout].
// In NHWC a tap's channels are contiguous, so each (row, tap) is one segment the microkernel reads
// in place; out-of-image taps point at a zero row. No im2col matrix is built except for thin
// inputs (cin < 8), where segments would be too short and a small per-band im2col is cheaper.
//
// Input gradient: a forward convolution of dy with the flipped, channel-swapped filter. With
// stride s the input pixels split into s*s phases (by position mod s); each phase sees a fixed
// subset of taps, so each is a dense stride-1 implicit GEMM with no multiply-by-zero.
//
// Filter gradient: dw[t, cin, cout] = sum over pixels of x[pixel + t, cin] * dy[pixel, cout], a GEMM
// whose reduction runs over N*OH*OW. The reduction is split in a fixed number of chunks (a function
// of the problem, not of the thread count, so results do not depend on scheduling), each summed
// into its own partial buffer; the partials are then added in a fixed order.
#include <cstring>

#include "driver.h"
#include "kernels.h"

namespace ml {
namespace {

// Inputs with fewer channels than this are im2col'ed per band (see above).
constexpr int kThinChannels = 8;
// Target floats of K per chunk: keeps a B panel chunk (K x 16) within L1/L2.
constexpr long kChunkK = 512;

struct ConvSrc {
  // Input tensor (the image for forward, dy for the input gradient).
  const float* x;
  long IH, IW, IC;
  // Grid of C rows: M = batch * GH * GW; row (n, gy, gx) reads input (gy*isy + tdy[t], gx*isx + tdx[t]).
  long GH, GW, isy, isx;
  const int* tdy;
  const int* tdx;
  int T;
  // Output: C row (n, gy, gx) is y[n, gy*osy + ooy, gx*osx + oox, :].
  float* y;
  long OH, OW, OC, osy, ooy, osx, oox;
  const float* zeros;  // IC zeros
  bool im2col;
  int tpc;  // taps per chunk
  long M;

  int nchunks() const { return im2col || T == 0 ? 1 : static_cast<int>(ceil_div(T, tpc)); }
  int nseg(int c) const {
    if (T == 0) return 0;
    return im2col ? 1 : static_cast<int>(min_l(T - static_cast<long>(c) * tpc, tpc));
  }
  int seglen(int) const { return static_cast<int>(im2col ? T * IC : IC); }
  long k0(int c) const { return im2col ? 0 : static_cast<long>(c) * tpc * IC; }
  int max_nseg() const { return im2col ? 1 : (T < tpc ? T : tpc); }
  long scratch_per_rb() const { return im2col ? MR * T * IC : 0; }

  void rows(long m, int c, const float** ap, float** cp, float* scratch) const {
    const int t0 = im2col ? 0 : c * tpc;
    const int t1 = im2col ? T : static_cast<int>(min_l(T, static_cast<long>(t0) + tpc));
    const int ns = t1 - t0;
    for (int r = 0; r < MR; ++r) {
      const long mm = m + r < M ? m + r : m;
      const long gx = mm % GW;
      const long q = mm / GW;
      const long gy = q % GH;
      const long n = q / GH;
      const long iy0 = gy * isy, ix0 = gx * isx;
      const float* base = x + n * IH * IW * IC;
      cp[r] = y + ((n * OH + gy * osy + ooy) * OW + gx * osx + oox) * OC;
      if (im2col) {
        float* row = scratch + static_cast<long>(r) * T * IC;
        for (int t = 0; t < T; ++t) {
          const long iy = iy0 + tdy[t], ix = ix0 + tdx[t];
          float* d = row + static_cast<long>(t) * IC;
          if (iy >= 0 && iy < IH && ix >= 0 && ix < IW) {
            const float* s = base + (iy * IW + ix) * IC;
            for (long ch = 0; ch < IC; ++ch) d[ch] = s[ch];
          } else {
            for (long ch = 0; ch < IC; ++ch) d[ch] = 0.0f;
          }
        }
        ap[r] = row;
      } else {
        for (int s = 0; s < ns; ++s) {
          const int t = t0 + s;
          const long iy = iy0 + tdy[t], ix = ix0 + tdx[t];
          ap[s * MR + r] = (iy >= 0 && iy < IH && ix >= 0 && ix < IW) ? base + (iy * IW + ix) * IC : zeros;
        }
      }
    }
  }
};

int taps_per_chunk(long ic, int T) {
  long maxt = max_l(1, kChunkK / max_l(1, ic));
  if (maxt >= T) return T > 0 ? T : 1;
  // Balance chunks instead of leaving a short last one.
  long nch = ceil_div(T, maxt);
  return static_cast<int>(ceil_div(T, nch));
}

// Runs one implicit-GEMM convolution pass. wrow[k] is row k of B (k = tap * IC + channel); columns
// are wrow[k][n * wcol_stride].
void conv_pass(ConvSrc src, const float* const* wrow, long wcol_stride, const Epilogue& ep) {
  const int K = static_cast<int>(src.T * src.IC);
  Scratch bmem(PackedB::floats(K > 0 ? K : 1, static_cast<int>(src.OC)) + 16);
  PackedB pb = pack_b(wrow, wcol_stride, K, static_cast<int>(src.OC), bmem.p);
  Scratch zeros(src.IC + 16);
  std::memset(zeros.p, 0, sizeof(float) * (src.IC + 16));
  src.zeros = zeros.p;
  src.im2col = src.IC < kThinChannels;
  src.tpc = taps_per_chunk(src.IC, src.T);
  gemm_bands(src, pb, ep);
}

// Output positions o with 0 <= o * s + d < size, intersected with [0, limit).
inline void valid_range(long d, long s, long size, long limit, long* lo, long* hi) {
  long a = d >= 0 ? 0 : ceil_div(-d, s);
  long b = (size - 1 - d) >= 0 ? (size - 1 - d) / s + 1 : 0;
  *lo = a;
  *hi = b < limit ? b : limit;
  if (*hi < *lo) *hi = *lo;
}

}  // namespace

void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* bias, int act,
                    float alpha, float* y) {
  const long M = static_cast<long>(s.n) * s.oh * s.ow;
  if (M == 0 || s.oc == 0) return;
  const int T = s.kh * s.kw;
  int* tdy = new int[T > 0 ? T : 1];
  int* tdx = new int[T > 0 ? T : 1];
  for (int t = 0; t < T; ++t) {
    tdy[t] = (t / s.kw) * s.dh - s.pt;
    tdx[t] = (t % s.kw) * s.dw - s.pl;
  }
  const long K = static_cast<long>(T) * s.ic;
  const float** wrow = new const float*[K > 0 ? K : 1];
  for (long k = 0; k < K; ++k) wrow[k] = w + k * s.oc;
  ConvSrc src{};
  src.x = x;
  src.IH = s.ih; src.IW = s.iw; src.IC = s.ic;
  src.GH = s.oh; src.GW = s.ow; src.isy = s.sh; src.isx = s.sw;
  src.tdy = tdy; src.tdx = tdx; src.T = T;
  src.y = y;
  src.OH = s.oh; src.OW = s.ow; src.OC = s.oc; src.osy = 1; src.ooy = 0; src.osx = 1; src.oox = 0;
  src.M = M;
  Epilogue ep{bias, act, alpha};
  conv_pass(src, wrow, 1, ep);
  delete[] wrow;
  delete[] tdy;
  delete[] tdx;
}

void conv2d_backprop_input(const ConvShape& s, const float* dy, const float* w, float* dx) {
  if (static_cast<long>(s.n) * s.ih * s.iw * s.ic == 0) return;
  // Phase (ph, pw): input pixels (ph + sh*a, pw + sw*b). Tap (kh, kw) reaches them from output
  // (a + dyo, b + dxo) when ph + pt - kh is a multiple of sh: dyo = (ph + pt - kh) / sh.
  int* tdy = new int[s.kh * s.kw + 1];
  int* tdx = new int[s.kh * s.kw + 1];
  const float** wrow = new const float*[static_cast<long>(s.kh) * s.kw * s.oc + 1];
  const Epilogue none{nullptr, kActLinear, 0.0f};
  for (int ph = 0; ph < s.sh && ph < s.ih; ++ph) {
    for (int pw = 0; pw < s.sw && pw < s.iw; ++pw) {
      int T = 0;
      long k = 0;
      for (int kh = 0; kh < s.kh; ++kh) {
        const int vy = ph + s.pt - kh;
        if (((vy % s.sh) + s.sh) % s.sh != 0) continue;
        for (int kw = 0; kw < s.kw; ++kw) {
          const int vx = pw + s.pl - kw;
          if (((vx % s.sw) + s.sw) % s.sw != 0) continue;
          tdy[T] = vy / s.sh;
          tdx[T] = vx / s.sw;
          ++T;
          // B row (tap, cout) holds w[kh, kw, :, cout]: a column stride of oc.
          const float* wt = w + (static_cast<long>(kh) * s.kw + kw) * s.ic * s.oc;
          for (int co = 0; co < s.oc; ++co) wrow[k++] = wt + co;
        }
      }
      ConvSrc src{};
      src.x = dy;
      src.IH = s.oh; src.IW = s.ow; src.IC = s.oc;
      src.GH = ceil_div(s.ih - ph, s.sh);
      src.GW = ceil_div(s.iw - pw, s.sw);
      src.isy = 1; src.isx = 1;
      src.tdy = tdy; src.tdx = tdx; src.T = T;
      src.y = dx;
      src.OH = s.ih; src.OW = s.iw; src.OC = s.ic;
      src.osy = s.sh; src.ooy = ph; src.osx = s.sw; src.oox = pw;
      src.M = static_cast<long>(s.n) * src.GH * src.GW;
      conv_pass(src, wrow, s.oc, none);
    }
  }
  delete[] wrow;
  delete[] tdy;
  delete[] tdx;
}

void conv2d_backprop_filter(const ConvShape& s, const float* x, const float* dy, float* dw) {
  const int T = s.kh * s.kw;
  const long IC = s.ic, OC = s.oc;
  const long Kp = static_cast<long>(T) * IC;
  const long wsize = Kp * OC;
  if (wsize == 0) return;
  const long rows = static_cast<long>(s.n) * s.oh;
  if (rows == 0 || s.ow == 0) {
    std::memset(dw, 0, sizeof(float) * wsize);
    return;
  }
  const bool thin = IC < kThinChannels;
  // Rows of dy per cache block: the x rows it touches plus its dy rows fit in half of L2.
  const long row_floats = (static_cast<long>(s.sh) * s.iw * IC) + static_cast<long>(s.ow) * OC +
                          (thin ? static_cast<long>(s.ow) * Kp : 0);
  const long halo = static_cast<long>(s.kh) * s.iw * IC;
  const long sub_rows = max_l(1, (32768 - halo) / max_l(1, row_floats));
  // Fixed chunking of the reduction (see the file comment): enough chunks to keep up to 4
  // threads busy, each at least a few blocks long.
  const int nt = pool_size();
  long nchunks = min_l(rows, max_l(8, 2L * nt));
  nchunks = max_l(1, min_l(nchunks, ceil_div(rows * s.ow * Kp * OC, 1L << 20)));
  Scratch partial(nchunks > 1 ? nchunks * wsize : 1);
  float* const parts = nchunks > 1 ? partial.p : dw;
  const long col_floats = thin ? sub_rows * s.ow * Kp : 1;
  Scratch colmem(col_floats * nt);

  // Valid output ranges per tap row / column.
  long* ylo = new long[s.kh];
  long* yhi = new long[s.kh];
  long* xlo = new long[s.kw];
  long* xhi = new long[s.kw];
  for (int kh = 0; kh < s.kh; ++kh) valid_range(kh - s.pt, s.sh, s.ih, s.oh, &ylo[kh], &yhi[kh]);
  for (int kw = 0; kw < s.kw; ++kw) valid_range(kw - s.pl, s.sw, s.iw, s.ow, &xlo[kw], &xhi[kw]);

  parallel_for(nchunks, [&](long chunk, int thread) {
    float* part = parts + (nchunks > 1 ? chunk * wsize : 0);
    std::memset(part, 0, sizeof(float) * wsize);
    const long r0 = chunk * rows / nchunks;
    const long r1 = (chunk + 1) * rows / nchunks;
    float* col = colmem.p + thread * col_floats;
    for (long r = r0; r < r1;) {
      const long n = r / s.oh;
      const long y0 = r % s.oh;
      const long y1 = min_l(min_l(s.oh, y0 + sub_rows), y0 + (r1 - r));
      r += y1 - y0;
      const float* xn = x + n * s.ih * s.iw * IC;
      const float* dyb = dy + (n * s.oh + y0) * s.ow * OC;
      if (thin) {
        // im2col of this block: one row of Kp per output pixel.
        for (long oy = y0; oy < y1; ++oy) {
          for (long ox = 0; ox < s.ow; ++ox) {
            float* d = col + ((oy - y0) * s.ow + ox) * Kp;
            for (int t = 0; t < T; ++t) {
              const long iy = oy * s.sh + t / s.kw - s.pt;
              const long ix = ox * s.sw + t % s.kw - s.pl;
              float* dt = d + t * IC;
              if (iy >= 0 && iy < s.ih && ix >= 0 && ix < s.iw) {
                const float* src = xn + (iy * s.iw + ix) * IC;
                for (long c = 0; c < IC; ++c) dt[c] = src[c];
              } else {
                for (long c = 0; c < IC; ++c) dt[c] = 0.0f;
              }
            }
          }
        }
        const int npix = static_cast<int>((y1 - y0) * s.ow);
        for (long k0 = 0; k0 < Kp; k0 += MR) {
          const int rr = static_cast<int>(min_l(MR, Kp - k0));
          for (long co = 0; co < OC; co += NR) {
            const int nc = static_cast<int>(min_l(NR, OC - co));
            outer_block(rr, nc, 1, npix, col + k0, Kp, 0, dyb + co, OC, 0, part + k0 * OC + co, OC);
          }
        }
        continue;
      }
      for (long ci = 0; ci < IC; ci += MR) {
        const int rr = static_cast<int>(min_l(MR, IC - ci));
        for (long co = 0; co < OC; co += NR) {
          const int nc = static_cast<int>(min_l(NR, OC - co));
          for (int t = 0; t < T; ++t) {
            const int kh = t / s.kw, kw = t % s.kw;
            const long ya = max_l(ylo[kh], y0), yb = min_l(yhi[kh], y1);
            const long xa = xlo[kw], xb = xhi[kw];
            if (ya >= yb || xa >= xb) continue;
            const float* a = xn + ((ya * s.sh + kh - s.pt) * s.iw + xa * s.sw + kw - s.pl) * IC + ci;
            const float* b = dy + ((n * s.oh + ya) * s.ow + xa) * OC + co;
            outer_block(rr, nc, static_cast<int>(yb - ya), static_cast<int>(xb - xa), a, s.sw * IC,
                        static_cast<long>(s.sh) * s.iw * IC, b, OC, s.ow * OC,
                        part + (static_cast<long>(t) * IC + ci) * OC + co, OC);
          }
        }
      }
    }
  });

  if (nchunks > 1) {
    // Fixed-order sum of the partials, split over threads by element ranges.
    const long per = 4096;
    parallel_for(ceil_div(wsize, per), [&](long task, int) {
      const long i0 = task * per, i1 = min_l(wsize, i0 + per);
      long i = i0;
      for (; i + 8 <= i1; i += 8) {
        __m256 acc = _mm256_loadu_ps(parts + i);
        for (long c = 1; c < nchunks; ++c) acc = _mm256_add_ps(acc, _mm256_loadu_ps(parts + c * wsize + i));
        _mm256_storeu_ps(dw + i, acc);
      }
      for (; i < i1; ++i) {
        float acc = parts[i];
        for (long c = 1; c < nchunks; ++c) acc += parts[c * wsize + i];
        dw[i] = acc;
      }
    });
  }
  delete[] ylo;
  delete[] yhi;
  delete[] xlo;
  delete[] xhi;
}

}  // namespace ml
