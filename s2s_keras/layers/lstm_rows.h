// What both LSTM kernel libraries share (`lstm_kernels.cc`, the per-step ops; `lstm_sequence.cc`,
// the whole-sequence ops): one row's forward and backward step, in the arithmetic
// `lstm_kernels.cc`'s header gives, and whether this process may use AMX tiles.

#ifndef S2S_KERAS_LAYERS_LSTM_ROWS_H_
#define S2S_KERAS_LAYERS_LSTM_ROWS_H_

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::InferenceContext;

using Floats = Eigen::Array<float, Eigen::Dynamic, 1>;
using FloatMap = Eigen::Map<Floats>;
using ConstFloatMap = Eigen::Map<const Floats>;
template <typename T>
using ConstMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using Map = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
// The forward step of one row (the arithmetic the header gives): pre-activations from the
// projected input `p` and `recurrent` (4·units each), the previous `h_prev`, `c_prev`; writes
// `h`, `c` and the float32 activations `act`. `cell` is scratch of `units` floats. A masked
// row (`keep` false) carries `h_prev` and `c_prev` and gets zero activations, which its
// backward step never reads: no sigmoid or tanh is spent on padding.
template <typename T>
void GatesRow(int64_t units, const float* p, const T* recurrent, const T* h_prev,
              const T* c_prev, bool keep, T* h, T* c, float* act_out, Floats* cell) {
  FloatMap act(act_out, 4 * units);
  Map<T> h_out(h, units), c_out(c, units);
  if (!keep) {
    act.setZero();
    h_out = ConstMap<T>(h_prev, units);
    c_out = ConstMap<T>(c_prev, units);
    return;
  }
  const auto z = ConstFloatMap(p, 4 * units) +
                 ConstMap<T>(recurrent, 4 * units).template cast<float>();
  act.segment(0, 2 * units) = z.segment(0, 2 * units).logistic();
  act.segment(2 * units, units) = z.segment(2 * units, units).tanh();
  act.segment(3 * units, units) = z.segment(3 * units, units).logistic();
  const auto i = act.segment(0, units), f = act.segment(units, units),
             g = act.segment(2 * units, units), o = act.segment(3 * units, units);
  *cell = f * ConstMap<T>(c_prev, units).template cast<float>() + i * g;
  h_out = (o * cell->tanh()).template cast<T>();
  c_out = cell->template cast<T>();
}

// The backward step of one row: from the activations `act`, `c_prev`, this step's `d_h_seq`,
// `d_h_recurrent` (d_z W_hᵀ of the step after, compute dtype), the passed-through `d_h_pass`
// and `d_c_in`, writes `d_z`, `d_c_prev` and `d_h_pass_out`. `d_h`, `tanh_c`: scratch.
template <typename T>
void GatesGradRow(int64_t units, const float* act_in, const float* c_prev_in,
                  const float* d_h_seq, bool keep, const T* d_h_recurrent,
                  const float* d_h_pass, const float* d_c_in, float* d_z_out,
                  float* d_c_prev, float* d_h_pass_out, Floats* d_h_scratch,
                  Floats* tanh_scratch) {
  Floats& d_h = *d_h_scratch;
  Floats& tanh_c = *tanh_scratch;
  // The same sums as `d_h = cast(d_z W_hᵀ) + pass_h` then `d_h + d_h_seq[t]`.
  d_h = ConstMap<T>(d_h_recurrent, units).template cast<float>() +
        ConstFloatMap(d_h_pass, units);
  d_h = d_h + ConstFloatMap(d_h_seq, units);
  FloatMap dz(d_z_out, 4 * units), dcp(d_c_prev, units), pass(d_h_pass_out, units);
  if (!keep) {
    dz.setZero();
    dcp = ConstFloatMap(d_c_in, units);
    pass = d_h;
    return;
  }
  pass.setZero();
  const ConstFloatMap act(act_in, 4 * units), c_prev(c_prev_in, units);
  const auto i = act.segment(0, units), f = act.segment(units, units),
             g = act.segment(2 * units, units), o = act.segment(3 * units, units);
  Floats forget = f * c_prev;
  Floats input = i * g;
  Floats cell = forget + input;
  tanh_c = cell.tanh();
  Floats d_cell = d_h * o;
  d_cell = d_cell * (1.0f - tanh_c * tanh_c);
  Floats d_c = ConstFloatMap(d_c_in, units) + d_cell;
  Floats x = d_c * g;
  x = x * i;
  dz.segment(0, units) = x * (1.0f - i);
  x = d_c * c_prev;
  x = x * f;
  dz.segment(units, units) = x * (1.0f - f);
  x = d_c * i;
  dz.segment(2 * units, units) = x * (1.0f - g * g);
  x = d_h * tanh_c;
  x = x * o;
  dz.segment(3 * units, units) = x * (1.0f - o);
  dcp = d_c * f;
}

bool AmxUsable() {
  static const bool usable = [] {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const bool amx_bf16 = edx & (1u << 22), amx_tile = edx & (1u << 24);
    // Linux hands out the tile registers' state only on request (ARCH_REQ_XCOMP_PERM for
    // XFEATURE_XTILEDATA), once per process for all its threads.
    return amx_bf16 && amx_tile && syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  }();
  return usable;
}

// Whether the CPU has AVX-512-BF16 (and the operating system saves the AVX-512 registers: the
// compiler's check includes it) — with AmxUsable, the condition for loading
// `lstm_sequence.cc`'s library, which is AVX-512 code throughout.
bool Avx512Bf16Usable() {
  static const bool usable =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bf16");
  return usable;
}

// An op answering whether this CPU runs a library's code (`Usable`), registered by
// S2S_REGISTER_USABLE_OP(name, Usable): a scalar bool, asked once per process from Python.
template <bool (*Usable)()>
class CpuUsableOp : public OpKernel {
 public:
  explicit CpuUsableOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    Tensor* usable;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &usable));
    usable->scalar<bool>()() = Usable();
  }
};

}  // namespace

#define S2S_REGISTER_USABLE_OP(name, Usable)                                        \
  REGISTER_OP(name).Output("usable: bool").SetShapeFn([](InferenceContext* c) {     \
    c->set_output(0, c->Scalar());                                                  \
    return tensorflow::OkStatus();                                                  \
  });                                                                               \
  REGISTER_KERNEL_BUILDER(Name(name).Device(DEVICE_CPU), CpuUsableOp<Usable>)

#endif  // S2S_KERAS_LAYERS_LSTM_ROWS_H_
