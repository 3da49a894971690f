// The float32 AVX2 FMA matmul engine (`lstm_sequence.h`'s interface), shared by the float32
// library (`lstm_sequence_float.cc`: its training and decoding ops) and the bf16 one
// (`lstm_sequence.cc`: its decoding ops' float32 logits).
//
// W_h (or W_hᵀ) is packed once per call into panels of 16 columns, each panel's rows
// contiguous; a block of rows (one per intra-op thread) multiplies panel by panel, so a panel
// stays in the L1 or L2 cache while 6-row slices of the block's A stream past it, 6 x 16
// float32 sums in 12 registers. A few rows (a single request's decoding) multiply B as it is
// (`MatMulRowMajor`): no packing, the same microkernel reading B's rows with their own stride,
// blocks of 16 to 64 columns at a time; each sum runs over k in the same order either way, so
// both give the same numbers.

#ifndef S2S_KERAS_LAYERS_LSTM_FMA_H_
#define S2S_KERAS_LAYERS_LSTM_FMA_H_

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "lstm_sequence.h"

namespace {

constexpr int64_t kPanel = 16;  // columns of a packed panel: two 8-float registers
constexpr int64_t kSlice = 6;   // rows of A per microkernel call

bool FmaUsable() {
  static const bool usable = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return usable;
}

// c [R, 16·S] (row stride c_stride) = a [R, depth] (row stride depth) x b [depth, 16·S] (row
// stride b_stride: kPanel for a packed panel, the width for B as it is). Each sum runs over k in
// order from 0, one FMA a step, whatever R and S: every blocking gives the same numbers.
template <int R, int S>
__attribute__((target("avx2,fma"))) void MicroKernel(const float* a, const float* b,
                                                      int64_t b_stride, int64_t depth, float* c,
                                                      int64_t c_stride) {
  __m256 sums[R][2 * S];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < 2 * S; ++j) sums[r][j] = _mm256_setzero_ps();
  for (int64_t k = 0; k < depth; ++k) {
    __m256 b_k[2 * S];
#pragma GCC unroll 8
    for (int j = 0; j < 2 * S; ++j) b_k[j] = _mm256_loadu_ps(b + k * b_stride + 8 * j);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 x = _mm256_broadcast_ss(a + r * depth + k);
#pragma GCC unroll 8
      for (int j = 0; j < 2 * S; ++j) sums[r][j] = _mm256_fmadd_ps(x, b_k[j], sums[r][j]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < 2 * S; ++j) _mm256_storeu_ps(c + r * c_stride + 8 * j, sums[r][j]);
}

// Columns [begin, end) of c [R, width] = a [R, depth] x b [depth, width] as it is (width, begin
// and end multiples of kPanel), in column blocks of 16·S, the last ones of 16.
template <int R, int S>
void RowMajorSlice(const float* a, const float* b, int64_t depth, int64_t width, float* c,
                   int64_t begin, int64_t end) {
  int64_t n = begin;
  for (; n + 16 * S <= end; n += 16 * S) MicroKernel<R, S>(a, b + n, width, depth, c + n, width);
  for (; n < end; n += 16) MicroKernel<R, 1>(a, b + n, width, depth, c + n, width);
}

struct Fma {
  using T = float;
  static constexpr int64_t kPanel = ::kPanel;
  // for the decoding ops (`lstm_greedy.h`): any input size, blocks of any number of rows, the
  // logits by this engine too
  static constexpr int64_t kDepth = 1, kRows = 1;
  using Logits = Fma;
  static bool Usable() { return FmaUsable(); }

  static std::string Requirement(int64_t units) {
    if (!FmaUsable()) return "needs a CPU with AVX2 and FMA; this one has not";
    if (units % kPanel != 0) {
      return "needs units a multiple of 16, got " + std::to_string(units);
    }
    return "";
  }

  static int64_t BlockRows(int64_t batch, int threads) {
    return OneBlockPerThread(batch, threads, kSlice);
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
          case 6: MicroKernel<6, 1>(a_slice, b, kPanel, depth, c_slice, width); break;
          case 5: MicroKernel<5, 1>(a_slice, b, kPanel, depth, c_slice, width); break;
          case 4: MicroKernel<4, 1>(a_slice, b, kPanel, depth, c_slice, width); break;
          case 3: MicroKernel<3, 1>(a_slice, b, kPanel, depth, c_slice, width); break;
          case 2: MicroKernel<2, 1>(a_slice, b, kPanel, depth, c_slice, width); break;
          default: MicroKernel<1, 1>(a_slice, b, kPanel, depth, c_slice, width); break;
        }
      }
    }
  }

  // c [rows, width] = a [rows, depth] x b [depth, width] (row major, width a multiple of
  // kPanel), for a few rows: B read as it is, 16 to 64 columns of it at a time, their sums in
  // registers over the whole depth (one or two rows take wider blocks, to have enough sums in
  // flight). Only columns [begin, end) where `end` is given (multiples of kPanel).
  static void MatMulRowMajor(const float* a, int64_t rows, const float* b, int64_t depth,
                             int64_t width, float* c, int64_t begin = 0, int64_t end = -1) {
    if (end < 0) end = width;
    for (int64_t r = 0; r < rows; r += kSlice) {
      const float* a_slice = a + r * depth;
      float* c_slice = c + r * width;
      switch (std::min(kSlice, rows - r)) {
        case 6: RowMajorSlice<6, 1>(a_slice, b, depth, width, c_slice, begin, end); break;
        case 5: RowMajorSlice<5, 1>(a_slice, b, depth, width, c_slice, begin, end); break;
        case 4: RowMajorSlice<4, 1>(a_slice, b, depth, width, c_slice, begin, end); break;
        case 3: RowMajorSlice<3, 1>(a_slice, b, depth, width, c_slice, begin, end); break;
        case 2: RowMajorSlice<2, 2>(a_slice, b, depth, width, c_slice, begin, end); break;
        default: RowMajorSlice<1, 4>(a_slice, b, depth, width, c_slice, begin, end); break;
      }
    }
  }

  static void ThreadBegin() {}
  static void ThreadEnd() {}
};

}  // namespace

#endif  // S2S_KERAS_LAYERS_LSTM_FMA_H_
