// The LSTM training loop's whole sequence in one op each way, for any recurrent-matmul engine:
// `lstm_sequence.cc` (bf16, AMX tiles) and `lstm_sequence_float.cc` (float32, AVX2 FMA) each
// define an engine and register these kernels under their own op names.
//
// The forward op runs S2sLstmGates' step for t = 0 .. T-1 and the backward op S2sLstmGatesGrad's
// for t = T-1 .. 0, each with its recurrent matmul (h_{t-1} W_h, resp. d_z W_hᵀ) computed inside
// the op: no TensorFlow loop, no op per step. A row's recurrence reads only that row, so each
// block of rows runs its whole loop on one thread, without synchronizing with the others.
// Sequences are batch major ([batch, T, ...], as the layers hold them): a block's rows are
// contiguous and no transpose is needed on either side of the op. The matmul's float32 sums are
// rounded to the compute dtype, as TensorFlow's MatMul outputs, so the numbers differ from the
// TensorFlow loop's only by the order of those sums. With `inference` (an attr, default false)
// the forward op keeps nothing for a backward pass: c_prev_seq and gate_seq are empty.
//
// An engine is a struct with:
//   using T;                                       the compute dtype (h, c, W_h)
//   static std::string Requirement(int64_t units)  "" where it runs, else why not
//   static int64_t BlockRows(int64_t batch, int threads)  the rows of one thread's block
//   static std::vector<T> Pack(depth, width, b)    B [depth, width] = b(k, n), in its layout
//   static void MatMul(a, rows, packed, depth, width, c)   c [rows, width] (row stride width,
//       float32) = a [rows, depth] (row stride depth; BlockRows rows allocated, the rows past
//       `rows` zero) x the packed B
//   static void ThreadBegin(), ThreadEnd()         around a thread's blocks
// and may have
//   static void MatMulRowMajor(a, rows, b, depth, width, c)   `MatMul` with B [depth, width]
//       as it is, row major, the same sums: blocks of fewer than kPackRows rows use it
//       instead of packing W_h on every call
// A step's matmul takes only the rows whose mask is true at that step (gathered in order, the
// others read no recurrent input), so padding costs no matmul.

#ifndef S2S_KERAS_LAYERS_LSTM_SEQUENCE_H_
#define S2S_KERAS_LAYERS_LSTM_SEQUENCE_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "lstm_rows.h"

namespace {

// Blocks of fewer rows (a single request's) multiply W_h as it is, where the engine can
// (`MatMulRowMajor`: the same sums as its `MatMul`), instead of packing it for every call.
constexpr int64_t kPackRows = 8;

template <typename Engine, typename = void>
struct MultipliesRowMajor : std::false_type {};
template <typename Engine>
struct MultipliesRowMajor<Engine, std::void_t<decltype(&Engine::MatMulRowMajor)>>
    : std::true_type {};

// Blocks of `Engine::BlockRows` rows on the intra-op threads, each block's whole loop on one
// thread (`cost_per_block`: for the pool's sharding).
template <typename Engine>
void ForBlocks(OpKernelContext* ctx, int64_t batch, int64_t block_rows, int64_t cost_per_block,
               const std::function<void(int64_t, int64_t)>& work) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  const int64_t blocks = (batch + block_rows - 1) / block_rows;
  workers->ParallelFor(blocks, cost_per_block, [&](int64_t first, int64_t last) {
    Engine::ThreadBegin();
    for (int64_t block = first; block < last; ++block) {
      work(block * block_rows, std::min(batch, (block + 1) * block_rows));
    }
    Engine::ThreadEnd();
  });
}

template <typename Engine>
bool CheckSequenceOp(OpKernelContext* ctx, const char* name, int64_t units) {
  const std::string missing = Engine::Requirement(units);
  if (!missing.empty()) {
    ctx->CtxFailure(InvalidArgument(name, ": ", missing));
    return false;
  }
  return true;
}

template <typename Engine>
int64_t BlockRows(OpKernelContext* ctx, int64_t batch) {
  return Engine::BlockRows(batch, ctx->device()->tensorflow_cpu_worker_threads()->num_threads);
}

// The rows of a block when each intra-op thread takes one (each thread then streams the packed
// W_h once per step), no block below `slice` rows (the engine's microkernel's) but one.
inline int64_t OneBlockPerThread(int64_t batch, int threads, int64_t slice) {
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(threads, batch / slice));
  return std::max<int64_t>(1, (batch + blocks - 1) / blocks);
}

// The matmul's float32 sums `sums[0, n)` rounded to the compute dtype (as TensorFlow's MatMul
// outputs) in `buffer`; float32 sums are used as they are.
template <typename T>
const T* InComputeDtype(const float* sums, int64_t n, std::vector<T>* buffer) {
  if constexpr (std::is_same_v<T, float>) {
    return sums;
  } else {
    Map<T>(buffer->data(), n) = ConstFloatMap(sums, n).template cast<T>();
    return buffer->data();
  }
}

// `InComputeDtype` in place: the sums rounded to T and back to float32 (unchanged for float32).
template <typename T>
void RoundToComputeDtype(float* sums, int64_t n) {
  if constexpr (!std::is_same_v<T, float>) {
    FloatMap(sums, n) = ConstFloatMap(sums, n).template cast<T>().template cast<float>();
  }
}

// `name`: the op's name, in its errors.
template <typename Engine>
class LstmSequenceOp : public OpKernel {
 public:
  using T = typename Engine::T;
  LstmSequenceOp(OpKernelConstruction* ctx, const char* name) : OpKernel(ctx), name_(name) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("inference", &inference_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& projected = ctx->input(0);  // [batch, T, 4·units] float
    const Tensor& h0 = ctx->input(1);         // [batch, units] T
    const Tensor& c0 = ctx->input(2);         // [batch, units] T
    const Tensor& kernel = ctx->input(3);     // [units, 4·units] T
    const Tensor& keep = ctx->input(4);       // [batch, T] bool
    OP_REQUIRES(ctx, h0.dims() == 2, InvalidArgument(name_, ": h0 must be a matrix"));
    const int64_t batch = h0.dim_size(0), units = h0.dim_size(1);
    OP_REQUIRES(ctx,
                projected.dims() == 3 && projected.dim_size(0) == batch &&
                    projected.dim_size(2) == 4 * units && c0.shape() == h0.shape() &&
                    kernel.dims() == 2 && kernel.dim_size(0) == units &&
                    kernel.dim_size(1) == 4 * units && keep.dims() == 2 &&
                    keep.dim_size(0) == batch && keep.dim_size(1) == projected.dim_size(1),
                InvalidArgument(name_, ": inconsistent shapes"));
    if (!CheckSequenceOp<Engine>(ctx, name_, units)) return;
    const int64_t steps = projected.dim_size(1), width = 4 * units;
    // In inference nothing is kept for a backward pass: c_prev_seq and gate_seq are empty, each
    // row's activations go to scratch.
    const int64_t kept_steps = inference_ ? 0 : steps;
    Tensor *h_seq, *c_prev_seq, *gate_seq, *h_last, *c_last;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({batch, steps, units}), &h_seq));
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(1, TensorShape({batch, kept_steps, units}), &c_prev_seq));
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(2, TensorShape({batch, kept_steps, width}), &gate_seq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, h0.shape(), &h_last));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, c0.shape(), &c_last));
    const T* w = kernel.flat<T>().data();
    const int64_t block_rows = BlockRows<Engine>(ctx, batch);
    bool in_place = false;
    if constexpr (MultipliesRowMajor<Engine>::value) in_place = block_rows < kPackRows;
    std::vector<T> packed;
    if (!in_place) {
      packed = Engine::Pack(units, width, [&](int64_t k, int64_t n) { return w[k * width + n]; });
    }
    const float* p_all = projected.flat<float>().data();
    const bool* keep_all = keep.flat<bool>().data();
    const T* h0_all = h0.flat<T>().data();
    const T* c0_all = c0.flat<T>().data();
    T* h_all = h_seq->flat<T>().data();
    float* cp_all = c_prev_seq->flat<float>().data();
    float* g_all = gate_seq->flat<float>().data();
    T* h_last_all = h_last->flat<T>().data();
    T* c_last_all = c_last->flat<T>().data();
    const int64_t cost = steps * block_rows * units * 4 * 400;
    ForBlocks<Engine>(ctx, batch, block_rows, cost, [&](int64_t begin, int64_t end) {
      const int64_t rows = end - begin;
      std::vector<T> h(block_rows * units, T(0.0f));  // the block's h_{t-1}; pad rows 0
      std::vector<T> c(c0_all + begin * units, c0_all + end * units), c_next(rows * units);
      std::vector<float> sums(block_rows * width);
      std::vector<T> recurrent(width);
      std::vector<float> activations(inference_ ? width : 0);
      Floats cell(units);
      std::copy(h0_all + begin * units, h0_all + end * units, h.begin());
      // The rows a step keeps (its mask true), in order; when some are masked, their h_{t-1}
      // gathered into `kept_h` (its rows past them 0), so the matmul skips padding.
      std::vector<int64_t> kept(rows);
      std::vector<T> kept_h(block_rows * units, T(0.0f));
      for (int64_t t = 0; t < steps; ++t) {
        int64_t n = 0;
        for (int64_t r = 0; r < rows; ++r) {
          if (keep_all[(begin + r) * steps + t]) kept[n++] = r;
        }
        const T* a = h.data();
        if (n < rows) {
          for (int64_t i = 0; i < n; ++i) {
            std::copy_n(h.data() + kept[i] * units, units, kept_h.data() + i * units);
          }
          // rows n .. rows-1 may hold an earlier step's; those past the block stay 0
          std::fill(kept_h.begin() + n * units, kept_h.begin() + rows * units, T(0.0f));
          a = kept_h.data();
        }
        if (n > 0) {
          if constexpr (MultipliesRowMajor<Engine>::value) {
            if (in_place) Engine::MatMulRowMajor(a, n, w, units, width, sums.data());
          }
          if (!in_place) Engine::MatMul(a, n, packed.data(), units, width, sums.data());
        }
        for (int64_t r = 0, i = 0; r < rows; ++r) {
          const int64_t at = (begin + r) * steps + t, row = at * units, row4 = at * width;
          const bool keeps = keep_all[at];
          // a masked row's step reads no recurrent input
          const T* recurrent_row =
              keeps ? InComputeDtype(sums.data() + i++ * width, width, &recurrent) : nullptr;
          T* h_row = h.data() + r * units;
          const T* c_row = c.data() + r * units;
          if (!inference_) {
            FloatMap(cp_all + row, units) = ConstMap<T>(c_row, units).template cast<float>();
          }
          GatesRow<T>(units, p_all + row4, recurrent_row, h_row, c_row, keeps, h_all + row,
                      c_next.data() + r * units,
                      inference_ ? activations.data() : g_all + row4, &cell);
          std::copy(h_all + row, h_all + row + units, h_row);
        }
        std::swap(c, c_next);
      }
      std::copy(h.begin(), h.begin() + rows * units, h_last_all + begin * units);
      std::copy(c.begin(), c.end(), c_last_all + begin * units);
    });
  }

 private:
  const char* name_;
  bool inference_;
};

template <typename Engine>
class LstmSequenceGradOp : public OpKernel {
 public:
  using T = typename Engine::T;
  LstmSequenceGradOp(OpKernelConstruction* ctx, const char* name) : OpKernel(ctx), name_(name) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& gate_seq = ctx->input(0);    // [batch, T, 4·units] float
    const Tensor& c_prev_seq = ctx->input(1);  // [batch, T, units] float
    const Tensor& d_h_seq = ctx->input(2);     // [batch, T, units] T
    const Tensor& keep = ctx->input(3);        // [batch, T] bool
    const Tensor& d_h = ctx->input(4);         // [batch, units] T
    const Tensor& d_c = ctx->input(5);         // [batch, units] T
    const Tensor& kernel = ctx->input(6);      // [units, 4·units] T
    OP_REQUIRES(ctx, d_c.dims() == 2, InvalidArgument(name_, ": d_c must be a matrix"));
    const int64_t batch = d_c.dim_size(0), units = d_c.dim_size(1), width = 4 * units;
    OP_REQUIRES(ctx,
                gate_seq.dims() == 3 && gate_seq.dim_size(0) == batch &&
                    gate_seq.dim_size(2) == width && c_prev_seq.dims() == 3 &&
                    c_prev_seq.dim_size(0) == batch &&
                    c_prev_seq.dim_size(1) == gate_seq.dim_size(1) &&
                    c_prev_seq.dim_size(2) == units && d_h_seq.shape() == c_prev_seq.shape() &&
                    keep.dims() == 2 && keep.dim_size(0) == batch &&
                    keep.dim_size(1) == gate_seq.dim_size(1) && d_h.shape() == d_c.shape() &&
                    kernel.dims() == 2 && kernel.dim_size(0) == units &&
                    kernel.dim_size(1) == width,
                InvalidArgument(name_, ": inconsistent shapes"));
    if (!CheckSequenceOp<Engine>(ctx, name_, units)) return;
    const int64_t steps = gate_seq.dim_size(1);
    Tensor *d_z_seq, *d_h0, *d_c0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, gate_seq.shape(), &d_z_seq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, d_c.shape(), &d_h0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, d_c.shape(), &d_c0));
    const T* w = kernel.flat<T>().data();
    const auto packed = Engine::Pack(width, units, [&](int64_t k, int64_t n) {  // W_hᵀ
      return w[n * width + k];
    });
    const float* g_all = gate_seq.flat<float>().data();
    const float* cp_all = c_prev_seq.flat<float>().data();
    const T* dhs_all = d_h_seq.flat<T>().data();
    const bool* keep_all = keep.flat<bool>().data();
    const T* d_h_in = d_h.flat<T>().data();
    const T* d_c_in = d_c.flat<T>().data();
    float* dz_all = d_z_seq->flat<float>().data();
    T* d_h0_all = d_h0->flat<T>().data();
    T* d_c0_all = d_c0->flat<T>().data();
    const int64_t block_rows = BlockRows<Engine>(ctx, batch);
    const int64_t cost = steps * block_rows * units * 4 * 600;
    ForBlocks<Engine>(ctx, batch, block_rows, cost, [&](int64_t begin, int64_t end) {
      const int64_t rows = end - begin, n = rows * units;
      std::vector<T> d_z(block_rows * width, T(0.0f));  // this step's, pad rows 0
      std::vector<float> sums(block_rows * units);
      std::vector<T> d_h_recurrent(n, T(0.0f));
      std::vector<float> pass(n), pass_next(n), carry(n), carry_next(n), d_h_t(units);
      for (int64_t i = 0; i < n; ++i) {
        pass[i] = static_cast<float>(d_h_in[begin * units + i]);
        carry[i] = static_cast<float>(d_c_in[begin * units + i]);
      }
      Floats d_h_scratch(units), tanh_scratch(units);
      for (int64_t t = steps - 1; t >= 0; --t) {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t at = (begin + r) * steps + t, row = at * units, row4 = at * width;
          FloatMap(d_h_t.data(), units) = ConstMap<T>(dhs_all + row, units).template cast<float>();
          GatesGradRow<T>(units, g_all + row4, cp_all + row, d_h_t.data(), keep_all[at],
                          d_h_recurrent.data() + r * units, pass.data() + r * units,
                          carry.data() + r * units, dz_all + row4,
                          carry_next.data() + r * units, pass_next.data() + r * units,
                          &d_h_scratch, &tanh_scratch);
          Map<T>(d_z.data() + r * width, width) = ConstFloatMap(dz_all + row4, width).cast<T>();
        }
        std::swap(pass, pass_next);
        std::swap(carry, carry_next);
        Engine::MatMul(d_z.data(), rows, packed.data(), width, units, sums.data());
        Map<T>(d_h_recurrent.data(), n) = ConstFloatMap(sums.data(), n).cast<T>();
      }
      // d_h0 = cast(d_z W_hᵀ) + pass_h, as `_fused_backward` returns, in the compute dtype
      for (int64_t i = 0; i < n; ++i) {
        d_h0_all[begin * units + i] = T(static_cast<float>(d_h_recurrent[i]) + pass[i]);
        d_c0_all[begin * units + i] = T(carry[i]);
      }
    });
  }

 private:
  const char* name_;
};

}  // namespace

// The two ops' registrations for an engine whose compute dtype is `dtype` ("bfloat16", "float").
#define S2S_REGISTER_LSTM_SEQUENCE_OPS(name, dtype, Engine)                                   \
  REGISTER_OP(name)                                                                           \
      .Input("projected: float")                                                              \
      .Input("h0: " dtype)                                                                    \
      .Input("c0: " dtype)                                                                    \
      .Input("recurrent_kernel: " dtype)                                                      \
      .Input("keep: bool")                                                                    \
      .Attr("inference: bool = false")                                                        \
      .Output("h_seq: " dtype)                                                                \
      .Output("c_prev_seq: float")                                                            \
      .Output("gate_seq: float")                                                              \
      .Output("h: " dtype)                                                                    \
      .Output("c: " dtype)                                                                    \
      .SetShapeFn([](InferenceContext* c) {                                                   \
        auto steps = c->Dim(c->input(0), 1);                                                  \
        auto batch = c->Dim(c->input(1), 0), units = c->Dim(c->input(1), 1);                  \
        bool inference;                                                                       \
        TF_RETURN_IF_ERROR(c->GetAttr("inference", &inference));                              \
        auto kept = inference ? c->MakeDim(0) : steps;                                        \
        c->set_output(0, c->MakeShape({batch, steps, units}));                                \
        c->set_output(1, c->MakeShape({batch, kept, units}));                                 \
        c->set_output(2, c->MakeShape({batch, kept, c->Dim(c->input(0), 2)}));                \
        c->set_output(3, c->input(1));                                                        \
        c->set_output(4, c->input(2));                                                        \
        return tensorflow::OkStatus();                                                        \
      });                                                                                     \
  REGISTER_OP(name "Grad")                                                                    \
      .Input("gate_seq: float")                                                               \
      .Input("c_prev_seq: float")                                                             \
      .Input("d_h_seq: " dtype)                                                               \
      .Input("keep: bool")                                                                    \
      .Input("d_h: " dtype)                                                                   \
      .Input("d_c: " dtype)                                                                   \
      .Input("recurrent_kernel: " dtype)                                                      \
      .Output("d_z_seq: float")                                                               \
      .Output("d_h0: " dtype)                                                                 \
      .Output("d_c0: " dtype)                                                                 \
      .SetShapeFn([](InferenceContext* c) {                                                   \
        c->set_output(0, c->input(0));                                                        \
        c->set_output(1, c->input(5));                                                        \
        c->set_output(2, c->input(5));                                                        \
        return tensorflow::OkStatus();                                                        \
      });                                                                                     \
  class Engine##SequenceOp : public LstmSequenceOp<Engine> {                                  \
   public:                                                                                    \
    explicit Engine##SequenceOp(OpKernelConstruction* ctx) : LstmSequenceOp(ctx, name) {}     \
  };                                                                                          \
  class Engine##SequenceGradOp : public LstmSequenceGradOp<Engine> {                          \
   public:                                                                                    \
    explicit Engine##SequenceGradOp(OpKernelConstruction* ctx)                                \
        : LstmSequenceGradOp(ctx, name "Grad") {}                                             \
  };                                                                                          \
  REGISTER_KERNEL_BUILDER(Name(name).Device(DEVICE_CPU), Engine##SequenceOp);                 \
  REGISTER_KERNEL_BUILDER(Name(name "Grad").Device(DEVICE_CPU), Engine##SequenceGradOp)

#endif  // S2S_KERAS_LAYERS_LSTM_SEQUENCE_H_
