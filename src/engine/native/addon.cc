// N-API glue for maskloop's native kernels. Compiled for baseline x86-64 so that loading the addon
// on a CPU without AVX2/FMA works and reports why it cannot be used, instead of dying of SIGILL.
// Every entry point validates shapes against the typed arrays it was given: a wrong size from JS
// must throw, never write out of bounds.
#include <napi.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels.h"
#include "threadpool.h"

namespace {

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // libgcc also checks that the OS saves the AVX register state (XGETBV) before reporting these.
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

// AVX-512F with the OS saving the zmm state (libgcc checks XGETBV for it too).
bool cpu_has_avx512f() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

struct F32 {
  float* data = nullptr;
  size_t length = 0;
};

F32 f32(const Napi::CallbackInfo& info, size_t i, const char* name, bool nullable = false) {
  Napi::Value v = info[i];
  if (nullable && (v.IsNull() || v.IsUndefined())) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Float32Array");
  }
  auto a = v.As<Napi::Float32Array>();
  return {a.Data(), a.ElementLength()};
}

const int32_t* i32s(const Napi::CallbackInfo& info, size_t i, const char* name, size_t need) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an Int32Array");
  }
  auto a = v.As<Napi::Int32Array>();
  if (a.ElementLength() < need) throw Napi::RangeError::New(info.Env(), std::string(name) + " is too short");
  return a.Data();
}

int64_t num(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return v.As<Napi::Number>().Int64Value();
}

double real(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0.0;
}

bool flag(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }

void need(const Napi::CallbackInfo& info, const F32& a, int64_t n, const char* name) {
  if (n < 0 || static_cast<uint64_t>(n) > a.length) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " has " + std::to_string(a.length) +
                                                " elements, the shapes need " + std::to_string(n));
  }
}

void nonneg(const Napi::CallbackInfo& info, std::initializer_list<int64_t> vals) {
  for (int64_t v : vals) {
    if (v < 0 || v > INT32_MAX) throw Napi::RangeError::New(info.Env(), "negative or oversized dimension");
  }
}

ml::ConvShape conv_shape(const Napi::CallbackInfo& info, size_t i) {
  const int32_t* g = i32s(info, i, "geometry", 15);
  ml::ConvShape s{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14]};
  nonneg(info, {s.n, s.ih, s.iw, s.ic, s.kh, s.kw, s.oc, s.oh, s.ow, s.pt, s.pl});
  if (s.sh < 1 || s.sw < 1 || s.dh < 1 || s.dw < 1) throw Napi::RangeError::New(info.Env(), "strides and dilations must be >= 1");
  return s;
}

int64_t prod(std::initializer_list<int64_t> v) {
  int64_t p = 1;
  for (int64_t x : v) p *= x;
  return p;
}

// conv2d(x, w, bias | null, y, geometry, activation, alpha)
Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  ml::ConvShape s = conv_shape(info, 4);
  F32 x = f32(info, 0, "x"), w = f32(info, 1, "filter"), b = f32(info, 2, "bias", true), y = f32(info, 3, "y");
  need(info, x, prod({s.n, s.ih, s.iw, s.ic}), "x");
  need(info, w, prod({s.kh, s.kw, s.ic, s.oc}), "filter");
  if (b.data) need(info, b, s.oc, "bias");
  need(info, y, prod({s.n, s.oh, s.ow, s.oc}), "y");
  const int act = static_cast<int>(num(info, 5, "activation"));
  if (act < ml::ACT_LINEAR || act > ml::ACT_SIGMOID) throw Napi::RangeError::New(info.Env(), "unknown activation");
  ml::conv2d_forward(s, x.data, w.data, b.data, act, static_cast<float>(real(info, 6)), y.data);
  return info.Env().Undefined();
}

// conv2dBackpropInput(dy, w, dx, geometry)
Napi::Value Conv2dBackpropInput(const Napi::CallbackInfo& info) {
  ml::ConvShape s = conv_shape(info, 3);
  F32 dy = f32(info, 0, "dy"), w = f32(info, 1, "filter"), dx = f32(info, 2, "dx");
  need(info, dy, prod({s.n, s.oh, s.ow, s.oc}), "dy");
  need(info, w, prod({s.kh, s.kw, s.ic, s.oc}), "filter");
  need(info, dx, prod({s.n, s.ih, s.iw, s.ic}), "dx");
  ml::conv2d_backprop_input(s, dy.data, w.data, dx.data);
  return info.Env().Undefined();
}

// conv2dBackpropFilter(x, dy, dw, geometry)
Napi::Value Conv2dBackpropFilter(const Napi::CallbackInfo& info) {
  ml::ConvShape s = conv_shape(info, 3);
  F32 x = f32(info, 0, "x"), dy = f32(info, 1, "dy"), dw = f32(info, 2, "dw");
  need(info, x, prod({s.n, s.ih, s.iw, s.ic}), "x");
  need(info, dy, prod({s.n, s.oh, s.ow, s.oc}), "dy");
  need(info, dw, prod({s.kh, s.kw, s.ic, s.oc}), "dw");
  ml::conv2d_backprop_filter(s, x.data, dy.data, dw.data);
  return info.Env().Undefined();
}

// matmul(a, b, c, bias | null, batchA, batchB, m, n, k, transA, transB, activation, alpha)
Napi::Value MatMul(const Napi::CallbackInfo& info) {
  F32 a = f32(info, 0, "a"), b = f32(info, 1, "b"), c = f32(info, 2, "c"), bias = f32(info, 3, "bias", true);
  const int64_t ba = num(info, 4, "batchA"), bb = num(info, 5, "batchB");
  const int64_t m = num(info, 6, "m"), n = num(info, 7, "n"), k = num(info, 8, "k");
  nonneg(info, {ba, bb, m, n, k});
  if (ba < 1 || bb < 1 || (ba != bb && ba != 1 && bb != 1 && std::max(ba, bb) % std::min(ba, bb) != 0)) {
    throw Napi::RangeError::New(info.Env(), "incompatible batch sizes");
  }
  need(info, a, ba * m * k, "a");
  need(info, b, bb * k * n, "b");
  need(info, c, std::max(ba, bb) * m * n, "c");
  if (bias.data) need(info, bias, n, "bias");
  const int act = static_cast<int>(num(info, 11, "activation"));
  if (act < ml::ACT_LINEAR || act > ml::ACT_SIGMOID) throw Napi::RangeError::New(info.Env(), "unknown activation");
  ml::matmul(a.data, b.data, c.data, static_cast<int>(ba), static_cast<int>(bb), static_cast<int>(m),
             static_cast<int>(n), static_cast<int>(k), flag(info, 9), flag(info, 10), bias.data, act,
             static_cast<float>(real(info, 12)));
  return info.Env().Undefined();
}

struct PoolShape {
  int n, h, w, c, kh, kw, sh, sw, pt, pl, oh, ow;
};

PoolShape pool_shape(const Napi::CallbackInfo& info, size_t i) {
  const int32_t* g = i32s(info, i, "geometry", 12);
  PoolShape s{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11]};
  nonneg(info, {s.n, s.h, s.w, s.c, s.kh, s.kw, s.pt, s.pl, s.oh, s.ow});
  if (s.sh < 1 || s.sw < 1) throw Napi::RangeError::New(info.Env(), "strides must be >= 1");
  return s;
}

// maxPool(x, y, geometry)
Napi::Value MaxPool(const Napi::CallbackInfo& info) {
  PoolShape s = pool_shape(info, 2);
  F32 x = f32(info, 0, "x"), y = f32(info, 1, "y");
  need(info, x, prod({s.n, s.h, s.w, s.c}), "x");
  need(info, y, prod({s.n, s.oh, s.ow, s.c}), "y");
  ml::max_pool(x.data, y.data, s.n, s.h, s.w, s.c, s.kh, s.kw, s.sh, s.sw, s.pt, s.pl, s.oh, s.ow);
  return info.Env().Undefined();
}

// maxPoolGrad(dy, x, dx, geometry)
Napi::Value MaxPoolGrad(const Napi::CallbackInfo& info) {
  PoolShape s = pool_shape(info, 3);
  F32 dy = f32(info, 0, "dy"), x = f32(info, 1, "x"), dx = f32(info, 2, "dx");
  need(info, dy, prod({s.n, s.oh, s.ow, s.c}), "dy");
  need(info, x, prod({s.n, s.h, s.w, s.c}), "x");
  need(info, dx, prod({s.n, s.h, s.w, s.c}), "dx");
  ml::max_pool_grad(dy.data, x.data, dx.data, s.n, s.h, s.w, s.c, s.kh, s.kw, s.sh, s.sw, s.pt, s.pl, s.oh, s.ow);
  return info.Env().Undefined();
}

// resizeNearest(x, y, n, h, w, c, oh, ow, srcRow, srcCol) and resizeNearestGrad(dy, dx, ...same).
template <bool GRAD>
Napi::Value ResizeNearest(const Napi::CallbackInfo& info) {
  F32 a = f32(info, 0, GRAD ? "dy" : "x"), b = f32(info, 1, GRAD ? "dx" : "y");
  const int64_t n = num(info, 2, "n"), h = num(info, 3, "h"), w = num(info, 4, "w"), c = num(info, 5, "c");
  const int64_t oh = num(info, 6, "oh"), ow = num(info, 7, "ow");
  nonneg(info, {n, h, w, c, oh, ow});
  const int32_t* rows = i32s(info, 8, "srcRow", static_cast<size_t>(oh));
  const int32_t* cols = i32s(info, 9, "srcCol", static_cast<size_t>(ow));
  for (int64_t i = 0; i < oh; ++i)
    if (rows[i] < 0 || rows[i] >= h) throw Napi::RangeError::New(info.Env(), "srcRow out of range");
  for (int64_t i = 0; i < ow; ++i)
    if (cols[i] < 0 || cols[i] >= w) throw Napi::RangeError::New(info.Env(), "srcCol out of range");
  const int64_t small = n * h * w * c, big = n * oh * ow * c;
  need(info, a, GRAD ? big : small, GRAD ? "dy" : "x");
  need(info, b, GRAD ? small : big, GRAD ? "dx" : "y");
  if (GRAD) {
    ml::resize_nearest_grad(a.data, b.data, n, h, w, c, oh, ow, rows, cols);
  } else {
    ml::resize_nearest(a.data, b.data, n, h, w, c, oh, ow, rows, cols);
  }
  return info.Env().Undefined();
}

// unary(op, x, y, alpha)
Napi::Value Unary(const Napi::CallbackInfo& info) {
  const int op = static_cast<int>(num(info, 0, "op"));
  if (op < ml::U_RELU || op > ml::U_RECIPROCAL) throw Napi::RangeError::New(info.Env(), "unknown unary op");
  F32 x = f32(info, 1, "x"), y = f32(info, 2, "y");
  need(info, y, static_cast<int64_t>(x.length), "y");
  ml::unary(op, x.data, y.data, static_cast<long>(x.length), static_cast<float>(real(info, 3)));
  return info.Env().Undefined();
}

// softmax(x, y, classes): over the last axis of x seen as [length / classes, classes].
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  F32 x = f32(info, 0, "x"), y = f32(info, 1, "y");
  const int64_t classes = num(info, 2, "classes");
  if (classes < 1 || static_cast<int64_t>(x.length) % classes != 0) throw Napi::RangeError::New(info.Env(), "classes must divide x's length");
  need(info, y, static_cast<int64_t>(x.length), "y");
  ml::softmax(x.data, y.data, static_cast<long>(x.length / classes), static_cast<long>(classes));
  return info.Env().Undefined();
}

// adam(x, g, m, v, xOut, mOut, vOut, settings): one Adam step of x's weights; settings holds the
// learning rate, beta1, beta2, 1 - beta1, 1 - beta2, the two bias corrections and epsilon.
Napi::Value Adam(const Napi::CallbackInfo& info) {
  F32 x = f32(info, 0, "x"), g = f32(info, 1, "g"), m = f32(info, 2, "m"), v = f32(info, 3, "v");
  F32 xo = f32(info, 4, "xOut"), mo = f32(info, 5, "mOut"), vo = f32(info, 6, "vOut"), settings = f32(info, 7, "settings");
  const int64_t n = static_cast<int64_t>(x.length);
  for (const F32* a : {&g, &m, &v, &xo, &mo, &vo}) need(info, *a, n, "every array");
  need(info, settings, 8, "settings");
  const float* p = settings.data;
  ml::adam(x.data, g.data, m.data, v.data, xo.data, mo.data, vo.data, static_cast<long>(n),
           ml::AdamStep{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]});
  return info.Env().Undefined();
}

// binary(op, a, b, out, rows, inner, aLayout, bLayout)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  const int op = static_cast<int>(num(info, 0, "op"));
  if (op < ml::B_ADD || op > ml::B_SQDIFF) throw Napi::RangeError::New(info.Env(), "unknown binary op");
  F32 a = f32(info, 1, "a"), b = f32(info, 2, "b"), out = f32(info, 3, "out");
  const int64_t rows = num(info, 4, "rows"), inner = num(info, 5, "inner");
  if (rows < 0 || inner < 0) throw Napi::RangeError::New(info.Env(), "negative size");
  const int64_t al = num(info, 6, "aLayout"), bl = num(info, 7, "bLayout");
  if (al < ml::L_FULL || al > ml::L_COLUMN || bl < ml::L_FULL || bl > ml::L_COLUMN) {
    throw Napi::RangeError::New(info.Env(), "unknown operand layout");
  }
  if (al != ml::L_FULL && bl != ml::L_FULL) throw Napi::RangeError::New(info.Env(), "at most one operand may broadcast");
  auto elements = [&](int64_t layout) { return layout == ml::L_ROW ? inner : layout == ml::L_COLUMN ? rows : rows * inner; };
  need(info, a, elements(al), "a");
  need(info, b, elements(bl), "b");
  need(info, out, rows * inner, "out");
  ml::binary(op, a.data, b.data, out.data, static_cast<long>(rows), static_cast<long>(inner), static_cast<int>(al),
             static_cast<int>(bl));
  return info.Env().Undefined();
}

// sum(x, y, outer, mid, inner)
Napi::Value Sum(const Napi::CallbackInfo& info) {
  F32 x = f32(info, 0, "x"), y = f32(info, 1, "y");
  const int64_t outer = num(info, 2, "outer"), mid = num(info, 3, "mid"), inner = num(info, 4, "inner");
  if (outer < 0 || mid < 0 || inner < 0) throw Napi::RangeError::New(info.Env(), "negative size");
  need(info, x, outer * mid * inner, "x");
  need(info, y, outer * inner, "y");
  ml::reduce_sum(x.data, y.data, static_cast<long>(outer), static_cast<long>(mid), static_cast<long>(inner));
  return info.Env().Undefined();
}

// batchNorm(x, gamma, beta, y, mean, invStd, variance, rows, channels, eps, relu)
Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  F32 x = f32(info, 0, "x"), gamma = f32(info, 1, "gamma"), beta = f32(info, 2, "beta"), y = f32(info, 3, "y");
  F32 mean = f32(info, 4, "mean"), inv_std = f32(info, 5, "invStd"), variance = f32(info, 6, "variance");
  const int64_t rows = num(info, 7, "rows"), channels = num(info, 8, "channels");
  if (rows < 0 || channels < 0) throw Napi::RangeError::New(info.Env(), "negative size");
  need(info, x, rows * channels, "x");
  need(info, y, rows * channels, "y");
  for (const F32* a : {&gamma, &beta, &mean, &inv_std, &variance}) need(info, *a, channels, "a per-channel array");
  ml::batch_norm_forward(x.data, gamma.data, beta.data, y.data, mean.data, inv_std.data, variance.data, static_cast<long>(rows),
                         static_cast<long>(channels), static_cast<float>(real(info, 9)), flag(info, 10));
  return info.Env().Undefined();
}

// batchNormGrad(dy, x, y, mean, invStd, gamma, dx, dgamma, dbeta, rows, channels, relu)
Napi::Value BatchNormGrad(const Napi::CallbackInfo& info) {
  F32 dy = f32(info, 0, "dy"), x = f32(info, 1, "x"), y = f32(info, 2, "y"), mean = f32(info, 3, "mean");
  F32 inv_std = f32(info, 4, "invStd"), gamma = f32(info, 5, "gamma"), dx = f32(info, 6, "dx");
  F32 dgamma = f32(info, 7, "dgamma"), dbeta = f32(info, 8, "dbeta");
  const int64_t rows = num(info, 9, "rows"), channels = num(info, 10, "channels");
  if (rows < 0 || channels < 0) throw Napi::RangeError::New(info.Env(), "negative size");
  for (const F32* a : {&dy, &x, &y, &dx}) need(info, *a, rows * channels, "a full-size array");
  for (const F32* a : {&mean, &inv_std, &gamma, &dgamma, &dbeta}) need(info, *a, channels, "a per-channel array");
  ml::batch_norm_backward(dy.data, x.data, y.data, mean.data, inv_std.data, gamma.data, dx.data, dgamma.data, dbeta.data,
                          static_cast<long>(rows), static_cast<long>(channels), flag(info, 11));
  return info.Env().Undefined();
}

// copyRows(src, srcOffset, srcStride, dst, dstOffset, dstStride, rows, len)
Napi::Value CopyRows(const Napi::CallbackInfo& info) {
  F32 src = f32(info, 0, "src"), dst = f32(info, 3, "dst");
  const int64_t so = num(info, 1, "srcOffset"), ss = num(info, 2, "srcStride");
  const int64_t dof = num(info, 4, "dstOffset"), ds = num(info, 5, "dstStride");
  const int64_t rows = num(info, 6, "rows"), len = num(info, 7, "len");
  if (so < 0 || ss < 0 || dof < 0 || ds < 0 || rows < 0 || len < 0) throw Napi::RangeError::New(info.Env(), "negative size");
  if (rows == 0 || len == 0) return info.Env().Undefined();
  need(info, src, so + (rows - 1) * ss + len, "src");
  need(info, dst, dof + (rows - 1) * ds + len, "dst");
  ml::copy_rows(src.data + so, static_cast<long>(ss), dst.data + dof, static_cast<long>(ds), static_cast<long>(rows),
                static_cast<long>(len));
  return info.Env().Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  ml::pool_set_size(static_cast<int>(num(info, 0, "threads")));
  return Napi::Number::New(info.Env(), ml::pool_size());
}

// setWinograd(tiles): the Winograd tiles of 3x3 stride-1 convolutions (-1: timed per kind, 4, 2,
// or 0: direct).
Napi::Value SetWinograd(const Napi::CallbackInfo& info) {
  ml::set_winograd(static_cast<int>(num(info, 0, "tiles")));
  return info.Env().Undefined();
}

// setAvx512(on): 16-column GEMM panels on the AVX-512 microkernel (where the CPU has it) or the
// AVX2 one. Returns whether the AVX-512 kernel is now in use.
Napi::Value SetAvx512(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsBoolean()) throw Napi::TypeError::New(info.Env(), "setAvx512: expected a boolean");
  const bool on = info[0].As<Napi::Boolean>().Value() && cpu_has_avx512f();
  ml::set_avx512(on);
  return Napi::Boolean::New(info.Env(), on);
}

Napi::Value GetWinograd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ml::winograd_tiles()); }

// winogradPlans(): the timed tiles as an Int32Array of {channels in, channels out, log2 of output
// pixels, tile} per kind of convolution.
Napi::Value WinogradPlans(const Napi::CallbackInfo& info) {
  const long count = ml::winograd_plans(nullptr, 0);
  auto plans = Napi::Int32Array::New(info.Env(), static_cast<size_t>(4 * count));
  const long written = std::min(count, ml::winograd_plans(plans.Data(), count));
  return written == count ? plans : Napi::Int32Array::New(info.Env(), static_cast<size_t>(4 * written));
}

Napi::Value WinogradPlanCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(ml::winograd_plan_count()));
}

// addWinogradPlan(ic, oc, sizeLog2, tile): use `tile` for that kind instead of timing it; false
// where the kind has a tile already or the plan is not one the addon could have made.
Napi::Value AddWinogradPlan(const Napi::CallbackInfo& info) {
  const int64_t ic = num(info, 0, "ic"), oc = num(info, 1, "oc"), size = num(info, 2, "sizeLog2"), tile = num(info, 3, "tile");
  const bool fits = ic > 0 && ic < (1 << 23) && oc > 0 && oc < (1 << 23) && size >= 0 && size < 63;
  return Napi::Boolean::New(info.Env(), fits && ml::add_winograd_plan(static_cast<int>(ic), static_cast<int>(oc),
                                                                      static_cast<int>(size), static_cast<int>(tile)));
}

Napi::Value GetThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ml::pool_size()); }

Napi::Value DefaultThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ml::pool_default_size());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (!cpu_has_avx2_fma()) {
    exports.Set("unsupported", Napi::String::New(env, "this CPU (or OS) lacks AVX2/FMA, which the native kernels need"));
    return exports;
  }
  const bool avx512 = cpu_has_avx512f();
  ml::set_avx512(avx512);
  exports.Set("isa", Napi::String::New(env, avx512 ? "avx512f+avx2+fma" : "avx2+fma"));
  exports.Set("setAvx512", Napi::Function::New(env, SetAvx512));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads));
  exports.Set("defaultThreads", Napi::Function::New(env, DefaultThreads));
  exports.Set("setWinograd", Napi::Function::New(env, SetWinograd));
  exports.Set("getWinograd", Napi::Function::New(env, GetWinograd));
  exports.Set("winogradPlans", Napi::Function::New(env, WinogradPlans));
  exports.Set("winogradPlanCount", Napi::Function::New(env, WinogradPlanCount));
  exports.Set("addWinogradPlan", Napi::Function::New(env, AddWinogradPlan));
  exports.Set("conv2d", Napi::Function::New(env, Conv2d));
  exports.Set("conv2dBackpropInput", Napi::Function::New(env, Conv2dBackpropInput));
  exports.Set("conv2dBackpropFilter", Napi::Function::New(env, Conv2dBackpropFilter));
  exports.Set("matmul", Napi::Function::New(env, MatMul));
  exports.Set("maxPool", Napi::Function::New(env, MaxPool));
  exports.Set("maxPoolGrad", Napi::Function::New(env, MaxPoolGrad));
  exports.Set("resizeNearest", Napi::Function::New(env, ResizeNearest<false>));
  exports.Set("resizeNearestGrad", Napi::Function::New(env, ResizeNearest<true>));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("adam", Napi::Function::New(env, Adam));
  exports.Set("sum", Napi::Function::New(env, Sum));
  exports.Set("copyRows", Napi::Function::New(env, CopyRows));
  exports.Set("batchNorm", Napi::Function::New(env, BatchNorm));
  exports.Set("batchNormGrad", Napi::Function::New(env, BatchNormGrad));
  return exports;
}

}  // namespace

NODE_API_MODULE(maskloop_native, Init)
