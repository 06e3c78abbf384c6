// The AVX-512 microkernel (ukernel512.cc, the only file compiled with -mavx512f), seen from the
// AVX2 translation units: ukernels.h sends 16-column panels to it when avx512_active is set.
// Plain types only, as at every boundary between files built for different instruction sets.
#pragma once

namespace ml {

// Set by set_avx512 (kernels.h) only where the CPU and OS support AVX-512F.
extern bool avx512_active;

// ukr_rows (ukernels.h) for a 16-column panel, with one zmm per row of C: the same operands and
// the same contract. bias (at the panel's first column) may be null; act is an activation code
// other than sigmoid (kActLinear without an epilogue).
void ukr_rows16_avx512(int nseg, int seglen, const float* const* ap, const float* b, float* const* cp, int mr,
                       int nc, bool acc, const float* bias, int act, float alpha);

}  // namespace ml
