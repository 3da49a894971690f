// The bf16 whole-sequence LSTM training ops of `lstm_sequence.h`, two engines
// (`s2s_keras/layers/lstm_kernels.py` builds this library with AVX-512 and AMX code generation
// and loads it only where `S2sAmxUsable` or `S2sAvx512Bf16Usable` holds):
//   - S2sLstmSequence and S2sLstmSequenceGrad, for CPUs with AMX tiles: each block of 32 rows
//     runs its whole loop on one thread, its recurrent matmul on the AMX tile unit (TDPBF16PS);
//   - S2sLstmSequenceAvx512 and S2sLstmSequenceAvx512Grad, for CPUs with AVX-512-BF16 and no
//     AMX: one block of rows per intra-op thread, its recurrent matmul in VDPBF16PS.
// Both sum pairs of bf16 products in float32, with W_h packed once per call into the same
// pair-interleaved layout. The same engines run the bf16 decoding ops of `lstm_greedy.h` and
// `lstm_beam.h` (S2sLstmGreedyAmx, S2sLstmBeamSearchAmx, S2sLstmGreedyAvx512,
// S2sLstmBeamSearchAvx512: a bf16 decoder's whole greedy or beam search loop in one op), their
// float32 logits on `lstm_fma.h`'s engine.

#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "lstm_beam.h"
#include "lstm_fma.h"
#include "lstm_greedy.h"
#include "lstm_sequence.h"

namespace {

constexpr int64_t kBlockRows = 32;  // two A tiles of 16 rows

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

// B [k, n] = b(k, n) for k < depth, n < width into the tiles' layout: blocks of 16 columns, in
// each the rows paired, packed[block][k / 2][n][k % 2] (depth even, width a multiple of 16; AMX
// needs both multiples of 32). A pair of rows of a block is 32 bf16: one AVX-512 register.
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

using bf16 = Eigen::bfloat16;

struct Amx {
  using T = bf16;
  // decoding (`lstm_greedy.h`): tiles of 32 rows, 32 columns, depths of 32
  static constexpr int64_t kPanel = 32, kDepth = 32, kRows = kBlockRows;
  using Logits = Fma;
  static bool Usable() { return AmxUsable(); }

  static std::string Requirement(int64_t units) {
    if (!AmxUsable()) {
      return "needs AMX tiles (amx_tile, amx_bf16) and the kernel's permission to use them; "
             "this CPU or kernel has not";
    }
    if (units % 32 != 0) return "needs units a multiple of 32, got " + std::to_string(units);
    return "";
  }

  static int64_t BlockRows(int64_t, int) { return kBlockRows; }

  template <typename Get>
  static std::vector<bf16> Pack(int64_t depth, int64_t width, Get b) {
    return PackPairs(depth, width, b);
  }

  // Blocks of 32 rows (a training block is one; a decoding block rounds its rows up).
  static void MatMul(const bf16* a, int64_t rows, const bf16* packed, int64_t depth,
                     int64_t width, float* c) {
    for (int64_t r = 0; r < rows; r += kBlockRows) {
      MatMulBlock(a + r * depth, packed, depth, width, c + r * width);
    }
  }

  static void ThreadBegin() { ConfigureTiles(); }
  static void ThreadEnd() { ReleaseTiles(); }
};

constexpr int64_t kDotSlice = 8;   // rows of A per microkernel call
constexpr int64_t kDotPanels = 2;  // packed blocks of 16 columns per call

// c [R, 16 P] (row stride c_stride) = a [R, depth] (row stride depth) x P consecutive packed
// blocks: R x P float32 registers, each k pair one broadcast of a row's two bf16 and one
// VDPBF16PS per register.
template <int R, int P>
__attribute__((target("avx512f,avx512bf16"))) void DotKernel(const bf16* a, const bf16* blocks,
                                                            int64_t depth, float* c,
                                                            int64_t c_stride) {
  __m512 sums[R][P];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p) sums[r][p] = _mm512_setzero_ps();
  for (int64_t k = 0; k < depth; k += 2) {
    __m512bh b[P];
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p) {
      b[p] = (__m512bh)_mm512_loadu_si512(blocks + p * depth * 16 + k * 16);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * depth + k, sizeof(pair));
      const __m512bh x = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 2
      for (int p = 0; p < P; ++p) sums[r][p] = _mm512_dpbf16_ps(sums[r][p], x, b[p]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p) _mm512_storeu_ps(c + r * c_stride + p * 16, sums[r][p]);
}

using DotFunction = void (*)(const bf16*, const bf16*, int64_t, float*, int64_t);

// kernels[P - 1][R - 1] = DotKernel<R, P>
template <int... R>
constexpr std::array<std::array<DotFunction, sizeof...(R)>, 2> DotKernels(
    std::integer_sequence<int, R...>) {
  return {{{&DotKernel<R + 1, 1>...}, {&DotKernel<R + 1, 2>...}}};
}

constexpr auto kDotKernels = DotKernels(std::make_integer_sequence<int, kDotSlice>());

struct Avx512Bf16 {
  using T = bf16;
  // decoding (`lstm_greedy.h`): blocks of 16 columns, pairs of k
  static constexpr int64_t kPanel = 16, kDepth = 2, kRows = 1;
  using Logits = Fma;
  static bool Usable() { return Avx512Bf16Usable(); }

  static std::string Requirement(int64_t units) {
    if (!Avx512Bf16Usable()) return "needs a CPU with AVX-512-BF16; this one has not";
    if (units % 16 != 0) return "needs units a multiple of 16, got " + std::to_string(units);
    return "";
  }

  static int64_t BlockRows(int64_t batch, int threads) {
    return OneBlockPerThread(batch, threads, kDotSlice);
  }

  template <typename Get>
  static std::vector<bf16> Pack(int64_t depth, int64_t width, Get b) {
    return PackPairs(depth, width, b);
  }

  // Two blocks of columns at a time (16 KB of W_h at 256 rows: they stay in the L1 cache while
  // the rows stream past), then slices of 8 rows.
  static void MatMul(const bf16* a, int64_t rows, const bf16* packed, int64_t depth,
                     int64_t width, float* c) {
    const int64_t blocks = width / 16;
    for (int64_t block = 0; block < blocks; block += kDotPanels) {
      const auto& kernels = kDotKernels[std::min(kDotPanels, blocks - block) - 1];
      for (int64_t r = 0; r < rows; r += kDotSlice) {
        kernels[std::min(kDotSlice, rows - r) - 1](a + r * depth, packed + block * depth * 16,
                                                   depth, c + r * width + block * 16, width);
      }
    }
  }

  static void ThreadBegin() {}
  static void ThreadEnd() {}
};

}  // namespace

S2S_REGISTER_LSTM_SEQUENCE_OPS("S2sLstmSequence", "bfloat16", Amx);
S2S_REGISTER_LSTM_SEQUENCE_OPS("S2sLstmSequenceAvx512", "bfloat16", Avx512Bf16);

S2S_REGISTER_LSTM_GREEDY_OP("S2sLstmGreedyAmx", "bfloat16", Amx);
S2S_REGISTER_LSTM_BEAM_SEARCH_OP("S2sLstmBeamSearchAmx", "bfloat16", Amx);
S2S_REGISTER_LSTM_GREEDY_OP("S2sLstmGreedyAvx512", "bfloat16", Avx512Bf16);
S2S_REGISTER_LSTM_BEAM_SEARCH_OP("S2sLstmBeamSearchAvx512", "bfloat16", Avx512Bf16);
