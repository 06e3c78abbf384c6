// Convolution forward and backward as implicit GEMMs over NHWC tensors.
//
// Forward: C[pixel, cout] = sum over taps and channels of x[pixel + tap, c] * w[tap, c, cout]. In
// NHWC the KW taps of one filter row, with all their channels, are KW*cin consecutive floats, so
// each (output pixel, filter row) is one segment the microkernel reads in place: no im2col matrix is
// ever built. Rows touching the image border get their segment from a small zero-padded copy (or
// a zero buffer when the whole filter row is outside).
//
// Input gradient: a forward convolution of dy with the flipped, channel-swapped filter. With
// stride s the input pixels split into s*s phases (by position mod s); each phase sees a fixed
// subset of taps, so each is a dense implicit GEMM with no multiply-by-zero.
//
// Filter gradient: dw[t, cin, cout] = sum over pixels of x[pixel + t, cin] * dy[pixel, cout], a GEMM
// whose reduction runs over N*OH*OW. The reduction is split in chunks fixed by the problem (not by
// scheduling; the same for any pool of up to 4 threads), each summed into its own partial buffer;
// the partials are then added in a fixed order, so results are bit-identical across runs and
// thread counts.
#include <cstring>

#include "driver.h"
#include "kernels.h"

namespace ml {
namespace {

// Inputs with fewer channels than this use an im2col block in the filter gradient (see there).
constexpr int kThinChannels = 8;
// Target floats of K per chunk: keeps a B panel chunk (K x 16) within L1/L2.
constexpr long kChunkK = 512;

// Taps come in G groups; group g covers W horizontally adjacent taps: for C row (n, gy, gx) it
// reads input row gy*isy + gdy[g], pixels gx*isx + gdx[g] + j for j < W, all IC channels. K is
// ordered (group, j, channel), and B rows must follow that order.
struct ConvSrc {
  const float* x;  // the image for forward, dy for the input gradient
  long IH, IW, IC;
  long GH, GW, isy, isx;
  int G, W;
  const int* gdy;
  const int* gdx;
  const long* goff;  // (gdy * IW + gdx) * IC
  long y_min, y_max, x_min, x_max;  // input offsets the taps reach, for the interior test
  // C row (n, gy, gx) is y[n, gy*osy + ooy, gx*osx + oox, :].
  float* y;
  long OH, OW, OC, osy, ooy, osx, oox;
  const float* zeros;  // W * IC zeros
  int gpc;             // groups per K chunk
  long M;
  bool plain;  // 1x1, stride 1, no padding, dense output: row m is x + m * IC (a plain GEMM)

  int nchunks() const { return G == 0 ? 1 : static_cast<int>(ceil_div(G, gpc)); }
  int nseg(int c) const { return G == 0 ? 0 : static_cast<int>(min_l(G - static_cast<long>(c) * gpc, gpc)); }
  int seglen(int) const { return static_cast<int>(W * IC); }
  long k0(int c) const { return static_cast<long>(c) * gpc * W * IC; }
  int max_nseg() const { return G < gpc ? (G > 0 ? G : 1) : gpc; }
  long scratch_per_rb() const { return MR * static_cast<long>(max_nseg()) * W * IC; }

  void rows(long m, int c, const float** ap, float** cp, float* scratch) const {
    const int g0 = c * gpc;
    const int g1 = static_cast<int>(min_l(G, static_cast<long>(g0) + gpc));
    const long seg = W * IC;
    if (plain) {
      for (int r = 0; r < MR; ++r) {
        const long mm = m + r < M ? m + r : m;
        ap[r] = x + mm * IC;
        cp[r] = y + mm * OC;
      }
      return;
    }
    // Coordinates of row m, then stepped row by row (rows past M repeat the last valid one).
    long gx = m % GW;
    long q = m / GW;
    long gy = q % GH;
    long n = q / GH;
    for (int r = 0; r < MR; ++r) {
      if (r > 0 && m + r < M && ++gx == GW) {
        gx = 0;
        if (++gy == GH) {
          gy = 0;
          ++n;
        }
      }
      const long iy0 = gy * isy, ix0 = gx * isx;
      cp[r] = y + ((n * OH + gy * osy + ooy) * OW + gx * osx + oox) * OC;
      const float* base = x + n * IH * IW * IC;
      const float* pix = base + (iy0 * IW + ix0) * IC;  // only dereferenced at valid offsets
      if (iy0 + y_min >= 0 && iy0 + y_max < IH && ix0 + x_min >= 0 && ix0 + x_max < IW) {
        for (int g = g0; g < g1; ++g) ap[(g - g0) * MR + r] = pix + goff[g];
        continue;
      }
      for (int g = g0; g < g1; ++g) {
        const long iy = iy0 + gdy[g];
        const long ixs = ix0 + gdx[g];
        const float** slot = &ap[(g - g0) * MR + r];
        if (iy < 0 || iy >= IH) {
          *slot = zeros;
        } else if (ixs >= 0 && ixs + W <= IW) {
          *slot = pix + goff[g];
        } else {
          float* d = scratch + (static_cast<long>(r) * (g1 - g0) + (g - g0)) * seg;
          const float* src = base + iy * IW * IC;
          for (long j = 0; j < W; ++j) {
            const long ix = ixs + j;
            if (ix >= 0 && ix < IW) std::memcpy(d + j * IC, src + ix * IC, sizeof(float) * IC);
            else std::memset(d + j * IC, 0, sizeof(float) * IC);
          }
          *slot = d;
        }
      }
    }
  }
};

// Runs one implicit-GEMM convolution pass. wrow[k] is row k of B in the K order of src; columns
// are wrow[k][n * wcol_stride].
void conv_pass(ConvSrc src, const float* const* wrow, long wcol_stride, const Epilogue& ep) {
  const long seg = src.W * src.IC;
  const int K = static_cast<int>(src.G * seg);
  Scratch bmem(PackedB::floats(K > 0 ? K : 1, static_cast<int>(src.OC)) + 16);
  PackedB pb = pack_b(wrow, wcol_stride, K, static_cast<int>(src.OC), bmem.p);
  Scratch zeros(seg + 16);
  std::memset(zeros.p, 0, sizeof(float) * (seg + 16));
  src.zeros = zeros.p;
  long* goff = new long[src.G > 0 ? src.G : 1];
  src.y_min = src.x_min = 0;
  src.y_max = src.x_max = 0;
  for (int g = 0; g < src.G; ++g) {
    goff[g] = (static_cast<long>(src.gdy[g]) * src.IW + src.gdx[g]) * src.IC;
    const long ylo = src.gdy[g], xlo = src.gdx[g], xhi = src.gdx[g] + src.W - 1;
    src.y_min = g == 0 ? ylo : min_l(src.y_min, ylo);
    src.y_max = g == 0 ? ylo : max_l(src.y_max, ylo);
    src.x_min = g == 0 ? xlo : min_l(src.x_min, xlo);
    src.x_max = g == 0 ? xhi : max_l(src.x_max, xhi);
  }
  src.goff = goff;
  src.plain = src.G == 1 && src.W == 1 && src.gdy[0] == 0 && src.gdx[0] == 0 && src.isy == 1 && src.isx == 1 &&
              src.osy == 1 && src.osx == 1 && src.ooy == 0 && src.oox == 0 && src.OH == src.GH && src.OW == src.GW &&
              src.IH == src.GH && src.IW == src.GW;
  // Balanced chunks of whole groups, each about kChunkK floats of K.
  const long maxg = max_l(1, kChunkK / max_l(1, seg));
  src.gpc = src.G <= maxg ? max_l(1, src.G) : static_cast<int>(ceil_div(src.G, ceil_div(src.G, maxg)));
  gemm_bands(src, pb, ep);
  delete[] goff;
}

}  // namespace

void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* bias, int act,
                    float alpha, float* y) {
  const long M = static_cast<long>(s.n) * s.oh * s.ow;
  if (M == 0 || s.oc == 0) return;
  if (conv2d_forward_winograd(s, x, w, bias, act, alpha, y)) return;
  // One group per filter row when its taps are adjacent (dilation 1 along x), else one per tap.
  const bool rows_adjacent = s.dw == 1;
  const int G = rows_adjacent ? s.kh : s.kh * s.kw;
  const int W = rows_adjacent ? s.kw : 1;
  int* gdy = new int[G > 0 ? G : 1];
  int* gdx = new int[G > 0 ? G : 1];
  for (int g = 0; g < G; ++g) {
    const int kh = rows_adjacent ? g : g / s.kw;
    const int kw = rows_adjacent ? 0 : g % s.kw;
    gdy[g] = kh * s.dh - s.pt;
    gdx[g] = kw * s.dw - s.pl;
  }
  // (kh, kw, c) is the filter's own row order.
  const long K = static_cast<long>(s.kh) * s.kw * s.ic;
  const float** wrow = new const float*[K > 0 ? K : 1];
  for (long k = 0; k < K; ++k) wrow[k] = w + k * s.oc;
  ConvSrc src{};
  src.x = x;
  src.IH = s.ih; src.IW = s.iw; src.IC = s.ic;
  src.GH = s.oh; src.GW = s.ow; src.isy = s.sh; src.isx = s.sw;
  src.G = s.kh * s.kw > 0 ? G : 0; src.W = W; src.gdy = gdy; src.gdx = gdx;
  src.y = y;
  src.OH = s.oh; src.OW = s.ow; src.OC = s.oc; src.osy = 1; src.ooy = 0; src.osx = 1; src.oox = 0;
  src.M = M;
  conv_pass(src, wrow, 1, Epilogue{bias, act, alpha});
  delete[] wrow;
  delete[] gdy;
  delete[] gdx;
}

void conv2d_backprop_input(const ConvShape& s, const float* dy, const float* w, float* dx) {
  if (static_cast<long>(s.n) * s.ih * s.iw * s.ic == 0) return;
  if (conv2d_backprop_input_winograd(s, dy, w, dx)) return;
  // Phase (ph, pw): input pixels (ph + sh*a, pw + sw*b). Tap (kh, kw) reaches them from dy at
  // (a + (ph + pt - kh) / sh, b + (pw + pl - kw) / sw) when both divisions are exact. Taking kw in
  // descending order makes those dy columns ascend by one: a group per kh, as in the forward pass.
  int* gdy = new int[s.kh + 1];
  int* gdx = new int[s.kh + 1];
  int* kws = new int[s.kw + 1];
  const float** wrow = new const float*[static_cast<long>(s.kh) * s.kw * s.oc + 1];
  const Epilogue none{nullptr, kActLinear, 0.0f};
  for (int ph = 0; ph < s.sh && ph < s.ih; ++ph) {
    for (int pw = 0; pw < s.sw && pw < s.iw; ++pw) {
      int W = 0;
      for (int kw = s.kw - 1; kw >= 0; --kw) {
        const int v = pw + s.pl - kw;
        if (((v % s.sw) + s.sw) % s.sw == 0) kws[W++] = kw;
      }
      int G = 0;
      long k = 0;
      for (int kh = 0; kh < s.kh && W > 0; ++kh) {
        const int v = ph + s.pt - kh;
        if (((v % s.sh) + s.sh) % s.sh != 0) continue;
        gdy[G] = v / s.sh;
        gdx[G] = (pw + s.pl - kws[0]) / s.sw;
        ++G;
        // B row (kh, kw, cout) holds w[kh, kw, :, cout]: a column stride of oc.
        for (int j = 0; j < W; ++j) {
          const float* wt = w + (static_cast<long>(kh) * s.kw + kws[j]) * s.ic * s.oc;
          for (int co = 0; co < s.oc; ++co) wrow[k++] = wt + co;
        }
      }
      ConvSrc src{};
      src.x = dy;
      src.IH = s.oh; src.IW = s.ow; src.IC = s.oc;
      src.GH = ceil_div(s.ih - ph, s.sh);
      src.GW = ceil_div(s.iw - pw, s.sw);
      src.isy = 1; src.isx = 1;
      src.G = G; src.W = W > 0 ? W : 1; src.gdy = gdy; src.gdx = gdx;
      src.y = dx;
      src.OH = s.ih; src.OW = s.iw; src.OC = s.ic;
      src.osy = s.sh; src.ooy = ph; src.osx = s.sw; src.oox = pw;
      src.M = static_cast<long>(s.n) * src.GH * src.GW;
      conv_pass(src, wrow, s.oc, none);
    }
  }
  delete[] wrow;
  delete[] kws;
  delete[] gdy;
  delete[] gdx;
}

namespace {
// Output positions o with 0 <= o * s + d < size, intersected with [0, limit).
inline void valid_range(long d, long s, long size, long limit, long* lo, long* hi) {
  long a = d >= 0 ? 0 : ceil_div(-d, s);
  long b = (size - 1 - d) >= 0 ? (size - 1 - d) / s + 1 : 0;
  *lo = a;
  *hi = b < limit ? b : limit;
  if (*hi < *lo) *hi = *lo;
}

}  // namespace

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
  if (conv2d_backprop_filter_winograd(s, x, dy, dw)) return;
  const bool thin = IC < kThinChannels;
  // Rows of dy per cache block: the x rows it touches plus its dy rows fit in half of L2.
  const long row_floats = (static_cast<long>(s.sh) * s.iw * IC) + static_cast<long>(s.ow) * OC +
                          (thin ? static_cast<long>(s.ow) * Kp : 0);
  const long halo = static_cast<long>(s.kh) * s.iw * IC;
  const long sub_rows = max_l(1, (32768 - halo) / max_l(1, row_floats));
  // Fixed chunking of the reduction (see the file comment): 8 chunks keep up to 4 threads
  // balanced (larger pools get 2 per thread), each at least ~1M multiply-adds long.
  const int nt = pool_size();
  long nchunks = min_l(rows, max_l(8, 2L * nt));
  nchunks = max_l(1, min_l(nchunks, ceil_div(rows * s.ow * Kp * OC, 1L << 20)));
  Scratch partial(nchunks > 1 ? nchunks * wsize : 1);
  float* const parts = nchunks > 1 ? partial.p : dw;
  const long col_floats = thin ? sub_rows * s.ow * Kp : 1;
  Scratch colmem(col_floats * nt);
  // dy of one output tile, one panel of 16 channels at a time, packed contiguously when dy rows
  // are wide: the kernel then streams it instead of touching a new cache line per pixel.
  const bool pack_dy = !thin && OC > NR;

  // The L1 tile (see the direct path below): the most output pixels whose x and dy cache lines
  // for one channel block fit in 24 KB.
  long tile_rows = 1, tile_cols = s.ow;
  {
    long best = 0;
    const long cands[] = {s.ow, 128, 96, 64, 48, 32, 16, 8};
    for (long cw : cands) {
      if (cw > s.ow || cw < 1) continue;
      for (long r = 1; r <= sub_rows; ++r) {
        const long xbytes = ((r - 1) * s.sh + s.kh) * ((cw - 1) * s.sw + s.kw) * 64;
        const long bytes = xbytes + r * cw * 64;
        if (bytes > 24576 && r > 1) break;
        if (r * cw > best) {
          best = r * cw;
          tile_rows = r;
          tile_cols = cw;
        }
        if (bytes > 24576) break;
      }
    }
  }
  const long pack_floats = pack_dy ? ceil_div(OC, NR) * tile_rows * tile_cols * NR : 1;
  Scratch packmem(pack_floats * nt);
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
        // im2col of this block: one row of Kp per output pixel, filled tap by tap so that bounds
        // are settled per image row, not per element.
        for (long oy = y0; oy < y1; ++oy) {
          float* crow = col + (oy - y0) * s.ow * Kp;
          for (int kh = 0; kh < s.kh; ++kh) {
            const long iy = oy * s.sh + kh - s.pt;
            const bool row_ok = iy >= 0 && iy < s.ih;
            for (int kw = 0; kw < s.kw; ++kw) {
              const long t = static_cast<long>(kh) * s.kw + kw;
              const long xa = row_ok ? xlo[kw] : s.ow, xb = row_ok ? xhi[kw] : s.ow;
              float* d = crow + t * IC;
              long ox = 0;
              for (; ox < xa; ++ox)
                for (long c = 0; c < IC; ++c) d[ox * Kp + c] = 0.0f;
              const float* src = xn + (iy * s.iw + xa * s.sw + kw - s.pl) * IC;
              if (IC == 1) {
                for (; ox < xb; ++ox, src += s.sw) d[ox * Kp] = *src;
              } else {
                for (; ox < xb; ++ox, src += s.sw * IC)
                  for (long c = 0; c < IC; ++c) d[ox * Kp + c] = src[c];
              }
              for (; ox < s.ow; ++ox)
                for (long c = 0; c < IC; ++c) d[ox * Kp + c] = 0.0f;
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
      // Output tiles small enough that one (channel block, panel) pass over all taps reads x and
      // dy from L1: each step of the microkernel touches a new cache line of each.
      for (long ty0 = y0; ty0 < y1; ty0 += tile_rows) {
        const long ty1 = min_l(y1, ty0 + tile_rows);
        for (long tx0 = 0; tx0 < s.ow; tx0 += tile_cols) {
          const long tx1 = min_l(s.ow, tx0 + tile_cols);
          float* pk = packmem.p + thread * pack_floats;
          const long tile_px = tile_rows * tile_cols;
          if (pack_dy) {
            // Panel-major copy of this tile's dy: pixel (y, x) of panel p at
            // p * tile_px * NR + ((y - ty0) * tile_cols + x - tx0) * NR, zero beyond OC.
            for (long co = 0; co < OC; co += NR) {
              const long nc = min_l(NR, OC - co);
              float* d = pk + (co / NR) * tile_px * NR;
              for (long yy = ty0; yy < ty1; ++yy) {
                const float* srow = dy + ((n * s.oh + yy) * s.ow + tx0) * OC + co;
                float* drow = d + (yy - ty0) * tile_cols * NR;
                for (long xx = 0; xx < tx1 - tx0; ++xx) {
                  if (nc == NR) {
                    _mm256_storeu_ps(drow + xx * NR, _mm256_loadu_ps(srow + xx * OC));
                    _mm256_storeu_ps(drow + xx * NR + 8, _mm256_loadu_ps(srow + xx * OC + 8));
                  } else {
                    for (long j = 0; j < NR; ++j) drow[xx * NR + j] = j < nc ? srow[xx * OC + j] : 0.0f;
                  }
                }
              }
            }
          }
          for (long ci = 0; ci < IC; ci += MR) {
            const int rr = static_cast<int>(min_l(MR, IC - ci));
            for (long co = 0; co < OC; co += NR) {
              const int nc = static_cast<int>(min_l(NR, OC - co));
              const float* bbase = pack_dy ? pk + (co / NR) * tile_px * NR : nullptr;
              const long b_cs = pack_dy ? NR : OC;
              const long b_rs = pack_dy ? tile_cols * NR : s.ow * OC;
              for (int t = 0; t < T; ++t) {
                const int kh = t / s.kw, kw = t % s.kw;
                const long ya = max_l(ylo[kh], ty0), yb = min_l(yhi[kh], ty1);
                const long xa = max_l(xlo[kw], tx0), xb = min_l(xhi[kw], tx1);
                if (ya >= yb || xa >= xb) continue;
                const float* a = xn + ((ya * s.sh + kh - s.pt) * s.iw + xa * s.sw + kw - s.pl) * IC + ci;
                const float* b = pack_dy ? bbase + ((ya - ty0) * tile_cols + (xa - tx0)) * NR
                                         : dy + ((n * s.oh + ya) * s.ow + xa) * OC + co;
                outer_block(rr, nc, static_cast<int>(yb - ya), static_cast<int>(xb - xa), a, s.sw * IC,
                            static_cast<long>(s.sh) * s.iw * IC, b, b_cs, b_rs,
                            part + (static_cast<long>(t) * IC + ci) * OC + co, OC);
              }
            }
          }
        }
      }
    }
  }, nt);

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
