// The whole-sequence LSTM training ops of `lstm_sequence.h` for CPUs with AMX tiles,
// S2sLstmSequence and S2sLstmSequenceGrad (bf16; `s2s_keras/layers/lstm_kernels.py` builds this
// library with AVX-512 and AMX code generation and loads it only where `S2sAmxUsable` holds).
// Each block of 32 rows runs its whole loop on one thread; its recurrent matmul runs on the AMX
// tile unit (TDPBF16PS: bf16 products summed in float32), with W_h packed once per call into
// the tiles' pair-interleaved layout.

#include <immintrin.h>

#include <cstdint>
#include <string>
#include <vector>

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

using bf16 = Eigen::bfloat16;

struct Amx {
  using T = bf16;

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

  static void MatMul(const bf16* a, int64_t, const bf16* packed, int64_t depth, int64_t width,
                     float* c) {
    MatMulBlock(a, packed, depth, width, c);
  }

  static void ThreadBegin() { ConfigureTiles(); }
  static void ThreadEnd() { ReleaseTiles(); }
};

}  // namespace

S2S_REGISTER_LSTM_SEQUENCE_OPS("S2sLstmSequence", "bfloat16", Amx);
