// Greedy decoding of a stack of LSTM layers in one op (S2sLstmGreedy): the whole loop of
// `decoding/greedy.py` (`decode_loop` with argmax, finished rows leaving the batch) over the
// step `Seq2Seq.step_function()` makes for a decoder without attention — the first layer's
// projected input a row of `E W_x + b` (`lstm.input_table`), each layer's gates those of
// `lstm_rows.h`, logits `h W_out + b_out`, the next token their argmax (the first of equal
// maxima, as tf.argmax). No TensorFlow op runs per step: each block of rows runs its whole loop
// on one thread, as the sequence ops do (`lstm_sequence.h`); on an engine that multiplies
// weights as they are (float32), a lone block (a single request) shares each recurrent and input
// matmul's columns with a helper thread (`Helper`).
//
// The engine's compute dtype T is the decoder's (float32: `lstm_fma.h`, in
// `lstm_sequence_float.cc`; bf16: AMX tiles or AVX-512-BF16, in `lstm_sequence.cc`): h, c and
// the LSTM kernels are T, each matmul's float32 sums rounded to T as TensorFlow's MatMul
// outputs them, the gates float32 (`GatesRow`), the biases, the embedding (rounded to T where it
// is multiplied) and the output projection float32 — the arithmetic of `lstm.lstm_step` and a
// float32 output layer. The logits' matmul is `Engine::Logits`'s (float32) on h cast to
// float32.
//
// The matmuls are the engine's: for blocks of at least kPackRows rows on packed weights, which
// the op keeps between calls while the weights stay the same (`PackedCache`); for fewer (a
// single request), where the engine can, on the weights as they are. The first layer's table
// rows are computed when a block first meets their token (a step's new tokens in one matmul): a
// word needs a handful of rows, a batch the whole table. Sums run in another order than
// TensorFlow's MatMul: the logits agree to float32's precision, not bit for bit; but each sum
// runs over k in order whatever the blocking, so a row gets the same numbers alone or in a
// batch.
//
// An engine (besides `lstm_sequence.h`'s) has:
//   static constexpr int64_t kPanel                 packed widths are a multiple of it
//   static constexpr int64_t kDepth                 matmul depths must be a multiple of it
//   static constexpr int64_t kRows                  `MatMul` reads and writes rows in multiples
//       of it (the buffers past `rows` allocated)
//   using Logits                                    the float32 engine of the logits' matmul
//   static bool Usable()                            whether this CPU (and kernel) runs it
// and may have
//   static void MatMulRowMajor(a, rows, b, depth, width, c, begin = 0, end = -1)   `MatMul` of
//       a few rows with b [depth, width] as it is, row major (width a multiple of kPanel), only
//       columns [begin, end) where `end` is given: the same sums

#ifndef S2S_KERAS_LAYERS_LSTM_GREEDY_H_
#define S2S_KERAS_LAYERS_LSTM_GREEDY_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "lstm_sequence.h"

// In a function returning bool: unless `condition` (resp. the status is ok), the op fails with
// `status` and the function returns false.
#define S2S_REQUIRE(ctx, condition, status) \
  do {                                      \
    if (!(condition)) {                     \
      (ctx)->CtxFailure(status);            \
      return false;                         \
    }                                       \
  } while (0)
#define S2S_REQUIRE_OK(ctx, expression)            \
  do {                                             \
    const auto s2s_status = (expression);          \
    S2S_REQUIRE(ctx, s2s_status.ok(), s2s_status); \
  } while (0)

namespace {

// A second thread for a lone block's matmuls (a single request's few rows: its steps are too
// short to share between blocks, but each matmul's columns split in two). `Run(n, task)` runs
// task(0), ..., task(n - 1), each on whichever thread claims it first: the calling one, or the
// helper, a loop of an intra-op pool thread that waits for work (spinning, then yielding)
// until `Stop()`. The caller never waits for a helper that has not started (it then claims
// every task itself), only for tasks the helper claimed, so a busy pool costs no deadlock.
class Helper {
 public:
  template <typename Engine>
  void Start(tensorflow::thread::ThreadPool* pool) {
    Stop();  // a helper started before leaves its loop
    shared_ = std::make_shared<Shared>();
    pool->Schedule([shared = shared_] {
      Engine::ThreadBegin();
      int64_t seen = 0;
      for (int idle = 0; !shared->stop.load(std::memory_order_acquire);) {
        const int64_t state = shared->state.load(std::memory_order_acquire);
        if (state >> 32 == seen) {
          Wait(++idle);
          continue;
        }
        seen = state >> 32;
        idle = 0;
        shared->Claim(seen);
      }
      Engine::ThreadEnd();
    });
  }

  bool started() const { return shared_ != nullptr; }

  void Run(int tasks, const std::function<void(int)>& task) {
    Shared& shared = *shared_;
    shared.task.store(&task, std::memory_order_relaxed);
    shared.tasks.store(tasks, std::memory_order_relaxed);
    shared.done.store(0, std::memory_order_relaxed);
    const int64_t generation = (shared.state.load(std::memory_order_relaxed) >> 32) + 1;
    shared.state.store(generation << 32, std::memory_order_release);
    shared.Claim(generation);
    for (int idle = 0; shared.done.load(std::memory_order_acquire) < tasks;) Wait(++idle);
  }

  void Stop() {
    if (shared_) shared_->stop.store(true, std::memory_order_release);
    shared_.reset();
  }

  ~Helper() { Stop(); }

 private:
  struct Shared {
    // generation << 32 | the next task to claim
    std::atomic<int64_t> state{0};
    std::atomic<int> done{0};
    std::atomic<bool> stop{false};
    std::atomic<const std::function<void(int)>*> task{nullptr};
    std::atomic<int> tasks{0};  // of the generation `state` names

    // Runs the tasks of `generation` this thread claims, until none is left.
    void Claim(int64_t generation) {
      int64_t state_now = state.load(std::memory_order_acquire);
      while (state_now >> 32 == generation &&
             (state_now & 0xffffffff) < tasks.load(std::memory_order_relaxed)) {
        if (!state.compare_exchange_weak(state_now, state_now + 1, std::memory_order_acq_rel)) {
          continue;
        }
        (*task.load(std::memory_order_relaxed))(static_cast<int>(state_now & 0xffffffff));
        done.fetch_add(1, std::memory_order_release);
        state_now = state.load(std::memory_order_acquire);
      }
    }
  };

  // A wait's `idle`-th round: a pause, then yielding the core once the wait is long.
  static void Wait(int idle) {
    if (idle < 4096) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }

  std::shared_ptr<Shared> shared_;
};

// The packed matrices an op keeps between its calls, one per slot: a matrix is packed again only
// where its values changed (a served model's weights do not), so that a request does not pay
// for packing them — a comparison of the values instead. Calls may run at once; each keeps the
// packing it took (shared) for as long as it runs.
template <typename Engine>
class PackedCache {
 public:
  using T = typename Engine::T;
  using Packed = std::shared_ptr<const std::vector<T>>;

  // The packing of `w[0, n)` in `slot`, made by `pack()` unless the slot holds that of the same
  // values (bit for bit).
  template <typename Pack>
  Packed Get(size_t slot, const T* w, int64_t n, Pack pack) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (slots_.size() <= slot) slots_.resize(slot + 1);
    Slot& cached = slots_[slot];
    if (!cached.packed || static_cast<int64_t>(cached.source.size()) != n ||
        std::memcmp(cached.source.data(), w, n * sizeof(T)) != 0) {
      cached.source.assign(w, w + n);
      cached.packed = std::make_shared<const std::vector<T>>(pack());
    }
    return cached.packed;
  }

 private:
  struct Slot {
    std::vector<T> source;
    Packed packed;
  };
  std::mutex mutex_;
  std::vector<Slot> slots_;
};

// A [depth, width] matrix of the engine's dtype as the engine multiplies it: packed (its width
// padded with zero columns to a multiple of kPanel; kept in `cache`'s `slot` between calls) or,
// where `in_place` and the engine can, as it is.
template <typename Engine>
class Weights {
 public:
  using T = typename Engine::T;

  Weights(const T* w, int64_t depth, int64_t width, bool in_place, PackedCache<Engine>* cache,
          size_t slot)
      : depth_(depth),
        width_(width),
        padded_((width + Engine::kPanel - 1) / Engine::kPanel * Engine::kPanel),
        in_place_(in_place && padded_ == width && MultipliesRowMajor<Engine>::value) {
    if (in_place_) {
      data_ = w;
      return;
    }
    packed_ = cache->Get(slot, w, depth * width, [&] {
      return Engine::Pack(depth, padded_, [&](int64_t k, int64_t n) {
        return n < width ? w[k * width + n] : T(0.0f);
      });
    });
    data_ = packed_->data();
  }

  int64_t padded() const { return padded_; }

  // c [rows, padded()] = a [rows, depth] x W (zeros in the padded columns); where W is as it
  // is and a helper has started, each thread multiplies half its columns.
  void MatMul(const T* a, int64_t rows, float* c, Helper* helper = nullptr) const {
    if constexpr (MultipliesRowMajor<Engine>::value) {
      if (in_place_ && (helper == nullptr || !helper->started())) {
        Engine::MatMulRowMajor(a, rows, data_, depth_, width_, c);
        return;
      }
      if (in_place_) {
        const int64_t half = width_ / 2 / Engine::kPanel * Engine::kPanel;
        helper->Run(2, [&](int part) {
          Engine::MatMulRowMajor(a, rows, data_, depth_, width_, c, part ? half : 0,
                                 part ? width_ : half);
        });
        return;
      }
    }
    Engine::MatMul(a, rows, data_, depth_, padded_, c);
  }

 private:
  int64_t depth_, width_, padded_;
  bool in_place_;
  typename PackedCache<Engine>::Packed packed_;
  const T* data_;
};

// What the decoding ops share: the decoder stack's inputs (checked), its weights as a call
// multiplies them, and one step of a block of rows — the step `Seq2Seq.step_function()` makes
// for a decoder without attention, logits `h W_out + b_out` included.
template <typename Engine>
class DecoderStack {
 public:
  using T = typename Engine::T;
  using LogitsEngine = typename Engine::Logits;

  // What an op keeps between its calls: its packed weights.
  struct Packings {
    PackedCache<Engine> layers;
    PackedCache<LogitsEngine> logits;
  };

  // A block's rows: per layer h and c (`capacity` rows), the first layer's table rows as they
  // are met, and scratch. `logits`: the last step's, row stride `LogitsStride()`.
  struct Block {
    std::vector<std::vector<T>> h, c;
    std::vector<T> embedded, moved, rounded;
    std::vector<float> projected, sums, activations, logits, table, last;
    std::vector<bool> tabulated;
    std::vector<int32_t> new_ids;
    Floats cell;
  };

  // Reads the inputs all decoding ops start with (see S2S_DECODER_INPUTS); false after a
  // failure (the context has it).
  bool Read(OpKernelContext* ctx, const char* name, int layers) {
    layers_ = layers;
    S2S_REQUIRE_OK(ctx, ctx->input_list("h0", &h0_));
    S2S_REQUIRE_OK(ctx, ctx->input_list("c0", &c0_));
    S2S_REQUIRE_OK(ctx, ctx->input_list("kernels", &kernels_));
    S2S_REQUIRE_OK(ctx, ctx->input_list("biases", &biases_));
    S2S_REQUIRE_OK(ctx, ctx->input_list("recurrent_kernels", &recurrent_));
    embeddings_ = &ctx->input(5 * layers);                  // [V_in, E]
    const Tensor& projection = ctx->input(5 * layers + 1);  // [U_last, V]
    projection_bias_ = &ctx->input(5 * layers + 2);         // [V]
    const Tensor& start_ids = ctx->input(5 * layers + 3);   // [batch]
    const Tensor& max_length = ctx->input(5 * layers + 4);  // scalar
    S2S_REQUIRE(ctx, start_ids.dims() == 1 && embeddings_->dims() == 2,
                InvalidArgument(name, ": start_ids must be a vector, embeddings a matrix"));
    S2S_REQUIRE(ctx, tensorflow::TensorShapeUtils::IsScalar(max_length.shape()),
                InvalidArgument(name, ": max_length must be a scalar"));
    batch_ = start_ids.dim_size(0);
    vocabulary_ = embeddings_->dim_size(0);
    units_.resize(layers);
    int64_t depth = embeddings_->dim_size(1);
    S2S_REQUIRE(ctx, Engine::Usable(),
                InvalidArgument(name, ": this CPU (or its kernel) cannot run its code"));
    for (int l = 0; l < layers; ++l) {
      S2S_REQUIRE(ctx, h0_[l].dims() == 2 && h0_[l].dim_size(0) == batch_,
                  InvalidArgument(name, ": h0[", l, "] must be [batch, units]"));
      units_[l] = h0_[l].dim_size(1);
      const int64_t width = 4 * units_[l];
      S2S_REQUIRE(ctx, c0_[l].shape() == h0_[l].shape() && kernels_[l].dims() == 2 &&
                  kernels_[l].dim_size(0) == depth && kernels_[l].dim_size(1) == width &&
                  biases_[l].dims() == 1 && biases_[l].dim_size(0) == width &&
                  recurrent_[l].dims() == 2 && recurrent_[l].dim_size(0) == units_[l] &&
                  recurrent_[l].dim_size(1) == width,
                  InvalidArgument(name, ": inconsistent shapes in layer ", l));
      S2S_REQUIRE(ctx, width % Engine::kPanel == 0,
                  InvalidArgument(name, ": needs units a multiple of ", Engine::kPanel / 4,
                                  ", got ", units_[l], " in layer ", l));
      S2S_REQUIRE(ctx, depth % Engine::kDepth == 0 && units_[l] % Engine::kDepth == 0,
                  InvalidArgument(name, ": needs input sizes and units multiples of ",
                                  Engine::kDepth, ", got ", depth, " and ", units_[l],
                                  " in layer ", l));
      depth = units_[l];
    }
    outputs_ = projection_bias_->NumElements();
    S2S_REQUIRE(ctx, projection.dims() == 2 && projection.dim_size(0) == depth &&
                projection.dim_size(1) == outputs_ && projection_bias_->dims() == 1,
                InvalidArgument(name, ": inconsistent shapes of the projection"));
    S2S_REQUIRE(ctx, outputs_ > 0 && outputs_ <= vocabulary_,
                InvalidArgument(name, ": ", outputs_, " logits for an embedding of ",
                                vocabulary_, " rows"));
    starts_ = start_ids.flat<int32_t>().data();
    for (int64_t r = 0; r < batch_; ++r) {
      S2S_REQUIRE(ctx, starts_[r] >= 0 && starts_[r] < vocabulary_,
                  InvalidArgument(name, ": start id ", starts_[r], " outside [0, ",
                                  vocabulary_, ")"));
    }
    max_length_ = std::max<int32_t>(1, max_length.scalar<int32_t>()());
    projection_ = projection.flat<float>().data();
    return true;
  }

  int64_t batch() const { return batch_; }
  int64_t max_length() const { return max_length_; }
  int64_t outputs() const { return outputs_; }
  int32_t start(int64_t row) const { return starts_[row]; }

  // Makes the weights the blocks multiply, and returns the batch rows of a block: a block per
  // intra-op thread, but no split below 2 · kPackRows network rows a block (`rows_per_item`
  // of them per batch row): a few rows stay in one block, their weights unpacked (a step is
  // too short to share), and a helper thread multiplies half of each recurrent and input
  // matmul's columns. `Cost`, `NewBlock` and `LogitsStride` need it first. The packed weights
  // come from (and stay in) `packings`.
  int64_t Prepare(OpKernelContext* ctx, int64_t rows_per_item, Packings* packings) {
    const int threads = ctx->device()->tensorflow_cpu_worker_threads()->num_threads;
    const int64_t blocks = std::max<int64_t>(
        1, std::min<int64_t>({threads, batch_, batch_ * rows_per_item / (2 * kPackRows)}));
    const int64_t block_items = std::max<int64_t>(1, (batch_ + blocks - 1) / blocks);
    const bool in_place = block_items * rows_per_item < kPackRows;
    if (MultipliesRowMajor<Engine>::value && blocks == 1 && threads > 1 && in_place &&
        batch_ > 0) {
      helper_.Start<Engine>(ctx->device()->tensorflow_cpu_worker_threads()->workers);
    }
    // Layer 0's input kernel multiplies embedding rows (its table rows: a step's new tokens).
    inputs_.clear();
    steps_.clear();
    auto* cache = &packings->layers;  // slots: layer l's input kernel 2l, recurrent 2l + 1
    inputs_.emplace_back(kernels_[0].flat<T>().data(), embeddings_->dim_size(1),
                         4 * units_[0], true, cache, 0);
    for (int l = 0; l < layers_; ++l) {
      if (l > 0) {
        inputs_.emplace_back(kernels_[l].flat<T>().data(), units_[l - 1], 4 * units_[l],
                             in_place, cache, 2 * l);
      }
      steps_.emplace_back(recurrent_[l].flat<T>().data(), units_[l], 4 * units_[l], in_place,
                          cache, 2 * l + 1);
    }
    logits_weights_.emplace(projection_, units_.back(), outputs_, false, &packings->logits, 0);
    return block_items;
  }

  // The cost of a block's loop over `block_rows` network rows, for the pool's sharding.
  int64_t Cost(int64_t block_rows) const {
    return max_length_ * block_rows * units_.back() * 4 * 400 * layers_;
  }

  Block NewBlock(int64_t capacity) const {
    // the engine's matmuls read and write rows in multiples of kRows
    const int64_t rows = (capacity + Engine::kRows - 1) / Engine::kRows * Engine::kRows;
    Block block;
    block.h.resize(layers_);
    block.c.resize(layers_);
    for (int l = 0; l < layers_; ++l) {
      block.h[l].resize(rows * units_[l]);
      block.c[l].resize(rows * units_[l]);
    }
    const int64_t widest = 4 * *std::max_element(units_.begin(), units_.end());
    block.projected.resize(rows * widest);
    block.sums.resize(rows * widest);
    block.rounded.resize(widest);
    block.activations.resize(widest);
    block.logits.resize(capacity * logits_weights_->padded());
    if constexpr (!std::is_same_v<T, float>) block.last.resize(capacity * units_.back());
    block.table.resize(vocabulary_ * 4 * units_[0]);
    block.tabulated.assign(vocabulary_, false);
    block.embedded.resize(rows * embeddings_->dim_size(1));
    block.new_ids.reserve(capacity);
    block.moved.resize(capacity * widest / 4);
    block.cell.resize(widest / 4);
    return block;
  }

  // Block row `row` starts from the initial state of batch row `item`.
  void Start(Block* block, int64_t row, int64_t item) const {
    for (int l = 0; l < layers_; ++l) {
      const int64_t u = units_[l];
      std::copy_n(h0_[l].flat<T>().data() + item * u, u, block->h[l].data() + row * u);
      std::copy_n(c0_[l].flat<T>().data() + item * u, u, block->c[l].data() + row * u);
    }
  }

  // Rows [0, n) of the block's state become rows `from[0, n)` of it. Rows kept in order (the
  // greedy op's compaction: `from` increasing, so never below its position) move in place;
  // others (beams chosen twice, or reordered) through a buffer.
  void Gather(Block* block, const int64_t* from, int64_t n) const {
    bool in_order = true;
    for (int64_t r = 1; r < n && in_order; ++r) in_order = from[r - 1] < from[r];
    for (int l = 0; l < layers_; ++l) {
      const int64_t u = units_[l];
      for (auto* state : {&block->h[l], &block->c[l]}) {
        T* rows = state->data();
        for (int64_t r = 0; r < n; ++r) {
          if (!in_order) {
            std::copy_n(rows + from[r] * u, u, block->moved.data() + r * u);
          } else if (from[r] != r) {
            std::copy_n(rows + from[r] * u, u, rows + r * u);
          }
        }
        if (!in_order) std::copy_n(block->moved.data(), n * u, rows);
      }
    }
  }

  int64_t LogitsStride() const { return logits_weights_->padded(); }

  // The first layer's table rows `tokens[0, n)` that the block has not met yet, E[id] W_x + b
  // as `input_table` sums them: in one matmul (the same sums as one at a time).
  void Tabulate(const int32_t* tokens, int64_t n, Block* block) const {
    const int64_t embedding_size = embeddings_->dim_size(1), width0 = 4 * units_[0];
    block->new_ids.clear();
    for (int64_t r = 0; r < n; ++r) {
      if (block->tabulated[tokens[r]]) continue;
      block->tabulated[tokens[r]] = true;
      Map<T>(block->embedded.data() + block->new_ids.size() * embedding_size, embedding_size) =
          ConstFloatMap(embeddings_->flat<float>().data() + tokens[r] * embedding_size,
                        embedding_size)
              .template cast<T>();
      block->new_ids.push_back(tokens[r]);
    }
    const int64_t m = block->new_ids.size();
    if (m == 0) return;
    inputs_[0].MatMul(block->embedded.data(), m, block->projected.data(), &helper_);
    RoundToComputeDtype<T>(block->projected.data(), m * width0);
    const ConstFloatMap bias(biases_[0].flat<float>().data(), width0);
    for (int64_t i = 0; i < m; ++i) {
      FloatMap(block->table.data() + block->new_ids[i] * width0, width0) =
          ConstFloatMap(block->projected.data() + i * width0, width0) + bias;
    }
  }

  // One step of rows [0, n) reading `tokens`: their states, and their logits (bias added).
  void Step(const int32_t* tokens, int64_t n, Block* block) const {
    Tabulate(tokens, n, block);
    const int64_t width0 = 4 * units_[0];
    for (int l = 0; l < layers_; ++l) {
      const int64_t u = units_[l], width = 4 * u;
      if (l > 0) {
        inputs_[l].MatMul(block->h[l - 1].data(), n, block->projected.data(), &helper_);
        RoundToComputeDtype<T>(block->projected.data(), n * width);
        const ConstFloatMap bias(biases_[l].flat<float>().data(), width);
        for (int64_t r = 0; r < n; ++r) {
          FloatMap(block->projected.data() + r * width, width) += bias;
        }
      }
      steps_[l].MatMul(block->h[l].data(), n, block->sums.data(), &helper_);
      for (int64_t r = 0; r < n; ++r) {
        const float* p = block->projected.data() + r * width;
        if (l == 0) p = block->table.data() + tokens[r] * width0;
        T* h_row = block->h[l].data() + r * u;
        T* c_row = block->c[l].data() + r * u;
        const T* recurrent =
            InComputeDtype(block->sums.data() + r * width, width, &block->rounded);
        GatesRow<T>(u, p, recurrent, h_row, c_row, true, h_row, c_row, block->activations.data(),
                    &block->cell);
      }
    }
    const int64_t padded = logits_weights_->padded();
    const T* last = block->h[layers_ - 1].data();
    if constexpr (std::is_same_v<T, float>) {
      logits_weights_->MatMul(last, n, block->logits.data());
    } else {  // the float32 output layer's input: h cast to float32
      FloatMap(block->last.data(), n * units_.back()) =
          ConstMap<T>(last, n * units_.back()).template cast<float>();
      logits_weights_->MatMul(block->last.data(), n, block->logits.data());
    }
    const ConstFloatMap bias(projection_bias_->flat<float>().data(), outputs_);
    for (int64_t r = 0; r < n; ++r) {
      FloatMap(block->logits.data() + r * padded, outputs_) += bias;
    }
  }

 private:
  int layers_ = 0;
  tensorflow::OpInputList h0_, c0_, kernels_, biases_, recurrent_;
  const Tensor* embeddings_ = nullptr;
  const Tensor* projection_bias_ = nullptr;
  const float* projection_ = nullptr;
  const int32_t* starts_ = nullptr;
  int64_t batch_ = 0, vocabulary_ = 0, outputs_ = 0, max_length_ = 1;
  std::vector<int64_t> units_;
  std::vector<Weights<Engine>> inputs_, steps_;
  std::optional<Weights<LogitsEngine>> logits_weights_;
  mutable Helper helper_;  // where a lone block's few rows share their matmuls
};

template <typename Engine>
class LstmGreedyOp : public OpKernel {
 public:
  explicit LstmGreedyOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("layers", &layers_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("end_id", &end_id_));
  }

  void Compute(OpKernelContext* ctx) override {
    DecoderStack<Engine> stack;
    if (!stack.Read(ctx, type_string().c_str(), layers_)) return;
    const int64_t batch = stack.batch(), max_length = stack.max_length();
    const int64_t block_rows = stack.Prepare(ctx, 1, &packings_);
    // each row's tokens, up to and including the end id (or max_length of them)
    std::vector<std::vector<int32_t>> ids(batch);
    ForBlocks<Engine>(ctx, batch, block_rows, stack.Cost(block_rows), [&](int64_t begin,
                                                                           int64_t end) {
      int64_t n = end - begin;  // rows still decoding, compacted to the front
      std::vector<int64_t> row(n), from(n);
      std::vector<int32_t> token(n);
      auto block = stack.NewBlock(n);
      for (int64_t r = 0; r < n; ++r) {
        row[r] = begin + r;
        token[r] = stack.start(begin + r);
        stack.Start(&block, r, begin + r);
      }
      const int64_t stride = stack.LogitsStride(), outputs = stack.outputs();
      for (int64_t step = 0; step < max_length && n > 0; ++step) {
        stack.Step(token.data(), n, &block);
        int64_t kept = 0;
        for (int64_t r = 0; r < n; ++r) {
          const float* logits = block.logits.data() + r * stride;
          // the first of equal maxima, as tf.argmax
          const int32_t best =
              static_cast<int32_t>(std::max_element(logits, logits + outputs) - logits);
          ids[row[r]].push_back(best);
          if (best == end_id_) continue;
          // the row goes on: moved to the front of the block's state
          row[kept] = row[r];
          from[kept] = r;
          token[kept++] = best;
        }
        if (kept < n) stack.Gather(&block, from.data(), kept);
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
  typename DecoderStack<Engine>::Packings packings_;
};

}  // namespace

// The inputs every decoding op starts with (`DecoderStack::Read`), `dtype` the engine's ("float"
// or "bfloat16").
#define S2S_DECODER_INPUTS(dtype)                       \
  .Input("h0: layers * " dtype)                         \
      .Input("c0: layers * " dtype)                     \
      .Input("kernels: layers * " dtype)                \
      .Input("biases: layers * float")                  \
      .Input("recurrent_kernels: layers * " dtype)      \
      .Input("embeddings: float")                       \
      .Input("projection_kernel: float")       \
      .Input("projection_bias: float")         \
      .Input("start_ids: int32")               \
      .Input("max_length: int32")

// The op's registration for an engine of dtype `dtype` ("float" or "bfloat16").
#define S2S_REGISTER_LSTM_GREEDY_OP(name, dtype, Engine)                     \
  REGISTER_OP(name)                                                         \
      S2S_DECODER_INPUTS(dtype)                                             \
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
