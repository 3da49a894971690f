// Greedy decoding of a stack of LSTM layers in one op (S2sLstmGreedy): the whole loop of
// `decoding/greedy.py` (`decode_loop` with argmax, finished rows leaving the batch) over the
// step `Seq2Seq.step_function()` makes for a decoder without attention — the first layer's
// projected input a row of `E W_x + b` (`lstm.input_table`), each layer's gates those of
// `lstm_rows.h`, logits `h W_out + b_out`, the next token their argmax (the first of equal
// maxima, as tf.argmax). No TensorFlow op runs per step: each block of rows runs its whole loop
// on one thread, as the sequence ops do (`lstm_sequence.h`). Float32 only.
//
// The matmuls are the engine's (`lstm_sequence_float.cc`): for blocks of at least kPackRows rows
// on weights packed once per call; for fewer (a single request) on the weights as they are, so
// that one word does not pay for packing them. The first layer's table rows are computed when a
// block first meets their token: a word needs a handful of rows, a batch the whole table. Sums
// run in another order than TensorFlow's MatMul: the logits agree to float32's precision, not
// bit for bit.
//
// An engine (besides `lstm_sequence.h`'s) has:
//   static constexpr int64_t kPanel                 packed widths are a multiple of it
//   static void MatMulRowMajor(a, rows, b, depth, width, c)   `MatMul` of a few rows with b
//       [depth, width] as it is, row major (width a multiple of kPanel): the same sums

#ifndef S2S_KERAS_LAYERS_LSTM_GREEDY_H_
#define S2S_KERAS_LAYERS_LSTM_GREEDY_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lstm_sequence.h"

namespace {

// A [depth, width] float32 matrix as the engine multiplies it: packed (its width padded with
// zero columns to a multiple of kPanel) or, where `in_place`, as it is.
template <typename Engine>
class Weights {
 public:
  Weights(const float* w, int64_t depth, int64_t width, bool in_place)
      : depth_(depth),
        width_(width),
        padded_((width + Engine::kPanel - 1) / Engine::kPanel * Engine::kPanel),
        in_place_(in_place && padded_ == width) {
    if (in_place_) {
      data_ = w;
      return;
    }
    packed_ = Engine::Pack(depth, padded_, [&](int64_t k, int64_t n) {
      return n < width ? w[k * width + n] : 0.0f;
    });
    data_ = packed_.data();
  }

  int64_t padded() const { return padded_; }

  // c [rows, padded()] = a [rows, depth] x W (zeros in the padded columns)
  void MatMul(const float* a, int64_t rows, float* c) const {
    if (in_place_) {
      Engine::MatMulRowMajor(a, rows, data_, depth_, width_, c);
    } else {
      Engine::MatMul(a, rows, data_, depth_, padded_, c);
    }
  }

 private:
  int64_t depth_, width_, padded_;
  bool in_place_;
  std::vector<float> packed_;
  const float* data_;
};

template <typename Engine>
class LstmGreedyOp : public OpKernel {
 public:
  explicit LstmGreedyOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("layers", &layers_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("end_id", &end_id_));
  }

  void Compute(OpKernelContext* ctx) override {
    tensorflow::OpInputList h0, c0, kernels, biases, recurrent;
    OP_REQUIRES_OK(ctx, ctx->input_list("h0", &h0));
    OP_REQUIRES_OK(ctx, ctx->input_list("c0", &c0));
    OP_REQUIRES_OK(ctx, ctx->input_list("kernels", &kernels));
    OP_REQUIRES_OK(ctx, ctx->input_list("biases", &biases));
    OP_REQUIRES_OK(ctx, ctx->input_list("recurrent_kernels", &recurrent));
    const Tensor& embeddings = ctx->input(5 * layers_);         // [V_in, E]
    const Tensor& projection = ctx->input(5 * layers_ + 1);     // [U_last, V]
    const Tensor& projection_bias = ctx->input(5 * layers_ + 2);  // [V]
    const Tensor& start_ids = ctx->input(5 * layers_ + 3);      // [batch]
    const Tensor& max_length_in = ctx->input(5 * layers_ + 4);  // scalar
    const char* name = "S2sLstmGreedy";
    OP_REQUIRES(ctx, start_ids.dims() == 1 && embeddings.dims() == 2,
                InvalidArgument(name, ": start_ids must be a vector, embeddings a matrix"));
    OP_REQUIRES(ctx, tensorflow::TensorShapeUtils::IsScalar(max_length_in.shape()),
                InvalidArgument(name, ": max_length must be a scalar"));
    const int64_t batch = start_ids.dim_size(0), vocabulary = embeddings.dim_size(0);
    std::vector<int64_t> units(layers_);
    int64_t depth = embeddings.dim_size(1);
    for (int l = 0; l < layers_; ++l) {
      OP_REQUIRES(ctx, h0[l].dims() == 2 && h0[l].dim_size(0) == batch,
                  InvalidArgument(name, ": h0[", l, "] must be [batch, units]"));
      units[l] = h0[l].dim_size(1);
      const int64_t width = 4 * units[l];
      OP_REQUIRES(ctx,
                  c0[l].shape() == h0[l].shape() && kernels[l].dims() == 2 &&
                      kernels[l].dim_size(0) == depth && kernels[l].dim_size(1) == width &&
                      biases[l].dims() == 1 && biases[l].dim_size(0) == width &&
                      recurrent[l].dims() == 2 && recurrent[l].dim_size(0) == units[l] &&
                      recurrent[l].dim_size(1) == width,
                  InvalidArgument(name, ": inconsistent shapes in layer ", l));
      OP_REQUIRES(ctx, width % Engine::kPanel == 0,
                  InvalidArgument(name, ": needs units a multiple of ", Engine::kPanel / 4,
                                  ", got ", units[l], " in layer ", l));
      depth = units[l];
    }
    const int64_t outputs = projection_bias.NumElements();
    OP_REQUIRES(ctx,
                projection.dims() == 2 && projection.dim_size(0) == depth &&
                    projection.dim_size(1) == outputs && projection_bias.dims() == 1,
                InvalidArgument(name, ": inconsistent shapes of the projection"));
    OP_REQUIRES(ctx, outputs > 0 && outputs <= vocabulary,
                InvalidArgument(name, ": ", outputs, " logits for an embedding of ", vocabulary,
                                " rows"));
    const int32_t* starts = start_ids.flat<int32_t>().data();
    for (int64_t r = 0; r < batch; ++r) {
      OP_REQUIRES(ctx, starts[r] >= 0 && starts[r] < vocabulary,
                  InvalidArgument(name, ": start id ", starts[r], " outside [0, ", vocabulary,
                                  ")"));
    }
    const int64_t max_length = std::max<int32_t>(1, max_length_in.scalar<int32_t>()());

    // A block per intra-op thread, but no split below 2 · kPackRows rows a block: a batch of
    // a few rows stays on one thread, its weights unpacked (a step is too short to share).
    const int threads = ctx->device()->tensorflow_cpu_worker_threads()->num_threads;
    const int64_t blocks =
        std::max<int64_t>(1, std::min<int64_t>(threads, batch / (2 * kPackRows)));
    const int64_t block_rows = std::max<int64_t>(1, (batch + blocks - 1) / blocks);
    const bool in_place = block_rows < kPackRows;
    // Layer 0's input kernel multiplies one embedding row at a time (its table rows).
    std::vector<Weights<Engine>> inputs, steps;
    inputs.emplace_back(kernels[0].flat<float>().data(), embeddings.dim_size(1), 4 * units[0],
                        true);
    for (int l = 0; l < layers_; ++l) {
      if (l > 0) {
        inputs.emplace_back(kernels[l].flat<float>().data(), units[l - 1], 4 * units[l],
                            in_place);
      }
      steps.emplace_back(recurrent[l].flat<float>().data(), units[l], 4 * units[l], in_place);
    }
    const Weights<Engine> logits_weights(projection.flat<float>().data(), depth, outputs, false);

    // each row's tokens, up to and including the end id (or max_length of them)
    std::vector<std::vector<int32_t>> ids(batch);
    const int64_t cost = max_length * block_rows * depth * 4 * 400 * layers_;
    ForBlocks<Engine>(ctx, batch, block_rows, cost, [&](int64_t begin, int64_t end) {
      int64_t n = end - begin;  // rows still decoding, compacted to the front
      std::vector<int64_t> row(n);
      std::vector<int32_t> token(starts + begin, starts + end);
      for (int64_t r = 0; r < n; ++r) row[r] = begin + r;
      std::vector<std::vector<float>> h(layers_), c(layers_);
      for (int l = 0; l < layers_; ++l) {
        const float* h_in = h0[l].flat<float>().data() + begin * units[l];
        const float* c_in = c0[l].flat<float>().data() + begin * units[l];
        h[l].assign(h_in, h_in + n * units[l]);
        c[l].assign(c_in, c_in + n * units[l]);
      }
      const int64_t widest = 4 * *std::max_element(units.begin(), units.end());
      std::vector<float> projected(n * std::max(widest, logits_weights.padded()));
      std::vector<float> sums(n * widest), activations(widest);
      std::vector<float> table(vocabulary * 4 * units[0]);
      std::vector<bool> tabulated(vocabulary, false);
      const float* embedding = embeddings.flat<float>().data();
      const float* bias0 = biases[0].flat<float>().data();
      const int64_t embedding_size = embeddings.dim_size(1), width0 = 4 * units[0];
      Floats cell(*std::max_element(units.begin(), units.end()));
      for (int64_t step = 0; step < max_length && n > 0; ++step) {
        for (int l = 0; l < layers_; ++l) {
          const int64_t u = units[l], width = 4 * u;
          if (l > 0) {
            inputs[l].MatMul(h[l - 1].data(), n, projected.data());
            const ConstFloatMap bias(biases[l].flat<float>().data(), width);
            for (int64_t r = 0; r < n; ++r) FloatMap(projected.data() + r * width, width) += bias;
          }
          steps[l].MatMul(h[l].data(), n, sums.data());
          for (int64_t r = 0; r < n; ++r) {
            const float* p = projected.data() + r * width;
            if (l == 0) {
              const int32_t id = token[r];
              float* table_row = table.data() + id * width0;
              if (!tabulated[id]) {  // E[id] W_x + b, as `input_table` sums it
                inputs[0].MatMul(embedding + id * embedding_size, 1, table_row);
                FloatMap(table_row, width0) += ConstFloatMap(bias0, width0);
                tabulated[id] = true;
              }
              p = table_row;
            }
            float* h_row = h[l].data() + r * u;
            float* c_row = c[l].data() + r * u;
            GatesRow<float>(u, p, sums.data() + r * width, h_row, c_row, true, h_row, c_row,
                            activations.data(), &cell);
          }
        }
        const int64_t padded = logits_weights.padded();
        logits_weights.MatMul(h[layers_ - 1].data(), n, projected.data());
        const float* bias = projection_bias.flat<float>().data();
        int64_t kept = 0;
        for (int64_t r = 0; r < n; ++r) {
          const float* logits = projected.data() + r * padded;
          int32_t best = 0;
          float best_logit = logits[0] + bias[0];
          for (int64_t v = 1; v < outputs; ++v) {
            const float logit = logits[v] + bias[v];
            if (logit > best_logit) best = static_cast<int32_t>(v), best_logit = logit;
          }
          ids[row[r]].push_back(best);
          if (best == end_id_) continue;
          // the row goes on: moved to the front of the block's state
          if (kept != r) {
            row[kept] = row[r];
            for (int l = 0; l < layers_; ++l) {
              std::copy_n(h[l].data() + r * units[l], units[l], h[l].data() + kept * units[l]);
              std::copy_n(c[l].data() + r * units[l], units[l], c[l].data() + kept * units[l]);
            }
          }
          token[kept++] = best;
        }
        n = kept;
      }
    });
    // The loop ran as many steps as the longest row has tokens.
    size_t steps_run = 0;
    for (const auto& row_ids : ids) steps_run = std::max(steps_run, row_ids.size());
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0, TensorShape({batch, static_cast<int64_t>(steps_run)}), &out));
    auto out_ids = out->matrix<int32_t>();
    out_ids.setZero();
    for (int64_t r = 0; r < batch; ++r) {
      for (size_t t = 0; t < ids[r].size(); ++t) out_ids(r, t) = ids[r][t];
    }
  }

 private:
  int layers_;
  int end_id_;
};

}  // namespace

// The op's registration for an engine (float32).
#define S2S_REGISTER_LSTM_GREEDY_OP(name, Engine)                            \
  REGISTER_OP(name)                                                         \
      .Input("h0: layers * float")                                          \
      .Input("c0: layers * float")                                          \
      .Input("kernels: layers * float")                                     \
      .Input("biases: layers * float")                                      \
      .Input("recurrent_kernels: layers * float")                           \
      .Input("embeddings: float")                                           \
      .Input("projection_kernel: float")                                    \
      .Input("projection_bias: float")                                      \
      .Input("start_ids: int32")                                            \
      .Input("max_length: int32")                                           \
      .Attr("layers: int >= 1")                                             \
      .Attr("end_id: int")                                                  \
      .Output("ids: int32")                                                 \
      .SetShapeFn([](InferenceContext* c) {                                 \
        c->set_output(0, c->Matrix(c->Dim(c->input(c->num_inputs() - 2), 0), \
                                   InferenceContext::kUnknownDim));         \
        return tensorflow::OkStatus();                                      \
      });                                                                   \
  REGISTER_KERNEL_BUILDER(Name(name).Device(DEVICE_CPU), LstmGreedyOp<Engine>)

#endif  // S2S_KERAS_LAYERS_LSTM_GREEDY_H_
