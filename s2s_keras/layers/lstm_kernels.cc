// The LSTM training loop's element-wise work in one kernel per time step and direction
// (`s2s_keras/layers/lstm_kernels.py` builds and loads it; `lstm.py` says where it is used).
//
// S2sLstmGates, the forward step t for rows b with keep[t, b]:
//   z = projected[t] + float(recurrent)          (recurrent = h_{t-1} W_h, the compute dtype)
//   i, f, g, o = sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)     (gate order i f c̃ o)
//   c = f * float(c_{t-1}) + i * g,  h = o * tanh(c)
//   outputs h, c rounded to T, and the float32 activations [i f g o]; rows with keep false
//   carry h_{t-1} and c_{t-1} unchanged, their activations zero (no sigmoid or tanh spent).
// S2sLstmGatesGrad, the backward step t (the derivative of the above; `lstm._recurrence`'s
// backward loop): from d_h = float(d_h_recurrent) + d_h_pass + d_h_seq[t] and d_c,
//   tanh_c = tanh(f * c_prev[t] + i * g),  d_c += d_h * o * (1 - tanh_c²)
//   d_z = [d_c g i(1-i), d_c c_prev f(1-f), d_c i (1-g²), d_h tanh_c o(1-o)],  d_c_prev = d_c f
//   and for rows with keep false: d_z = 0, d_c_prev = d_c, d_h_pass = d_h (a masked step
//   passes the gradient through); otherwise d_h_pass = 0. The caller multiplies d_z by W_hᵀ.
// Every product and sum is its own rounding, in the order TensorFlow's ops compute them, and
// sigmoid and tanh are Eigen's (what tf.sigmoid and tf.tanh run): the same float32 numbers
// as the loop written in TensorFlow ops.
//
// S2sAmxUsable: whether the CPU has AMX tiles (amx_tile, amx_bf16) that the operating system lets
// this process use; S2sAvx512Bf16Usable: whether it has AVX-512-BF16. Either is the condition for
// loading `lstm_sequence.cc`'s library at all (and says which of its engines runs).

#include <functional>

#include "lstm_rows.h"

namespace {


// Rows [begin, end) of `batch` rows on the device's intra-op threads.
void ForRows(OpKernelContext* ctx, int64_t batch, int64_t units,
             const std::function<void(int64_t, int64_t)>& work) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  workers->ParallelFor(batch, /*cost_per_unit=*/units * 80, work);
}

// The step index t of a [T, batch, ...] sequence; false (with the error set) if out of range.
bool StepIndex(OpKernelContext* ctx, const Tensor& sequence, int64_t* t) {
  const Tensor& step = ctx->input(0);
  if (step.dims() != 0) {
    ctx->CtxFailure(InvalidArgument("t must be a scalar"));
    return false;
  }
  *t = step.scalar<int32_t>()();
  if (sequence.dims() < 1 || *t < 0 || *t >= sequence.dim_size(0)) {
    ctx->CtxFailure(InvalidArgument("t = ", *t, " outside the sequence's steps"));
    return false;
  }
  return true;
}

template <typename T>
class LstmGatesOp : public OpKernel {
 public:
  explicit LstmGatesOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& projected = ctx->input(1);  // [T, batch, 4·units] float
    const Tensor& recurrent = ctx->input(2);  // [batch, 4·units] T
    const Tensor& h_prev = ctx->input(3);     // [batch, units] T
    const Tensor& c_prev = ctx->input(4);     // [batch, units] T
    const Tensor& keep = ctx->input(5);       // [T, batch] bool
    int64_t t;
    if (!StepIndex(ctx, projected, &t)) return;
    const int64_t batch = h_prev.dim_size(0), units = h_prev.dim_size(1);
    OP_REQUIRES(ctx,
                projected.dims() == 3 && projected.dim_size(1) == batch &&
                    projected.dim_size(2) == 4 * units && recurrent.dim_size(0) == batch &&
                    recurrent.dim_size(1) == 4 * units && c_prev.shape() == h_prev.shape() &&
                    keep.dims() == 2 && keep.dim_size(0) == projected.dim_size(0) &&
                    keep.dim_size(1) == batch,
                InvalidArgument("S2sLstmGates: inconsistent shapes"));
    Tensor *h, *c, *gates;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, h_prev.shape(), &h));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, c_prev.shape(), &c));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({batch, 4 * units}), &gates));
    const float* p_all = projected.flat<float>().data() + t * batch * 4 * units;
    const bool* keep_t = keep.flat<bool>().data() + t * batch;
    const T* r_all = recurrent.flat<T>().data();
    const T* hp_all = h_prev.flat<T>().data();
    const T* cp_all = c_prev.flat<T>().data();
    T* h_all = h->flat<T>().data();
    T* c_all = c->flat<T>().data();
    float* g_all = gates->flat<float>().data();
    ForRows(ctx, batch, units, [&](int64_t begin, int64_t end) {
      Floats cell(units);
      for (int64_t b = begin; b < end; ++b) {
        const int64_t row4 = b * 4 * units, row = b * units;
        GatesRow<T>(units, p_all + row4, r_all + row4, hp_all + row, cp_all + row, keep_t[b],
                    h_all + row, c_all + row, g_all + row4, &cell);
      }
    });
  }
};

template <typename T>
class LstmGatesGradOp : public OpKernel {
 public:
  explicit LstmGatesGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& gate_seq = ctx->input(1);     // [T, batch, 4·units] float
    const Tensor& c_prev_seq = ctx->input(2);   // [T, batch, units] float
    const Tensor& d_h_seq = ctx->input(3);      // [T, batch, units] float
    const Tensor& keep = ctx->input(4);         // [T, batch] bool
    const Tensor& d_h_recurrent = ctx->input(5);  // [batch, units] T
    const Tensor& d_h_pass = ctx->input(6);     // [batch, units] float
    const Tensor& d_c_in = ctx->input(7);       // [batch, units] float
    int64_t t;
    if (!StepIndex(ctx, gate_seq, &t)) return;
    const int64_t steps = gate_seq.dim_size(0);
    const int64_t batch = d_c_in.dim_size(0), units = d_c_in.dim_size(1);
    OP_REQUIRES(ctx,
                gate_seq.dims() == 3 && gate_seq.dim_size(1) == batch &&
                    gate_seq.dim_size(2) == 4 * units && c_prev_seq.dims() == 3 &&
                    c_prev_seq.dim_size(0) == steps && c_prev_seq.dim_size(1) == batch &&
                    c_prev_seq.dim_size(2) == units && d_h_seq.shape() == c_prev_seq.shape() &&
                    keep.dims() == 2 && keep.dim_size(0) == steps &&
                    keep.dim_size(1) == batch && d_h_recurrent.shape() == d_c_in.shape() &&
                    d_h_pass.shape() == d_c_in.shape(),
                InvalidArgument("S2sLstmGatesGrad: inconsistent shapes"));
    Tensor *d_z, *d_c_prev, *d_h_pass_out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({batch, 4 * units}), &d_z));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, d_c_in.shape(), &d_c_prev));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, d_c_in.shape(), &d_h_pass_out));
    const float* g_all = gate_seq.flat<float>().data() + t * batch * 4 * units;
    const float* cp_all = c_prev_seq.flat<float>().data() + t * batch * units;
    const float* dhs_all = d_h_seq.flat<float>().data() + t * batch * units;
    const bool* keep_t = keep.flat<bool>().data() + t * batch;
    const T* dhr_all = d_h_recurrent.flat<T>().data();
    const float* dhp_all = d_h_pass.flat<float>().data();
    const float* dc_all = d_c_in.flat<float>().data();
    float* dz_all = d_z->flat<float>().data();
    float* dcp_all = d_c_prev->flat<float>().data();
    float* pass_all = d_h_pass_out->flat<float>().data();
    ForRows(ctx, batch, units, [&](int64_t begin, int64_t end) {
      Floats d_h(units), tanh_c(units);
      for (int64_t b = begin; b < end; ++b) {
        const int64_t row4 = b * 4 * units, row = b * units;
        GatesGradRow<T>(units, g_all + row4, cp_all + row, dhs_all + row, keep_t[b],
                        dhr_all + row, dhp_all + row, dc_all + row, dz_all + row4,
                        dcp_all + row, pass_all + row, &d_h, &tanh_c);
      }
    });
  }
};


tensorflow::Status SameAs(InferenceContext* c, int output, int input) {
  c->set_output(output, c->input(input));
  return tensorflow::OkStatus();
}

}  // namespace

REGISTER_OP("S2sLstmGates")
    .Attr("T: {float, half, bfloat16}")
    .Input("t: int32")
    .Input("projected: float")
    .Input("recurrent: T")
    .Input("h_prev: T")
    .Input("c_prev: T")
    .Input("keep: bool")
    .Output("h: T")
    .Output("c: T")
    .Output("gates: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(3));
      c->set_output(1, c->input(4));
      c->set_output(2, c->input(2));
      return tensorflow::OkStatus();
    });

REGISTER_OP("S2sLstmGatesGrad")
    .Attr("T: {float, half, bfloat16}")
    .Input("t: int32")
    .Input("gate_seq: float")
    .Input("c_prev_seq: float")
    .Input("d_h_seq: float")
    .Input("keep: bool")
    .Input("d_h_recurrent: T")
    .Input("d_h_pass: float")
    .Input("d_c: float")
    .Output("d_z: float")
    .Output("d_c_prev: float")
    .Output("d_h_pass_out: float")
    .SetShapeFn([](InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle gates;
      TF_RETURN_IF_ERROR(c->Subshape(c->input(1), 1, &gates));
      c->set_output(0, gates);
      c->set_output(1, c->input(7));
      c->set_output(2, c->input(7));
      return tensorflow::OkStatus();
    });

#define S2S_REGISTER(T)                                                          \
  REGISTER_KERNEL_BUILDER(                                                       \
      Name("S2sLstmGates").Device(DEVICE_CPU).TypeConstraint<T>("T"),            \
      LstmGatesOp<T>);                                                           \
  REGISTER_KERNEL_BUILDER(                                                       \
      Name("S2sLstmGatesGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),        \
      LstmGatesGradOp<T>);

S2S_REGISTER(float)
S2S_REGISTER(Eigen::bfloat16)
S2S_REGISTER(Eigen::half)

S2S_REGISTER_USABLE_OP("S2sAmxUsable", AmxUsable);
S2S_REGISTER_USABLE_OP("S2sAvx512Bf16Usable", Avx512Bf16Usable);
