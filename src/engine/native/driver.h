// Cache-blocked, multi-threaded GEMM driver over a "row source": C (M x N) = A (M x K) * B (K x N)
// with B packed once and A read in place through per-row segment pointers (so a convolution never
// materialises its im2col matrix). Internal linkage; included by the AVX2 translation units.
//
// A row source provides:
//   long M;                            rows of C
//   int nchunks() const;               K is processed in chunks (C is accumulated across them)
//   int nseg(int c) const; int seglen(int c) const; long k0(int c) const;
//   int max_nseg() const;
//   long scratch_per_rb() const;       floats of private scratch one row block may fill
//   void rows(long m, int c, const float** ap, float** cp, float* scratch) const;
//       fills ap[s * 6 + r] (segment s of row m + r) and cp[r] (C row m + r at column 0) for the
//       6 rows starting at m; rows past M must get readable A pointers (results are dropped).
#pragma once

#include "ukernels.h"

namespace ml {
namespace {

// Rows of C one task owns: large enough to amortise B panel loads from L1/L2, small enough that
// the band's A working set stays in L2.
constexpr long kBandRows = 96;

// Computes C rows [m0, m1) for panels [p0, p1) of pb. ap/cp/scr are the caller's private tables
// (sized by band_tables()).
template <class Src>
void gemm_band(const Src& src, const PackedB& pb, const Epilogue& ep, long m0, long m1, int p0, int p1,
               const float** ap, float** cp, float* scr) {
  const int nchunks = src.nchunks();
  const bool has_ep = ep.bias != nullptr || ep.act != kActLinear;
  const long nrb = ceil_div(m1 - m0, MR);
  const long scratch_rb = src.scratch_per_rb();
  for (int c = 0; c < nchunks; ++c) {
    const int nseg = src.nseg(c);
    const int seglen = src.seglen(c);
    const long k0 = src.k0(c);
    const long aps = static_cast<long>(nseg) * MR;
    for (long rb = 0; rb < nrb; ++rb) {
      src.rows(m0 + rb * MR, c, ap + rb * aps, cp + rb * MR, scr + rb * scratch_rb);
    }
    const bool acc = c > 0;
    const bool last = c == nchunks - 1;
    for (int p = p0; p < p1; ++p) {
      const int w = pb.width(p);
      const int nc = pb.cols(p);
      const float* b = pb.panel(p) + k0 * w;
      Epilogue e = ep;
      if (e.bias) e.bias += static_cast<long>(p) * NR;
      const long coff = static_cast<long>(p) * NR;
      for (long rb = 0; rb < nrb; ++rb) {
        float* crow[MR];
        float* const* cr = cp + rb * MR;
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) crow[r] = cr[r] + coff;
        const int mr = static_cast<int>(min_l(MR, m1 - (m0 + rb * MR)));
        ukr_rows_dispatch(w, nseg, seglen, ap + rb * aps, b, crow, mr, nc, acc,
                          last && has_ep ? &e : nullptr);
      }
    }
  }
}

// Private tables for gemm_band over at most `rows` rows.
struct BandTables {
  long ptrs = 0;    // pointer slots
  long floats = 0;  // scratch floats
  template <class Src>
  static BandTables of(const Src& src, long rows) {
    BandTables t;
    const long nrb = ceil_div(rows, MR);
    t.ptrs = nrb * (static_cast<long>(src.max_nseg()) * MR + MR);
    t.floats = nrb * src.scratch_per_rb();
    return t;
  }
  const float** ap(const float** mem, long i) const { return mem + i * ptrs; }
};

template <class Src>
inline float** cptrs(const Src& src, const float** ap, long rows) {
  return const_cast<float**>(ap + ceil_div(rows, MR) * src.max_nseg() * MR);
}

// All of C, split over the pool by bands of rows (and groups of panels when rows are few).
template <class Src>
void gemm_bands(const Src& src, const PackedB& pb, const Epilogue& ep) {
  const long M = src.M;
  if (M <= 0 || pb.N <= 0) return;
  const int nt = pool_size();
  // Enough tasks for every thread to get several (dynamic scheduling evens out the tail), but no
  // band smaller than one microkernel row block.
  long band = kBandRows;
  const long want_tasks = 8L * nt;
  if (ceil_div(M, band) < want_tasks) band = max_l(MR, ceil_div(ceil_div(M, want_tasks), MR) * MR);
  const long nbands = ceil_div(M, band);
  const int np = pb.npanels;
  int ngroups = 1;
  if (nbands < want_tasks) ngroups = static_cast<int>(min_l(np, ceil_div(want_tasks, nbands)));
  const BandTables tb = BandTables::of(src, band);
  const float** ptr_mem = static_cast<const float**>(std::malloc(sizeof(float*) * (tb.ptrs * nt + 8)));
  if (!ptr_mem) std::abort();
  Scratch scratch(tb.floats * nt + 16);

  parallel_for(nbands * ngroups, [&](long task, int thread) {
    const long bi = task / ngroups;
    const int g = static_cast<int>(task % ngroups);
    const long m0 = bi * band;
    const long m1 = min_l(M, m0 + band);
    const int p0 = static_cast<int>(static_cast<long>(g) * np / ngroups);
    const int p1 = static_cast<int>(static_cast<long>(g + 1) * np / ngroups);
    const float** ap = tb.ap(ptr_mem, thread);
    gemm_band(src, pb, ep, m0, m1, p0, p1, ap, cptrs(src, ap, band), scratch.p + thread * tb.floats);
  }, nt);
  std::free(ptr_mem);
}

}  // namespace
}  // namespace ml
