// The whole-sequence LSTM training ops of `lstm_sequence.h` in float32, for CPUs with AVX2 and
// FMA: S2sLstmSequenceFloat and S2sLstmSequenceFloatGrad, and the decoding ops S2sLstmGreedy
// (`lstm_greedy.h`) and S2sLstmBeamSearch (`lstm_beam.h`), all on the engine of `lstm_fma.h`.
// `s2s_keras/layers/lstm_kernels.py` builds this library with `-mavx`, as the per-step one,
// and loads it where `S2sFmaUsable` holds. The gate arithmetic is the per-step kernels' (AVX:
// tf.sigmoid's and tf.tanh's roundings); only the matmul is AVX2 FMA code, in functions of
// their own.

#include "lstm_beam.h"
#include "lstm_fma.h"
#include "lstm_greedy.h"
#include "lstm_sequence.h"

S2S_REGISTER_LSTM_SEQUENCE_OPS("S2sLstmSequenceFloat", "float", Fma);

S2S_REGISTER_LSTM_GREEDY_OP("S2sLstmGreedy", "float", Fma);
S2S_REGISTER_LSTM_BEAM_SEARCH_OP("S2sLstmBeamSearch", "float", Fma);

S2S_REGISTER_USABLE_OP("S2sFmaUsable", FmaUsable);
