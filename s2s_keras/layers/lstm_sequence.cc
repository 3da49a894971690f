// The LSTM training loop's whole sequence in one op each way, for CPUs with AMX tiles
// (`s2s_keras/layers/lstm_kernels.py` builds this library with AVX-512 and AMX code generation
// and loads it only where `S2sAmxUsable` holds; `lstm.py` says where the ops are used).
//
// S2sLstmSequence runs S2sLstmGates' step for t = 0 .. T-1 and S2sLstmSequenceGrad
// S2sLstmGatesGrad's for t = T-1 .. 0, each with its recurrent matmul (h_{t-1} W_h, resp.
// d_z W_hᵀ) computed inside the op: no TensorFlow loop, no op per step. A row's recurrence
// reads only that row, so each block of 32 rows runs its whole loop on one thread, without
// synchronizing with the others. The matmul runs on the AMX tile unit (TDPBF16PS: bf16
// products summed in float32), with W_h packed once per call into the tiles' pair-interleaved
// layout; its float32 sums are rounded to bf16, as TensorFlow's bf16 MatMul outputs, so the
// numbers differ from the TensorFlow loop's only by the order of those float32 sums.

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "lstm_rows.h"

namespace {

constexpr int64_t kBlockRows = 32;  // two A tiles of 16 rows

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

// B [k, n] = b(k, n) for k < depth, n < width (both multiples of 32) into the tiles' layout:
// blocks of 16 columns, in each the rows paired, packed[block][k / 2][n][k % 2].
template <typename Get>
std::vector<Eigen::bfloat16> PackPairs(int64_t depth, int64_t width, Get b) {
  std::vector<Eigen::bfloat16> packed(depth * width);
  for (int64_t block = 0; block < width / 16; ++block)
    for (int64_t k = 0; k < depth; ++k)
      for (int64_t n = 0; n < 16; ++n)
        packed[((block * (depth / 2) + k / 2) * 16 + n) * 2 + k % 2] = b(k, block * 16 + n);
  return packed;
}

__attribute__((target("amx-tile,amx-bf16"))) void ConfigureTiles() {
  TileConfig config;
  for (int tile = 0; tile < 8; ++tile) {  // 0-3: C (16 x 16 float), 4-5: A, 6-7: B
    config.bytes_per_row[tile] = 64;
    config.rows[tile] = 16;
  }
  // GCC 12 does not see ldtilecfg read the struct and drops the stores into it
  asm volatile("" : : "m"(config) : "memory");
  _tile_loadconfig(&config);
}

__attribute__((target("amx-tile,amx-bf16"))) void ReleaseTiles() { _tile_release(); }

// c [32, width] (row stride width) = a [32, depth] (row stride depth) x the packed B.
__attribute__((target("amx-tile,amx-bf16"))) void MatMulBlock(const Eigen::bfloat16* a,
                                                             const Eigen::bfloat16* packed,
                                                             int64_t depth, int64_t width,
                                                             float* c) {
  const int64_t a_stride = depth * 2, c_stride = width * 4, panel = depth * 16;
  for (int64_t block = 0; block < width / 16; block += 2) {
    const Eigen::bfloat16* b0 = packed + block * panel;
    const Eigen::bfloat16* b1 = b0 + panel;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t k = 0; k < depth; k += 32) {
      _tile_loadd(4, a + k, a_stride);
      _tile_loadd(5, a + 16 * depth + k, a_stride);
      _tile_loadd(6, b0 + k * 16, 64);
      _tile_loadd(7, b1 + k * 16, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c + block * 16, c_stride);
    _tile_stored(1, c + (block + 1) * 16, c_stride);
    _tile_stored(2, c + 16 * width + block * 16, c_stride);
    _tile_stored(3, c + 16 * width + (block + 1) * 16, c_stride);
  }
}

// Blocks of kBlockRows rows on the intra-op threads, each block's whole loop on one thread.
void ForBlocks(OpKernelContext* ctx, int64_t batch, int64_t cost_per_block,
               const std::function<void(int64_t, int64_t)>& work) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  const int64_t blocks = (batch + kBlockRows - 1) / kBlockRows;
  workers->ParallelFor(blocks, cost_per_block, [&](int64_t first, int64_t last) {
    ConfigureTiles();
    for (int64_t block = first; block < last; ++block) {
      work(block * kBlockRows, std::min(batch, (block + 1) * kBlockRows));
    }
    ReleaseTiles();
  });
}

bool CheckSequenceOp(OpKernelContext* ctx, int64_t units) {
  if (!AmxUsable()) {
    ctx->CtxFailure(InvalidArgument(
        "S2sLstmSequence needs AMX tiles (amx_tile, amx_bf16) and the kernel's permission "
        "to use them; this CPU or kernel has not"));
    return false;
  }
  if (units % 32 != 0) {
    ctx->CtxFailure(InvalidArgument("S2sLstmSequence needs units a multiple of 32, got ", units));
    return false;
  }
  return true;
}

using bf16 = Eigen::bfloat16;

// Sequences are batch major ([batch, T, ...], as the layers hold them): a block's rows are
// contiguous and no transpose is needed on either side of the op.
class LstmSequenceOp : public OpKernel {
 public:
  explicit LstmSequenceOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& projected = ctx->input(0);  // [batch, T, 4·units] float
    const Tensor& h0 = ctx->input(1);         // [batch, units] bf16
    const Tensor& c0 = ctx->input(2);         // [batch, units] bf16
    const Tensor& kernel = ctx->input(3);     // [units, 4·units] bf16
    const Tensor& keep = ctx->input(4);       // [batch, T] bool
    OP_REQUIRES(ctx, h0.dims() == 2, InvalidArgument("S2sLstmSequence: h0 must be a matrix"));
    const int64_t batch = h0.dim_size(0), units = h0.dim_size(1);
    OP_REQUIRES(ctx,
                projected.dims() == 3 && projected.dim_size(0) == batch &&
                    projected.dim_size(2) == 4 * units && c0.shape() == h0.shape() &&
                    kernel.dims() == 2 && kernel.dim_size(0) == units &&
                    kernel.dim_size(1) == 4 * units && keep.dims() == 2 &&
                    keep.dim_size(0) == batch && keep.dim_size(1) == projected.dim_size(1),
                InvalidArgument("S2sLstmSequence: inconsistent shapes"));
    if (!CheckSequenceOp(ctx, units)) return;
    const int64_t steps = projected.dim_size(1), width = 4 * units;
    Tensor *h_seq, *c_prev_seq, *gate_seq, *h_last, *c_last;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({batch, steps, units}), &h_seq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({batch, steps, units}), &c_prev_seq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, projected.shape(), &gate_seq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, h0.shape(), &h_last));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, c0.shape(), &c_last));
    const bf16* w = kernel.flat<bf16>().data();
    const auto packed = PackPairs(units, width, [&](int64_t k, int64_t n) {
      return w[k * width + n];
    });
    const float* p_all = projected.flat<float>().data();
    const bool* keep_all = keep.flat<bool>().data();
    const bf16* h0_all = h0.flat<bf16>().data();
    const bf16* c0_all = c0.flat<bf16>().data();
    bf16* h_all = h_seq->flat<bf16>().data();
    float* cp_all = c_prev_seq->flat<float>().data();
    float* g_all = gate_seq->flat<float>().data();
    bf16* h_last_all = h_last->flat<bf16>().data();
    bf16* c_last_all = c_last->flat<bf16>().data();
    ForBlocks(ctx, batch, steps * kBlockRows * units * 4 * 400, [&](int64_t begin, int64_t end) {
      const int64_t rows = end - begin;
      std::vector<bf16> h(kBlockRows * units, bf16(0.0f));  // the block's h_{t-1}; pad rows 0
      std::vector<bf16> c(c0_all + begin * units, c0_all + end * units), c_next(rows * units);
      std::vector<float> sums(kBlockRows * width);
      std::vector<bf16> recurrent(width);
      Floats cell(units);
      std::copy(h0_all + begin * units, h0_all + end * units, h.begin());
      for (int64_t t = 0; t < steps; ++t) {
        MatMulBlock(h.data(), packed.data(), units, width, sums.data());
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t at = (begin + r) * steps + t, row = at * units, row4 = at * width;
          Map<bf16>(recurrent.data(), width) =
              ConstFloatMap(sums.data() + r * width, width).cast<bf16>();
          bf16* h_row = h.data() + r * units;
          const bf16* c_row = c.data() + r * units;
          FloatMap(cp_all + row, units) = ConstMap<bf16>(c_row, units).cast<float>();
          GatesRow<bf16>(units, p_all + row4, recurrent.data(), h_row, c_row, keep_all[at],
                         h_all + row, c_next.data() + r * units, g_all + row4, &cell);
          std::copy(h_all + row, h_all + row + units, h_row);
        }
        std::swap(c, c_next);
      }
      std::copy(h.begin(), h.begin() + rows * units, h_last_all + begin * units);
      std::copy(c.begin(), c.end(), c_last_all + begin * units);
    });
  }
};

class LstmSequenceGradOp : public OpKernel {
 public:
  explicit LstmSequenceGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& gate_seq = ctx->input(0);    // [batch, T, 4·units] float
    const Tensor& c_prev_seq = ctx->input(1);  // [batch, T, units] float
    const Tensor& d_h_seq = ctx->input(2);     // [batch, T, units] bf16
    const Tensor& keep = ctx->input(3);        // [batch, T] bool
    const Tensor& d_h = ctx->input(4);         // [batch, units] bf16
    const Tensor& d_c = ctx->input(5);         // [batch, units] bf16
    const Tensor& kernel = ctx->input(6);      // [units, 4·units] bf16
    OP_REQUIRES(ctx, d_c.dims() == 2,
                InvalidArgument("S2sLstmSequenceGrad: d_c must be a matrix"));
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
                InvalidArgument("S2sLstmSequenceGrad: inconsistent shapes"));
    if (!CheckSequenceOp(ctx, units)) return;
    const int64_t steps = gate_seq.dim_size(1);
    Tensor *d_z_seq, *d_h0, *d_c0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, gate_seq.shape(), &d_z_seq));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, d_c.shape(), &d_h0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, d_c.shape(), &d_c0));
    const bf16* w = kernel.flat<bf16>().data();
    const auto packed = PackPairs(width, units, [&](int64_t k, int64_t n) {  // W_hᵀ
      return w[n * width + k];
    });
    const float* g_all = gate_seq.flat<float>().data();
    const float* cp_all = c_prev_seq.flat<float>().data();
    const bf16* dhs_all = d_h_seq.flat<bf16>().data();
    const bool* keep_all = keep.flat<bool>().data();
    const bf16* d_h_in = d_h.flat<bf16>().data();
    const bf16* d_c_in = d_c.flat<bf16>().data();
    float* dz_all = d_z_seq->flat<float>().data();
    bf16* d_h0_all = d_h0->flat<bf16>().data();
    bf16* d_c0_all = d_c0->flat<bf16>().data();
    ForBlocks(ctx, batch, steps * kBlockRows * units * 4 * 600, [&](int64_t begin, int64_t end) {
      const int64_t rows = end - begin, n = rows * units;
      std::vector<bf16> d_z(kBlockRows * width, bf16(0.0f));  // this step's, pad rows 0
      std::vector<float> sums(kBlockRows * units);
      std::vector<bf16> d_h_recurrent(n, bf16(0.0f));
      std::vector<float> pass(n), pass_next(n), carry(n), carry_next(n), d_h_t(units);
      for (int64_t i = 0; i < n; ++i) {
        pass[i] = static_cast<float>(d_h_in[begin * units + i]);
        carry[i] = static_cast<float>(d_c_in[begin * units + i]);
      }
      Floats d_h_scratch(units), tanh_scratch(units);
      for (int64_t t = steps - 1; t >= 0; --t) {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t at = (begin + r) * steps + t, row = at * units, row4 = at * width;
          FloatMap(d_h_t.data(), units) = ConstMap<bf16>(dhs_all + row, units).cast<float>();
          GatesGradRow<bf16>(units, g_all + row4, cp_all + row, d_h_t.data(), keep_all[at],
                             d_h_recurrent.data() + r * units, pass.data() + r * units,
                             carry.data() + r * units, dz_all + row4,
                             carry_next.data() + r * units, pass_next.data() + r * units,
                             &d_h_scratch, &tanh_scratch);
          Map<bf16>(d_z.data() + r * width, width) =
              ConstFloatMap(dz_all + row4, width).cast<bf16>();
        }
        std::swap(pass, pass_next);
        std::swap(carry, carry_next);
        MatMulBlock(d_z.data(), packed.data(), width, units, sums.data());
        Map<bf16>(d_h_recurrent.data(), n) = ConstFloatMap(sums.data(), n).cast<bf16>();
      }
      // d_h0 = cast(d_z W_hᵀ) + pass_h, as `_fused_backward` returns, in the compute dtype
      for (int64_t i = 0; i < n; ++i) {
        d_h0_all[begin * units + i] = bf16(static_cast<float>(d_h_recurrent[i]) + pass[i]);
        d_c0_all[begin * units + i] = bf16(carry[i]);
      }
    });
  }
};

}  // namespace

REGISTER_OP("S2sLstmSequence")
    .Input("projected: float")
    .Input("h0: bfloat16")
    .Input("c0: bfloat16")
    .Input("recurrent_kernel: bfloat16")
    .Input("keep: bool")
    .Output("h_seq: bfloat16")
    .Output("c_prev_seq: float")
    .Output("gate_seq: float")
    .Output("h: bfloat16")
    .Output("c: bfloat16")
    .SetShapeFn([](InferenceContext* c) {
      auto steps = c->Dim(c->input(0), 1);
      auto batch = c->Dim(c->input(1), 0), units = c->Dim(c->input(1), 1);
      c->set_output(0, c->MakeShape({batch, steps, units}));
      c->set_output(1, c->MakeShape({batch, steps, units}));
      c->set_output(2, c->input(0));
      c->set_output(3, c->input(1));
      c->set_output(4, c->input(2));
      return tensorflow::OkStatus();
    });

REGISTER_OP("S2sLstmSequenceGrad")
    .Input("gate_seq: float")
    .Input("c_prev_seq: float")
    .Input("d_h_seq: bfloat16")
    .Input("keep: bool")
    .Input("d_h: bfloat16")
    .Input("d_c: bfloat16")
    .Input("recurrent_kernel: bfloat16")
    .Output("d_z_seq: float")
    .Output("d_h0: bfloat16")
    .Output("d_c0: bfloat16")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(5));
      c->set_output(2, c->input(5));
      return tensorflow::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("S2sLstmSequence").Device(DEVICE_CPU), LstmSequenceOp);
REGISTER_KERNEL_BUILDER(Name("S2sLstmSequenceGrad").Device(DEVICE_CPU), LstmSequenceGradOp);
