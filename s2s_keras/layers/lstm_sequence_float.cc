// The whole-sequence LSTM training ops of `lstm_sequence.h` in float32, for CPUs with AVX2 and
// FMA: S2sLstmSequenceFloat and S2sLstmSequenceFloatGrad, and the decoding ops S2sLstmGreedy
// (`lstm_greedy.h`) and S2sLstmBeamSearch (`lstm_beam.h`). `s2s_keras/layers/lstm_kernels.py`
// builds this library with `-mavx`, as the per-step one, and loads it where `S2sFmaUsable`
// holds. The gate arithmetic
// is the per-step kernels' (AVX: tf.sigmoid's and tf.tanh's roundings); only the recurrent
// matmul is AVX2 FMA code, in functions of their own.
//
// The matmul: W_h (or W_hᵀ) is packed once per call into panels of 16 columns, each panel's
// rows contiguous; a block of rows (one per intra-op thread) multiplies panel by panel, so a
// panel stays in the L1 or L2 cache while 6-row slices of the block's A stream past it, 6 x 16
// float32 sums in 12 registers. A few rows (a single request's decoding) multiply B as it is,
// row after row of it (`MatMulRowMajor`): no packing, B streamed once in memory order; each
// sum runs over k in the same order as in the microkernel, so both give the same numbers.

#include <immintrin.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lstm_beam.h"
#include "lstm_greedy.h"
#include "lstm_sequence.h"

namespace {

constexpr int64_t kPanel = 16;  // columns of a packed panel: two 8-float registers
constexpr int64_t kSlice = 6;   // rows of A per microkernel call

bool FmaUsable() {
  static const bool usable = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return usable;
}

// c [R, 16] (row stride c_stride) = a [R, depth] (row stride depth) x panel [depth, 16].
template <int R>
__attribute__((target("avx2,fma"))) void MicroKernel(const float* a, const float* panel,
                                                      int64_t depth, float* c,
                                                      int64_t c_stride) {
  __m256 low[R], high[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) low[r] = high[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < depth; ++k) {
    const __m256 b_low = _mm256_loadu_ps(panel + k * kPanel);
    const __m256 b_high = _mm256_loadu_ps(panel + k * kPanel + 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 x = _mm256_broadcast_ss(a + r * depth + k);
      low[r] = _mm256_fmadd_ps(x, b_low, low[r]);
      high[r] = _mm256_fmadd_ps(x, b_high, high[r]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(c + r * c_stride, low[r]);
    _mm256_storeu_ps(c + r * c_stride + 8, high[r]);
  }
}

struct Fma {
  using T = float;
  static constexpr int64_t kPanel = ::kPanel;

  static std::string Requirement(int64_t units) {
    if (!FmaUsable()) return "needs a CPU with AVX2 and FMA; this one has not";
    if (units % kPanel != 0) {
      return "needs units a multiple of 16, got " + std::to_string(units);
    }
    return "";
  }

  // One block per intra-op thread: each thread streams the packed W_h once per step.
  static int64_t BlockRows(int64_t batch, int threads) {
    const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(threads, batch / kSlice));
    return std::max<int64_t>(1, (batch + blocks - 1) / blocks);
  }

  // packed[panel][k][j] = b(k, panel · 16 + j)
  template <typename Get>
  static std::vector<float> Pack(int64_t depth, int64_t width, Get b) {
    std::vector<float> packed(depth * width);
    for (int64_t panel = 0; panel < width / kPanel; ++panel)
      for (int64_t k = 0; k < depth; ++k)
        for (int64_t j = 0; j < kPanel; ++j)
          packed[(panel * depth + k) * kPanel + j] = b(k, panel * kPanel + j);
    return packed;
  }

  static void MatMul(const float* a, int64_t rows, const float* packed, int64_t depth,
                     int64_t width, float* c) {
    for (int64_t panel = 0; panel < width / kPanel; ++panel) {
      const float* b = packed + panel * depth * kPanel;
      float* c_panel = c + panel * kPanel;
      for (int64_t r = 0; r < rows; r += kSlice) {
        const float* a_slice = a + r * depth;
        float* c_slice = c_panel + r * width;
        switch (std::min(kSlice, rows - r)) {
          case 6: MicroKernel<6>(a_slice, b, depth, c_slice, width); break;
          case 5: MicroKernel<5>(a_slice, b, depth, c_slice, width); break;
          case 4: MicroKernel<4>(a_slice, b, depth, c_slice, width); break;
          case 3: MicroKernel<3>(a_slice, b, depth, c_slice, width); break;
          case 2: MicroKernel<2>(a_slice, b, depth, c_slice, width); break;
          default: MicroKernel<1>(a_slice, b, depth, c_slice, width); break;
        }
      }
    }
  }

  // c [rows, width] = a [rows, depth] x b [depth, width] (row major, width a multiple of 8),
  // for a few rows: c's rows stay in the L1 cache while b streams past once.
  __attribute__((target("avx2,fma"))) static void MatMulRowMajor(const float* a, int64_t rows,
                                                                 const float* b, int64_t depth,
                                                                 int64_t width, float* c) {
    std::fill(c, c + rows * width, 0.0f);
    for (int64_t k = 0; k < depth; ++k) {
      const float* b_row = b + k * width;
      for (int64_t r = 0; r < rows; ++r) {
        const __m256 x = _mm256_set1_ps(a[r * depth + k]);
        float* c_row = c + r * width;
        for (int64_t n = 0; n < width; n += 8) {
          _mm256_storeu_ps(c_row + n, _mm256_fmadd_ps(x, _mm256_loadu_ps(b_row + n),
                                                      _mm256_loadu_ps(c_row + n)));
        }
      }
    }
  }

  static void ThreadBegin() {}
  static void ThreadEnd() {}
};

}  // namespace

S2S_REGISTER_LSTM_SEQUENCE_OPS("S2sLstmSequenceFloat", "float", Fma);

S2S_REGISTER_LSTM_GREEDY_OP("S2sLstmGreedy", Fma);
S2S_REGISTER_LSTM_BEAM_SEARCH_OP("S2sLstmBeamSearch", Fma);

S2S_REGISTER_USABLE_OP("S2sFmaUsable", FmaUsable);
