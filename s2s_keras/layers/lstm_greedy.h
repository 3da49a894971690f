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
#include <string>
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

  int64_t width() const { return width_; }
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

// The layers' work of one decoding step for `n` rows, the first layer's projected inputs
// given: each layer's matmuls and gates (h and c updated in place, n rows each), then the
// logits' matmul (without its bias) into `logits` [n, projection.padded()].
template <typename Engine>
struct Stack {
  std::vector<int64_t> units;
  std::vector<Weights<Engine>> inputs;  // layer l's W_x at l - 1 (the first layer's: a table)
  std::vector<const float*> biases;     // layer l's b at l - 1
  std::vector<Weights<Engine>> recurrent;
  const Weights<Engine>* projection;

  int64_t widest() const { return 4 * *std::max_element(units.begin(), units.end()); }

  // Scratch for `n` rows.
  struct Scratch {
    Scratch(const Stack& stack, int64_t n)
        : projected(n * stack.widest()),
          sums(n * stack.widest()),
          activations(stack.widest()),
          cell(stack.widest() / 4) {}
    std::vector<float> projected, sums, activations;
    Floats cell;
  };

  // `first[r]`: row r's projected input of the first layer (4 · units[0] floats).
  void Step(int64_t n, const float* const* first, std::vector<std::vector<float>>* h,
            std::vector<std::vector<float>>* c, Scratch* scratch, float* logits) const {
    for (size_t l = 0; l < units.size(); ++l) {
      const int64_t u = units[l], width = 4 * u;
      if (l > 0) {
        inputs[l - 1].MatMul((*h)[l - 1].data(), n, scratch->projected.data());
        const ConstFloatMap bias(biases[l - 1], width);
        for (int64_t r = 0; r < n; ++r) {
          FloatMap(scratch->projected.data() + r * width, width) += bias;
        }
      }
      recurrent[l].MatMul((*h)[l].data(), n, scratch->sums.data());
      for (int64_t r = 0; r < n; ++r) {
        const float* p = l == 0 ? first[r] : scratch->projected.data() + r * width;
        float* h_row = (*h)[l].data() + r * u;
        float* c_row = (*c)[l].data() + r * u;
        GatesRow<float>(u, p, scratch->sums.data() + r * width, h_row, c_row, true, h_row,
                        c_row, scratch->activations.data(), &scratch->cell);
      }
    }
    projection->MatMul(h->back().data(), n, logits);
  }
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

    const int threads = ctx->device()->tensorflow_cpu_worker_threads()->num_threads;
    const int64_t blocks =
        std::max<int64_t>(1, std::min<int64_t>(threads, batch / (2 * kPackRows)));
    const int64_t block_rows = std::max<int64_t>(1, (batch + blocks - 1) / blocks);
    const bool in_place = block_rows < kPackRows;
    // Layer 0's input kernel multiplies one embedding row at a time (its table rows).
    const Weights<Engine> table_weights(kernels[0].flat<float>().data(), embeddings.dim_size(1),
                                        4 * units[0], true);
    const Weights<Engine> logits_weights(projection.flat<float>().data(), depth, outputs, false);
    Stack<Engine> stack{units, {}, {}, {}, &logits_weights};
    for (int l = 0; l < layers_; ++l) {
      if (l > 0) {
        stack.inputs.emplace_back(kernels[l].flat<float>().data(), units[l - 1], 4 * units[l],
                                  in_place);
        stack.biases.push_back(biases[l].flat<float>().data());
      }
      stack.recurrent.emplace_back(recurrent[l].flat<float>().data(), units[l], 4 * units[l],
                                   in_place);
    }

    std::vector<int32_t> ids(batch * max_length, 0);
    std::vector<int64_t> block_steps(blocks, 0);
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
      typename Stack<Engine>::Scratch scratch(stack, n);
      const int64_t padded = logits_weights.padded();
      std::vector<float> logits(n * padded);
      std::vector<const float*> first(n);
      const int64_t width0 = 4 * units[0], embedding_size = embeddings.dim_size(1);
      std::vector<float> table(vocabulary * width0);
      std::vector<bool> tabulated(vocabulary, false);
      const float* embedding = embeddings.flat<float>().data();
      const ConstFloatMap bias0(biases[0].flat<float>().data(), width0);
      const float* bias = projection_bias.flat<float>().data();
      int64_t step = 0;
      for (; step < max_length && n > 0; ++step) {
        for (int64_t r = 0; r < n; ++r) {
          const int32_t id = token[r];
          float* table_row = table.data() + id * width0;
          if (!tabulated[id]) {  // E[id] W_x + b, as `input_table` sums it
            table_weights.MatMul(embedding + id * embedding_size, 1, table_row);
            FloatMap(table_row, width0) += bias0;
            tabulated[id] = true;
          }
          first[r] = table_row;
        }
        stack.Step(n, first.data(), &h, &c, &scratch, logits.data());
        int64_t kept = 0;
        for (int64_t r = 0; r < n; ++r) {
          const float* row_logits = logits.data() + r * padded;
          int32_t best = 0;
          float best_logit = row_logits[0] + bias[0];
          for (int64_t v = 1; v < outputs; ++v) {
            const float logit = row_logits[v] + bias[v];
            if (logit > best_logit) best = static_cast<int32_t>(v), best_logit = logit;
          }
          ids[row[r] * max_length + step] = best;
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
      block_steps[begin / block_rows] = step;
    });
    const int64_t steps_run =
        batch == 0 ? 0 : *std::max_element(block_steps.begin(), block_steps.end());
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({batch, steps_run}), &out));
    int32_t* out_ids = out->flat<int32_t>().data();
    for (int64_t r = 0; r < batch; ++r) {
      std::copy_n(ids.data() + r * max_length, steps_run, out_ids + r * steps_run);
    }
  }

 private:
  int layers_;
  int end_id_;
};

// One decoding step of an LSTM stack (S2sLstmDecoderStep): what `Seq2Seq.step_function()`'s
// step computes — the first layer's projected input a row of the given table (`input_table`),
// each layer's matmuls and gates, the logits `h W_out + b_out` — in one op, for the loops that
// keep TensorFlow's bookkeeping (beam search, sampling). Blocks of rows on the intra-op
// threads, as the greedy op.
template <typename Engine>
class LstmDecoderStepOp : public OpKernel {
 public:
  explicit LstmDecoderStepOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("layers", &layers_));
    int inner;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("inner", &inner));
    OP_REQUIRES(ctx, inner == layers_ - 1,
                InvalidArgument("S2sLstmDecoderStep: kernels and biases for every layer but "
                                "the first: ", layers_ - 1, ", not ", inner));
  }

  void Compute(OpKernelContext* ctx) override {
    const char* name = "S2sLstmDecoderStep";
    tensorflow::OpInputList h0, c0, kernels, biases, recurrent;
    OP_REQUIRES_OK(ctx, ctx->input_list("h", &h0));
    OP_REQUIRES_OK(ctx, ctx->input_list("c", &c0));
    OP_REQUIRES_OK(ctx, ctx->input_list("kernels", &kernels));
    OP_REQUIRES_OK(ctx, ctx->input_list("biases", &biases));
    OP_REQUIRES_OK(ctx, ctx->input_list("recurrent_kernels", &recurrent));
    const int inner = layers_ - 1;
    const Tensor& table = ctx->input(2 * layers_ + 2 * inner + layers_);
    const Tensor& projection = ctx->input(2 * layers_ + 2 * inner + layers_ + 1);
    const Tensor& projection_bias = ctx->input(2 * layers_ + 2 * inner + layers_ + 2);
    const Tensor& token_ids = ctx->input(2 * layers_ + 2 * inner + layers_ + 3);
    OP_REQUIRES(ctx, token_ids.dims() == 1 && table.dims() == 2,
                InvalidArgument(name, ": token_ids must be a vector, table a matrix"));
    const int64_t rows = token_ids.dim_size(0), vocabulary = table.dim_size(0);
    std::vector<int64_t> units(layers_);
    int64_t depth = 0;
    for (int l = 0; l < layers_; ++l) {
      OP_REQUIRES(ctx, h0[l].dims() == 2 && h0[l].dim_size(0) == rows,
                  InvalidArgument(name, ": h[", l, "] must be [rows, units]"));
      units[l] = h0[l].dim_size(1);
      const int64_t width = 4 * units[l];
      OP_REQUIRES(ctx,
                  c0[l].shape() == h0[l].shape() && recurrent[l].dims() == 2 &&
                      recurrent[l].dim_size(0) == units[l] &&
                      recurrent[l].dim_size(1) == width &&
                      (l > 0 || table.dim_size(1) == width) &&
                      (l == 0 || (kernels[l - 1].dims() == 2 &&
                                  kernels[l - 1].dim_size(0) == depth &&
                                  kernels[l - 1].dim_size(1) == width &&
                                  biases[l - 1].dims() == 1 &&
                                  biases[l - 1].dim_size(0) == width)),
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
    const int32_t* ids = token_ids.flat<int32_t>().data();
    for (int64_t r = 0; r < rows; ++r) {
      OP_REQUIRES(ctx, ids[r] >= 0 && ids[r] < vocabulary,
                  InvalidArgument(name, ": token id ", ids[r], " outside [0, ", vocabulary,
                                  ")"));
    }
    Tensor* logits_out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({rows, outputs}), &logits_out));
    tensorflow::OpOutputList h_out, c_out;
    OP_REQUIRES_OK(ctx, ctx->output_list("h_out", &h_out));
    OP_REQUIRES_OK(ctx, ctx->output_list("c_out", &c_out));
    std::vector<float*> h_all(layers_), c_all(layers_);
    for (int l = 0; l < layers_; ++l) {
      Tensor *h_tensor, *c_tensor;
      OP_REQUIRES_OK(ctx, h_out.allocate(l, h0[l].shape(), &h_tensor));
      OP_REQUIRES_OK(ctx, c_out.allocate(l, c0[l].shape(), &c_tensor));
      h_all[l] = h_tensor->flat<float>().data();
      c_all[l] = c_tensor->flat<float>().data();
    }

    const int threads = ctx->device()->tensorflow_cpu_worker_threads()->num_threads;
    const int64_t blocks =
        std::max<int64_t>(1, std::min<int64_t>(threads, rows / (2 * kPackRows)));
    const int64_t block_rows = std::max<int64_t>(1, (rows + blocks - 1) / blocks);
    const bool in_place = block_rows < kPackRows;
    const Weights<Engine> logits_weights(projection.flat<float>().data(), depth, outputs, false);
    Stack<Engine> stack{units, {}, {}, {}, &logits_weights};
    for (int l = 0; l < layers_; ++l) {
      if (l > 0) {
        stack.inputs.emplace_back(kernels[l - 1].flat<float>().data(), units[l - 1],
                                  4 * units[l], in_place);
        stack.biases.push_back(biases[l - 1].flat<float>().data());
      }
      stack.recurrent.emplace_back(recurrent[l].flat<float>().data(), units[l], 4 * units[l],
                                   in_place);
    }
    const float* table_data = table.flat<float>().data();
    const float* bias = projection_bias.flat<float>().data();
    float* logits_all = logits_out->flat<float>().data();
    const int64_t cost = block_rows * depth * 4 * 400 * layers_;
    ForBlocks<Engine>(ctx, rows, block_rows, cost, [&](int64_t begin, int64_t end) {
      const int64_t n = end - begin;
      std::vector<std::vector<float>> h(layers_), c(layers_);
      for (int l = 0; l < layers_; ++l) {
        const float* h_in = h0[l].flat<float>().data() + begin * units[l];
        const float* c_in = c0[l].flat<float>().data() + begin * units[l];
        h[l].assign(h_in, h_in + n * units[l]);
        c[l].assign(c_in, c_in + n * units[l]);
      }
      std::vector<const float*> first(n);
      for (int64_t r = 0; r < n; ++r) first[r] = table_data + ids[begin + r] * 4 * units[0];
      typename Stack<Engine>::Scratch scratch(stack, n);
      const int64_t padded = logits_weights.padded();
      std::vector<float> logits(n * padded);
      stack.Step(n, first.data(), &h, &c, &scratch, logits.data());
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t v = 0; v < outputs; ++v) {
          logits_all[(begin + r) * outputs + v] = logits[r * padded + v] + bias[v];
        }
      }
      for (int l = 0; l < layers_; ++l) {
        std::copy(h[l].begin(), h[l].end(), h_all[l] + begin * units[l]);
        std::copy(c[l].begin(), c[l].end(), c_all[l] + begin * units[l]);
      }
    });
  }

 private:
  int layers_;
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

// The step op's registration for an engine (float32).
#define S2S_REGISTER_LSTM_DECODER_STEP_OP(name, Engine)                       \
  REGISTER_OP(name)                                                          \
      .Input("h: layers * float")                                            \
      .Input("c: layers * float")                                            \
      .Input("kernels: inner * float")                                       \
      .Input("biases: inner * float")                                        \
      .Input("recurrent_kernels: layers * float")                            \
      .Input("table: float")                                                 \
      .Input("projection_kernel: float")                                     \
      .Input("projection_bias: float")                                       \
      .Input("token_ids: int32")                                             \
      .Attr("layers: int >= 1")                                              \
      .Attr("inner: int >= 0")                                               \
      .Output("logits: float")                                               \
      .Output("h_out: layers * float")                                       \
      .Output("c_out: layers * float")                                       \
      .SetShapeFn([](InferenceContext* c) {                                  \
        int layers;                                                          \
        TF_RETURN_IF_ERROR(c->GetAttr("layers", &layers));                   \
        c->set_output(0, c->Matrix(c->Dim(c->input(c->num_inputs() - 1), 0), \
                                   c->Dim(c->input(c->num_inputs() - 2), 0))); \
        for (int l = 0; l < 2 * layers; ++l) c->set_output(1 + l, c->input(l)); \
        return tensorflow::OkStatus();                                       \
      });                                                                    \
  REGISTER_KERNEL_BUILDER(Name(name).Device(DEVICE_CPU), LstmDecoderStepOp<Engine>)

#endif  // S2S_KERAS_LAYERS_LSTM_GREEDY_H_
