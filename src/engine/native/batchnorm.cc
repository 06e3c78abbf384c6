// Batch normalisation for training, with the ReLU that follows it in the U-Net, in two kernels:
// the forward pass (batch statistics, normalise, scale, shift, ReLU) and its gradient. Composed
// of generic tensor ops, the same work takes seven full passes forward and nine backward, about a
// fifth of a training step of the batch-normalised U-Net; here it is three and two.
//
// Sums run in double over chunks of rows fixed by the problem size, combined in chunk order, so
// the results do not depend on the thread count.
#include <cmath>
#include <cstring>

#include "kernels.h"
#include "simd.h"

namespace ml {
namespace {

// Floats per chunk of rows: big enough to amortise dispatch, small enough to share the work.
constexpr long kChunkFloats = 1L << 15;

struct Chunks {
  long rows_per, count;
  Chunks(long rows, long channels) {
    rows_per = max_l(1, kChunkFloats / max_l(1, channels));
    count = ceil_div(rows, rows_per);
  }
};

// out[c] = sum over chunks of part[chunk * channels + c], in chunk order.
void combine(const double* part, long count, long channels, double* out) {
  for (long c = 0; c < channels; ++c) out[c] = 0;
  for (long k = 0; k < count; ++k)
    for (long c = 0; c < channels; ++c) out[c] += part[k * channels + c];
}

// total[c] = sum over rows of term(i, c), where i = r * channels + c, in double; part holds
// ch.count * channels partial sums.
template <class Term>
void channel_sums(const Chunks& ch, long rows, long channels, double* part, double* total, Term term) {
  parallel_for(ch.count, [&](long k, int) {
    double* acc = part + k * channels;
    for (long c = 0; c < channels; ++c) acc[c] = 0;
    const long r1 = min_l(rows, (k + 1) * ch.rows_per);
    for (long r = k * ch.rows_per; r < r1; ++r)
      for (long c = 0; c < channels; ++c) acc[c] += term(r * channels + c, c);
  });
  combine(part, ch.count, channels, total);
}

}  // namespace

void batch_norm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* inv_std,
                        float* variance, long rows, long channels, float eps, bool relu) {
  if (channels == 0) return;
  const Chunks ch(rows, channels);
  double* part = new double[ch.count * channels];
  double* total = new double[channels];
  const double n = static_cast<double>(max_l(1, rows));

  // Mean, then the variance around it (two passes: no cancellation in E[x²] − E[x]²).
  channel_sums(ch, rows, channels, part, total, [&](long i, long) { return static_cast<double>(x[i]); });
  for (long c = 0; c < channels; ++c) mean[c] = static_cast<float>(total[c] / n);
  channel_sums(ch, rows, channels, part, total, [&](long i, long c) {
    const double d = static_cast<double>(x[i]) - mean[c];
    return d * d;
  });
  // y = x * scale + shift, with scale = gamma / sqrt(var + eps) and shift = beta - mean * scale.
  float* scale = new float[channels];
  float* shift = new float[channels];
  for (long c = 0; c < channels; ++c) {
    variance[c] = static_cast<float>(total[c] / n);
    inv_std[c] = static_cast<float>(1.0 / std::sqrt(total[c] / n + eps));
    scale[c] = gamma[c] * inv_std[c];
    shift[c] = beta[c] - mean[c] * scale[c];
  }
  parallel_for(ch.count, [&](long k, int) {
    const long r1 = min_l(rows, (k + 1) * ch.rows_per);
    for (long r = k * ch.rows_per; r < r1; ++r) {
      const float* xr = x + r * channels;
      float* yr = y + r * channels;
      if (relu) {
        for (long c = 0; c < channels; ++c) {
          const float v = xr[c] * scale[c] + shift[c];
          yr[c] = v > 0.0f ? v : 0.0f;
        }
      } else {
        for (long c = 0; c < channels; ++c) yr[c] = xr[c] * scale[c] + shift[c];
      }
    }
  });
  delete[] scale;
  delete[] shift;
  delete[] total;
  delete[] part;
}

void batch_norm_backward(const float* dy, const float* x, const float* y, const float* mean, const float* inv_std,
                         const float* gamma, float* dx, float* dgamma, float* dbeta, long rows, long channels,
                         bool relu) {
  if (channels == 0) return;
  const Chunks ch(rows, channels);
  // Per chunk: the sums of g (the gradient after the ReLU's mask) and of g·x̂.
  double* part = new double[2 * ch.count * channels];
  parallel_for(ch.count, [&](long k, int) {
    double* sg = part + 2 * k * channels;
    double* sgx = sg + channels;
    for (long c = 0; c < channels; ++c) sg[c] = sgx[c] = 0;
    const long r1 = min_l(rows, (k + 1) * ch.rows_per);
    for (long r = k * ch.rows_per; r < r1; ++r) {
      const float* dyr = dy + r * channels;
      const float* xr = x + r * channels;
      const float* yr = y + r * channels;
      for (long c = 0; c < channels; ++c) {
        const float g = relu && !(yr[c] > 0.0f) ? 0.0f : dyr[c];
        sg[c] += g;
        sgx[c] += static_cast<double>(g) * ((xr[c] - mean[c]) * inv_std[c]);
      }
    }
  });
  double* db = new double[channels];
  double* dg = new double[channels];
  for (long c = 0; c < channels; ++c) db[c] = dg[c] = 0;
  for (long k = 0; k < ch.count; ++k)
    for (long c = 0; c < channels; ++c) {
      db[c] += part[2 * k * channels + c];
      dg[c] += part[(2 * k + 1) * channels + c];
    }
  // dx = gamma·inv_std·(g − dβ/n − x̂·dγ/n): x̂'s dependence on the batch's mean and variance.
  const double n = static_cast<double>(max_l(1, rows));
  float* k_scale = new float[channels];
  float* k_mean = new float[channels];
  float* k_xhat = new float[channels];
  for (long c = 0; c < channels; ++c) {
    dbeta[c] = static_cast<float>(db[c]);
    dgamma[c] = static_cast<float>(dg[c]);
    k_scale[c] = gamma[c] * inv_std[c];
    k_mean[c] = static_cast<float>(db[c] / n);
    k_xhat[c] = static_cast<float>(dg[c] / n);
  }
  parallel_for(ch.count, [&](long k, int) {
    const long r1 = min_l(rows, (k + 1) * ch.rows_per);
    for (long r = k * ch.rows_per; r < r1; ++r) {
      const float* dyr = dy + r * channels;
      const float* xr = x + r * channels;
      const float* yr = y + r * channels;
      float* dxr = dx + r * channels;
      for (long c = 0; c < channels; ++c) {
        const float g = relu && !(yr[c] > 0.0f) ? 0.0f : dyr[c];
        const float xhat = (xr[c] - mean[c]) * inv_std[c];
        dxr[c] = k_scale[c] * (g - k_mean[c] - xhat * k_xhat[c]);
      }
    }
  });
  delete[] k_scale;
  delete[] k_mean;
  delete[] k_xhat;
  delete[] db;
  delete[] dg;
  delete[] part;
}

}  // namespace ml
