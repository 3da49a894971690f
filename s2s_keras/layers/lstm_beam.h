// Beam search over a stack of LSTM layers in one op (S2sLstmBeamSearch): the whole loop of
// `decoding/beam_search.py` over the step of `lstm_greedy.h`'s DecoderStack, with no TensorFlow
// op per step. Each batch row searches on its own, so a block of batch rows (their beams the
// block's network rows) runs its whole loop on one thread, as the greedy op does.
//
// It reproduces `beam_search` step by step: the log-softmax of the logits added to each beam's
// log-probability; the 2·beam best extensions (ties to the lower index, as tf.math.top_k); those
// ending with end_id kept as finished when they rank in the top beam; the beam best unfinished
// ones going on; a row leaving once it has beam finished hypotheses or its num_results best can
// no longer change; at max_length the unfinished ones filling up the results. Scores use the
// same float32 operations in the same order; the logits differ from TensorFlow's by the order
// of the matmuls' sums (see `lstm_greedy.h`) and the log-softmax by its sum's, so scores agree
// to float32's precision and the hypotheses wherever no two candidates tie that closely.

#ifndef S2S_KERAS_LAYERS_LSTM_BEAM_H_
#define S2S_KERAS_LAYERS_LSTM_BEAM_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "lstm_greedy.h"

namespace {

// `beam_search.NEG_INF`: a placeholder's score.
constexpr float kNegInf = -1e9f;

// GNMT's length penalty `((5 + length) / 6) ** alpha`, in float32 as `length_penalty`.
float LengthPenalty(int64_t length, float alpha) {
  return std::pow((5.0f + static_cast<float>(length)) / 6.0f, alpha);
}

// `_normalize`: a length-normalized score; placeholders stay exactly kNegInf.
float Normalize(float logp, float penalty) {
  return logp > kNegInf / 2 ? logp / penalty : kNegInf;
}

// The indices of the `k` largest `values[0, n)`, largest first, ties to the lower index (as
// tf.math.top_k), in `order` (resized to n; the first k are the answer).
template <typename Value>
void TopK(const Value* values, int64_t n, int64_t k, std::vector<int64_t>* order) {
  order->resize(n);
  std::iota(order->begin(), order->end(), 0);
  std::partial_sort(order->begin(), order->begin() + k, order->end(),
                    [values](int64_t a, int64_t b) {
                      return values[a] > values[b] || (values[a] == values[b] && a < b);
                    });
}

// One batch row's search: `beam` alive and `beam` finished hypotheses, each `max_length`
// tokens (0 past its end).
struct Hypotheses {
  std::vector<float> alive_logp, finished_scores;
  std::vector<int32_t> alive_seq, finished_seq;
};

template <typename Engine>
class LstmBeamSearchOp : public OpKernel {
 public:
  explicit LstmBeamSearchOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("layers", &layers_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("end_id", &end_id_));
  }

  void Compute(OpKernelContext* ctx) override {
    const char* name = type_string().c_str();
    DecoderStack<Engine> stack;
    if (!stack.Read(ctx, name, layers_)) return;
    const Tensor& beam_in = ctx->input(5 * layers_ + 5);
    const Tensor& alpha_in = ctx->input(5 * layers_ + 6);
    const Tensor& num_results_in = ctx->input(5 * layers_ + 7);
    OP_REQUIRES(ctx,
                tensorflow::TensorShapeUtils::IsScalar(beam_in.shape()) &&
                    tensorflow::TensorShapeUtils::IsScalar(alpha_in.shape()) &&
                    tensorflow::TensorShapeUtils::IsScalar(num_results_in.shape()),
                InvalidArgument(name, ": beam_size, alpha and num_results must be scalars"));
    // clamped as `beam_search` clamps them
    const int64_t beam = std::max<int32_t>(1, beam_in.scalar<int32_t>()());
    const float alpha = std::max(0.0f, alpha_in.scalar<float>()());
    const int64_t num_results =
        std::clamp<int64_t>(num_results_in.scalar<int32_t>()(), 1, beam);
    const int64_t batch = stack.batch(), max_length = stack.max_length();
    const int64_t block_items = stack.Prepare(ctx, beam, &packings_);
    const int64_t vocabulary = stack.outputs(), stride = stack.LogitsStride();
    const int64_t candidates = beam * vocabulary, wide = std::min(2 * beam, candidates);
    const float final_penalty = LengthPenalty(max_length, alpha);

    // per batch row: its results (finished, then unfinished hypotheses) and the steps it ran
    std::vector<Hypotheses> results(batch);
    std::vector<int64_t> steps_run(batch, 0);
    const int64_t cost = stack.Cost(block_items * beam);
    ForBlocks<Engine>(ctx, batch, block_items, cost, [&](int64_t begin, int64_t end) {
      int64_t n = end - begin;  // batch rows still searching, compacted to the front
      std::vector<int64_t> item(n);
      std::vector<Hypotheses> rows(n);
      std::vector<int32_t> tokens(n * beam);
      std::vector<int64_t> from(n * beam);
      auto block = stack.NewBlock(n * beam);
      for (int64_t i = 0; i < n; ++i) {
        item[i] = begin + i;
        Hypotheses& row = rows[i];
        // Only the first beam is live at the start; the others would duplicate it.
        row.alive_logp.assign(beam, kNegInf);
        row.alive_logp[0] = 0.0f;
        row.finished_scores.assign(beam, kNegInf);
        row.alive_seq.assign(beam * max_length, 0);
        row.finished_seq.assign(beam * max_length, 0);
        for (int64_t j = 0; j < beam; ++j) {
          tokens[i * beam + j] = stack.start(begin + i);
          stack.Start(&block, i * beam + j, begin + i);
        }
      }
      std::vector<float> scores(candidates), pool(beam + wide), alive(wide);
      std::vector<float> top_logp(wide), logp(vocabulary);
      std::vector<int32_t> top_seq(wide * max_length), top_token(wide);
      std::vector<int32_t> finished_seq(beam * max_length);
      std::vector<int64_t> order, top_beam(wide);
      for (int64_t step = 0; step < max_length && n > 0; ++step) {
        stack.Step(tokens.data(), n * beam, &block);
        const float end_penalty = LengthPenalty(step + 1, alpha);
        int64_t kept = 0;
        for (int64_t i = 0; i < n; ++i) {
          Hypotheses& row = rows[i];
          for (int64_t j = 0; j < beam; ++j) {  // log_softmax, plus the beam's log-probability
            const ConstFloatMap logits(block.logits.data() + (i * beam + j) * stride,
                                       vocabulary);
            FloatMap shifted(logp.data(), vocabulary);
            shifted = logits - logits.maxCoeff();
            const float log_sum = std::log(shifted.exp().sum());
            for (int64_t v = 0; v < vocabulary; ++v) {
              scores[j * vocabulary + v] = row.alive_logp[j] + (logp[v] - log_sum);
            }
          }
          // 2 · beam candidates: even if beam of them end here, beam unfinished ones remain.
          TopK(scores.data(), candidates, wide, &order);
          for (int64_t w = 0; w < wide; ++w) {
            top_logp[w] = scores[order[w]];
            top_beam[w] = order[w] / vocabulary;
            top_token[w] = static_cast<int32_t>(order[w] % vocabulary);
            int32_t* seq = top_seq.data() + w * max_length;
            std::copy_n(row.alive_seq.data() + top_beam[w] * max_length, max_length, seq);
            seq[step] = top_token[w];
            // Finished pool: the kept ones, then those ending now within the top beam.
            pool[beam + w] = top_token[w] == end_id_ && w < beam
                                 ? Normalize(top_logp[w], end_penalty)
                                 : kNegInf;
            alive[w] = top_token[w] == end_id_ ? kNegInf : top_logp[w];
          }
          std::copy_n(row.finished_scores.data(), beam, pool.data());
          TopK(pool.data(), beam + wide, beam, &order);
          for (int64_t j = 0; j < beam; ++j) {
            const int64_t w = order[j];
            row.finished_scores[j] = pool[w];
            std::copy_n(w < beam ? row.finished_seq.data() + w * max_length
                                 : top_seq.data() + (w - beam) * max_length,
                        max_length, finished_seq.data() + j * max_length);
          }
          row.finished_seq.swap(finished_seq);  // its buffer the next row's scratch
          // Alive: the best beam candidates that did not end.
          TopK(alive.data(), wide, beam, &order);
          for (int64_t j = 0; j < beam; ++j) {
            const int64_t w = order[j];
            row.alive_logp[j] = alive[w];
            std::copy_n(top_seq.data() + w * max_length, max_length,
                        row.alive_seq.data() + j * max_length);
            from[kept * beam + j] = i * beam + top_beam[w];
            tokens[kept * beam + j] = top_token[w];
          }
          // Done: beam hypotheses finished, or the num_results best can no longer change.
          const int64_t finished = std::count_if(row.finished_scores.begin(),
                                                 row.finished_scores.end(),
                                                 [](float s) { return s > kNegInf / 2; });
          const bool settled =
              finished >= num_results && Normalize(row.alive_logp[0], final_penalty) <
                                             row.finished_scores[num_results - 1];
          if (finished >= beam || settled) {
            steps_run[item[i]] = step + 1;
            results[item[i]].finished_scores = row.finished_scores;
            results[item[i]].finished_seq.swap(row.finished_seq);
            continue;
          }
          if (kept != i) {
            item[kept] = item[i];
            std::swap(rows[kept], rows[i]);
          }
          ++kept;
        }
        stack.Gather(&block, from.data(), kept * beam);
        n = kept;
      }
      for (int64_t i = 0; i < n; ++i) {  // still searching at max_length
        steps_run[item[i]] = max_length;
        results[item[i]] = std::move(rows[i]);
      }
    });

    // The loop ran as many steps as the row that searched longest; its results are cut there.
    const int64_t steps = batch ? *std::max_element(steps_run.begin(), steps_run.end()) : 0;
    const float alive_penalty = LengthPenalty(steps, alpha);
    Tensor *ids_out, *scores_out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({batch, num_results, steps}),
                                             &ids_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({batch, num_results}), &scores_out));
    auto ids = ids_out->tensor<int32_t, 3>();
    auto out_scores = scores_out->matrix<float>();
    std::vector<double> rank(2 * beam);
    std::vector<float> ranked(2 * beam);
    std::vector<int64_t> order;
    for (int64_t r = 0; r < batch; ++r) {
      Hypotheses& row = results[r];
      if (row.alive_logp.empty()) {  // it left the search: no unfinished ones
        row.alive_logp.assign(beam, kNegInf);
        row.alive_seq.assign(beam * max_length, 0);
      }
      // Finished hypotheses first, then unfinished ones (cut at max_length), as `beam_search`
      // ranks them (float64, so that the group offsets do not swallow score differences).
      for (int64_t j = 0; j < 2 * beam; ++j) {
        const bool is_alive = j >= beam;
        ranked[j] = is_alive ? Normalize(row.alive_logp[j - beam], alive_penalty)
                             : row.finished_scores[j];
        rank[j] = static_cast<double>(ranked[j]) + 2.0 * kNegInf * is_alive +
                  4.0 * kNegInf * (ranked[j] <= kNegInf);
      }
      TopK(rank.data(), 2 * beam, num_results, &order);
      for (int64_t k = 0; k < num_results; ++k) {
        const int64_t j = order[k];
        out_scores(r, k) = ranked[j];
        const int32_t* seq = j < beam ? row.finished_seq.data() + j * max_length
                                      : row.alive_seq.data() + (j - beam) * max_length;
        for (int64_t t = 0; t < steps; ++t) ids(r, k, t) = seq[t];
      }
    }
  }

 private:
  int layers_;
  int end_id_;
  typename DecoderStack<Engine>::Packings packings_;
};

}  // namespace

// The op's registration for an engine of dtype `dtype` ("float" or "bfloat16"): the greedy
// op's inputs, then the search's.
#define S2S_REGISTER_LSTM_BEAM_SEARCH_OP(name, dtype, Engine)                   \
  REGISTER_OP(name)                                                            \
      S2S_DECODER_INPUTS(dtype)                                                \
      .Input("beam_size: int32")                                               \
      .Input("alpha: float")                                                   \
      .Input("num_results: int32")                                             \
      .Attr("layers: int >= 1")                                                \
      .Attr("end_id: int")                                                     \
      .Output("ids: int32")                                                    \
      .Output("scores: float")                                                 \
      .SetShapeFn([](InferenceContext* c) {                                    \
        auto batch = c->Dim(c->input(c->num_inputs() - 5), 0);                 \
        c->set_output(0, c->MakeShape({batch, InferenceContext::kUnknownDim,   \
                                       InferenceContext::kUnknownDim}));       \
        c->set_output(1, c->Matrix(batch, InferenceContext::kUnknownDim));     \
        return tensorflow::OkStatus();                                         \
      });                                                                      \
  REGISTER_KERNEL_BUILDER(Name(name).Device(DEVICE_CPU), LstmBeamSearchOp<Engine>)

#endif  // S2S_KERAS_LAYERS_LSTM_BEAM_H_
