// Batched matrix multiplication (tfjs BatchMatMul / _FusedMatMul) on the shared GEMM driver.
// op(B) is packed into panels once per distinct B; op(A) must have contiguous rows, so a
// transposed A is transposed into scratch first (O(MK) against the GEMM's O(MKN)).
#include <cstring>

#include "driver.h"
#include "kernels.h"

namespace ml {
namespace {

constexpr long kMatChunkK = 384;

struct MatSrc {
  const float* A;
  long lda;
  float* C;
  long ldc;
  long M, K;

  int nchunks() const { return K == 0 ? 1 : static_cast<int>(ceil_div(K, kMatChunkK)); }
  int nseg(int) const { return 1; }
  int seglen(int c) const { return static_cast<int>(min_l(kMatChunkK, K - c * kMatChunkK)); }
  long k0(int c) const { return c * kMatChunkK; }
  int max_nseg() const { return 1; }
  long scratch_per_rb() const { return 0; }
  void rows(long m, int c, const float** ap, float** cp, float*) const {
    for (int r = 0; r < MR; ++r) {
      const long mm = m + r < M ? m + r : m;
      ap[r] = A + mm * lda + c * kMatChunkK;
      cp[r] = C + mm * ldc;
    }
  }
};

// dst (rows x cols) = transpose of src (cols x rows), in cache-sized tiles.
void transpose(const float* src, float* dst, long rows, long cols) {
  constexpr long kTile = 32;
  for (long i0 = 0; i0 < rows; i0 += kTile) {
    const long i1 = min_l(rows, i0 + kTile);
    for (long j0 = 0; j0 < cols; j0 += kTile) {
      const long j1 = min_l(cols, j0 + kTile);
      for (long i = i0; i < i1; ++i)
        for (long j = j0; j < j1; ++j) dst[i * cols + j] = src[j * rows + i];
    }
  }
}

}  // namespace

void matmul(const float* a, const float* b, float* c, int batch_a, int batch_b, int m, int n, int k,
            bool trans_a, bool trans_b, const float* bias, int act, float alpha) {
  const int batch = batch_a > batch_b ? batch_a : batch_b;
  if (batch == 0 || m == 0 || n == 0) return;
  const long a_size = static_cast<long>(m) * k, b_size = static_cast<long>(k) * n;
  const long c_size = static_cast<long>(m) * n;

  // Pack every distinct op(B).
  const long pb_floats = PackedB::floats(k > 0 ? k : 1, n);
  Scratch bmem(pb_floats * batch_b + 16);
  PackedB* packs = new PackedB[batch_b];
  {
    const float** krow = new const float*[k > 0 ? k : 1];
    for (int bi = 0; bi < batch_b; ++bi) {
      const float* bb = b + bi * b_size;
      // op(B)(kk, j): B[kk, j] (row kk, stride 1) or B^T: B[j, kk] (column stride k).
      for (int kk = 0; kk < k; ++kk) krow[kk] = trans_b ? bb + kk : bb + static_cast<long>(kk) * n;
      packs[bi] = pack_b(krow, trans_b ? k : 1, k, n, bmem.p + bi * pb_floats);
    }
    delete[] krow;
  }
  // Rows of op(A) must be contiguous.
  const float* arows = a;
  Scratch tmem(trans_a ? a_size * batch_a + 16 : 16);
  if (trans_a) {
    parallel_for(batch_a, [&](long bi, int) { transpose(a + bi * a_size, tmem.p + bi * a_size, m, k); });
    arows = tmem.p;
  }
  const Epilogue ep{bias, act, alpha};

  // Small products in a batch: one task per product, each single-threaded, to avoid paying a
  // parallel dispatch per tiny GEMM.
  const bool per_product = batch > 1 && static_cast<double>(m) * n * k < (1 << 18);
  if (!per_product) {
    for (int bi = 0; bi < batch; ++bi) {
      MatSrc src{arows + (bi % batch_a) * a_size, k, c + bi * c_size, n, m, k};
      gemm_bands(src, packs[bi % batch_b], ep);
    }
  } else {
    MatSrc proto{arows, k, c, n, m, k};
    const BandTables tb = BandTables::of(proto, m);
    const int nt = pool_size();
    const float** ptr_mem = static_cast<const float**>(std::malloc(sizeof(float*) * (tb.ptrs * nt + 8)));
    if (!ptr_mem) std::abort();
    parallel_for(batch, [&](long bi, int thread) {
      MatSrc src{arows + (bi % batch_a) * a_size, k, c + bi * c_size, n, m, k};
      const float** ap = tb.ap(ptr_mem, thread);
      const PackedB& pb = packs[bi % batch_b];
      gemm_band(src, pb, ep, 0, m, 0, pb.npanels, ap, cptrs(src, ap, m), nullptr);
    }, nt);
    std::free(ptr_mem);
  }
  delete[] packs;
}

}  // namespace ml
