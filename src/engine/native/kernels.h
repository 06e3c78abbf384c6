// The boundary between the N-API glue (baseline x86-64) and the AVX2/FMA kernels. Only plain
// types cross it; see threadpool.h for why.
//
// Layouts follow tfjs: float32, row-major, images NHWC, conv filters [kh, kw, cin, cout].
// Every kernel writes all of its output (callers may pass uninitialised memory) and may use the
// thread pool.
#pragma once

namespace ml {

enum Activation : int { ACT_LINEAR = 0, ACT_RELU = 1, ACT_RELU6 = 2, ACT_LEAKYRELU = 3, ACT_SIGMOID = 4 };

struct ConvShape {
  int n, ih, iw, ic;  // input
  int kh, kw, oc;     // filter
  int sh, sw;         // strides
  int dh, dw;         // dilations (forward only)
  int pt, pl;         // padding before (top, left); padding after is implied by oh, ow
  int oh, ow;         // output
};

// y = act(conv(x, w) + bias); bias (length oc) may be null.
void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* bias, int act,
                    float alpha, float* y);
// dx = gradient of conv(x, w) w.r.t. x, given dy (shape n, oh, ow, oc).
void conv2d_backprop_input(const ConvShape& s, const float* dy, const float* w, float* dx);
// The same three for 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) (winograd.cc); each returns
// false, having done nothing, for shapes it does not take.
bool conv2d_forward_winograd(const ConvShape& s, const float* x, const float* w, const float* bias, int act,
                             float alpha, float* y);
bool conv2d_backprop_input_winograd(const ConvShape& s, const float* dy, const float* w, float* dx);
bool conv2d_backprop_filter_winograd(const ConvShape& s, const float* x, const float* dy, float* dw);
// Which Winograd tiles the three above use: kWinogradAuto (the default: per kind of convolution,
// whichever of F(4x4) and F(2x2) ran faster on this machine, timed at its first call), 4 (F(4x4)
// where it applies, else F(2x2)), 2 (F(2x2) only) or 0 (none: every convolution takes the direct
// kernels). Benchmarks and tests set the others to compare.
constexpr int kWinogradAuto = -1;
void set_winograd(int tiles);
int winograd_tiles();
// The tiles kWinogradAuto has chosen, one plan per kind of convolution: {channels in, channels
// out, log2 of the output's pixels, tile}. winograd_plans writes up to `capacity` plans as 4 ints
// each and returns how many there are. A plan added for a kind not yet met is used instead of
// timing it; add_winograd_plan returns whether it was added (a kind keeps its first tile).
long winograd_plan_count();
long winograd_plans(int* plans, long capacity);
bool add_winograd_plan(int ic, int oc, int size_log2, int tile);
// Whether 16-column GEMM panels run on the AVX-512 microkernel (ukernel512.cc) instead of the
// AVX2 one. The glue turns it on at load where the CPU and OS support AVX-512F; benchmarks turn
// it off to compare.
void set_avx512(bool on);
// dw = gradient of conv(x, w) w.r.t. w, given x and dy.
void conv2d_backprop_filter(const ConvShape& s, const float* x, const float* dy, float* dw);

// c[b] = act(op(a[b % batch_a]) * op(b[b % batch_b]) + bias) for b < max(batch_a, batch_b);
// op(a) is m x k, op(b) is k x n. bias (length n, broadcast over rows) may be null.
void matmul(const float* a, const float* b, float* c, int batch_a, int batch_b, int m, int n, int k,
            bool trans_a, bool trans_b, const float* bias, int act, float alpha);

// Max pooling over windows (kh, kw) with strides and padding; padded cells never win.
void max_pool(const float* x, float* y, int n, int h, int w, int c, int kh, int kw, int sh, int sw,
              int pt, int pl, int oh, int ow);
// Gradient of max_pool: each dy goes to the first maximum of its window (row-major order, strict
// comparison), as tfjs' cpu backend does.
void max_pool_grad(const float* dy, const float* x, float* dx, int n, int h, int w, int c, int kh,
                   int kw, int sh, int sw, int pt, int pl, int oh, int ow);

// Nearest-neighbour resize given the source row/col of every output row/col (the caller computes
// them with tfjs' exact arithmetic).
void resize_nearest(const float* x, float* y, int n, int h, int w, int c, int oh, int ow,
                    const int* src_row, const int* src_col);
// Its exact adjoint: dx[src] += dy[dst].
void resize_nearest_grad(const float* dy, float* dx, int n, int h, int w, int c, int oh, int ow,
                         const int* src_row, const int* src_col);

enum UnaryOp : int {
  U_RELU = 0, U_RELU6 = 1, U_LEAKYRELU = 2, U_SIGMOID = 3, U_STEP = 4, U_NEG = 5, U_EXP = 6,
  U_SQUARE = 7, U_ABS = 8, U_SQRT = 9, U_RSQRT = 10, U_RECIPROCAL = 11
};
void unary(int op, const float* x, float* y, long size, float alpha);

enum BinaryOp : int { B_ADD = 0, B_SUB = 1, B_MUL = 2, B_DIV = 3, B_MAX = 4, B_MIN = 5, B_SQDIFF = 6 };
// How a binary operand covers the rows x inner output: all of it, one row of `inner` values shared
// by every row (a bias), or one value per row shared by its `inner` elements (a per-pixel mask
// against per-channel values). At most one operand is not L_FULL.
enum OperandLayout : int { L_FULL = 0, L_ROW = 1, L_COLUMN = 2 };
void binary(int op, const float* a, const float* b, float* out, long rows, long inner, int a_layout,
            int b_layout);

// One Adam step: the settings of a step (one_minus_* and the bias corrections 1 - beta^t computed
// by the caller, as tfjs computes them).
struct AdamStep {
  float learning_rate, beta1, beta2, one_minus_beta1, one_minus_beta2, correction1, correction2, epsilon;
};
// Adam's update of `size` weights x with gradient g and moments m, v: writes the new weights and
// moments to x_out, m_out, v_out (each may be its input).
void adam(const float* x, const float* g, const float* m, const float* v, float* x_out, float* m_out, float* v_out, long size,
          const AdamStep& a);
// Softmax over the last axis of x viewed as [rows, classes]; y may be x.
void softmax(const float* x, float* y, long rows, long classes);

// x viewed as [outer, mid, inner]: y[o, i] = sum over m of x[o, m, i].
void reduce_sum(const float* x, float* y, long outer, long mid, long inner);

// Copies `rows` rows: dst row r gets src row r's `len` floats; strides in floats.
void copy_rows(const float* src, long src_stride, float* dst, long dst_stride, long rows, long len);

// Batch normalisation of `rows` rows (N·H·W) of `channels` features by the batch's statistics,
// then scale gamma and shift beta, then a ReLU when `relu`: the training forward pass
// (batchnorm.cc). Writes y, and per channel the mean, the biased variance and 1/sqrt(var + eps).
void batch_norm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* inv_std,
                        float* variance, long rows, long channels, float eps, bool relu);
// Its gradient from dy (with respect to y) and the forward pass's x, y, mean and inv_std.
void batch_norm_backward(const float* dy, const float* x, const float* y, const float* mean, const float* inv_std,
                         const float* gamma, float* dx, float* dgamma, float* dbeta, long rows, long channels,
                         bool relu);

}  // namespace ml
