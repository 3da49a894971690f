"""Strings in, strings out: tokenization → encode → decoding loop → detokenization, in one graph.

One inference object per task — `Translator` (seq2seq), `LabelPredictor` (classify),
`TextGenerator` (lm) — is the single inference path: `s2s predict`, `s2s evaluate` and every
signature of the SavedModel call its methods, which call the model's own layers and tokenizers.
The two that decode share one core (`SequenceDecoder`): greedy, beam and sampling differ between
them only in how decoding starts (`_start`) and how ids become text (`_finish`).
"""

from __future__ import annotations

import tensorflow as tf

from s2s_keras.config import DecodeConfig
from s2s_keras.data import lm_shift, teacher_forcing_shift
from s2s_keras.decoding import beam_search, decode_loop, greedy_search, sample
from s2s_keras.decoding.greedy import argmax
from s2s_keras.models.language_model import BEGIN_ID
from s2s_keras.text import END_ID, PAD_ID, START_ID

STRINGS = tf.TensorSpec([None], tf.string)
INT = tf.TensorSpec([], tf.int32)
FLOAT = tf.TensorSpec([], tf.float32)


def with_padding_column(ids):
    """`ids (batch, T)` and one masked column more: an empty batch, or a batch of "" only, would
    otherwise have zero columns, which a recurrent layer cannot run over; a masked column changes
    nothing else."""
    return tf.pad(ids, [[0, 0], [0, 1]])


def at_least_one_column(ids):
    """`ids`, padded to one column when it has none (an empty batch of targets)."""
    return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])


def token_scores(logits, outputs, tokenizer) -> dict:
    """`{"tokens", "token_log_probs", "log_prob"}` of `outputs (batch, T)` ids under `logits`
    (padding positions hold "" and 0)."""
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    padding = outputs == PAD_ID
    token_log_probs = tf.where(padding, 0.0, tf.gather(log_probs, outputs, batch_dims=2))
    return {
        "tokens": tf.where(padding, "", tf.gather(tokenizer.id_to_token, outputs)),
        "token_log_probs": token_log_probs,
        "log_prob": tf.reduce_sum(token_log_probs, axis=1),
    }


class SequenceDecoder(tf.Module):
    """Greedy, beam and sampling decoding of a model with `step_function()`, as traced
    `tf.function`s: strings `(batch,)` in, strings out. A subclass says how decoding starts —
    `_start(strings) -> (state, start ids (batch,), context)` — and how ids become text —
    `_finish(ids (batch, T), context) -> (batch,)` strings, `_repeat(context, k)` for beams.

    `max_length` is clamped to `[1, decode.max_length_limit]`, `beam_size` to
    `[1, decode.max_beam_size]`, `num_results` to `[1, beam_size]`, `length_penalty` to >= 0;
    `temperature <= 0` is an InvalidArgument error.
    """

    def __init__(self, model, decode: DecodeConfig, name: str):
        super().__init__(name=name)
        self.model = model
        self.decode = decode

    @tf.function(input_signature=[STRINGS, INT])
    def greedy(self, strings, max_length):
        """`(batch,)` strings → `(batch,)` strings."""
        state, start_ids, context = self._start(strings)
        ids = greedy_search(
            self.model.step_function(), state, start_ids, END_ID, self._clamp(max_length)
        )
        return self._finish(ids, context)

    @tf.function(input_signature=[STRINGS, INT, INT, FLOAT, INT])
    def beam(self, strings, beam_size, max_length, length_penalty, num_results):
        """`(batch,)` strings → `(outputs (batch, k) strings, scores (batch, k) float32)`, best
        first (scores: summed log-probabilities, length-normalized as `beam_search`)."""
        state, start_ids, context = self._start(strings)
        beam_size = tf.clip_by_value(beam_size, 1, self.decode.max_beam_size)
        ids, scores = beam_search(
            self.model.step_function(),
            state,
            start_ids,
            END_ID,
            self._clamp(max_length),
            beam_size,
            alpha=length_penalty,
            num_results=num_results,
        )
        batch_size, k = tf.shape(ids)[0], tf.shape(ids)[1]
        flat = tf.reshape(ids, [batch_size * k, -1])
        outputs = tf.reshape(self._finish(flat, self._repeat(context, k)), [batch_size, k])
        return outputs, self._beam_scores(scores, context)

    @tf.function(input_signature=[STRINGS, FLOAT, INT, INT, INT])
    def sample(self, strings, temperature, top_k, seed, max_length):
        """`(batch,)` strings → `(batch,)` strings drawn at `temperature` from the `top_k` best."""
        state, start_ids, context = self._start(strings)
        ids = sample(
            self.model.step_function(),
            state,
            start_ids,
            END_ID,
            self._clamp(max_length),
            temperature=temperature,
            top_k=top_k,
            seed=seed,
        )
        return self._finish(ids, context)

    def _clamp(self, max_length):
        return tf.clip_by_value(max_length, 1, self.decode.max_length_limit)

    def _beam_scores(self, scores, context):
        return scores

    def _start(self, strings):
        raise NotImplementedError

    def _finish(self, ids, context):
        raise NotImplementedError

    def _repeat(self, context, k):
        return tf.repeat(context, k, axis=0)


class Translator(SequenceDecoder):
    """Decoding strategies around a `Seq2Seq` (or a seq2seq `Ensemble`).

    Contract (the export's too): sources are normalized like the training data and cut to
    `decode.max_input_length` tokens; characters never seen in training map to the unknown id;
    the limits of `SequenceDecoder`. An empty (or blank) source gives "" (score 0); an empty
    batch gives an empty batch.

    Example:
        >>> translator = Translator(model, DecodeConfig())                       # doctest: +SKIP
        >>> translator.greedy(tf.constant(["hello"]), 40)                         # doctest: +SKIP
        <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'HH AH L OW'], dtype=object)>
    """

    def __init__(self, model, decode: DecodeConfig):
        super().__init__(model, decode, name="translator")

    @tf.function(input_signature=[STRINGS, STRINGS])
    def score(self, sources, targets):
        """Forced decoding: `log P(target | source) = Σ_t log p(y_t | X, y_<t)` over the target's
        tokens and the end token (targets cut to `decode.max_length_limit` tokens).

        Returns a dict: `tokens (batch, T)` strings, `token_log_probs (batch, T)`, `log_prob
        (batch,)`; padding positions hold "" and 0. Attention models add `source_tokens (batch,
        S)` and `alignment (batch, T, S)`: the attention weights of each output token (the end
        token's row last) over the source tokens — for a decoder's own output, exactly the
        alignment of that decoding."""
        sources = tf.convert_to_tensor(sources)
        targets = tf.convert_to_tensor(targets)
        tf.debugging.assert_equal(
            tf.shape(sources),
            tf.shape(targets),
            message="score: sources and targets must have the same length",
        )
        source_ids = self._source_ids(sources)
        tokenizer = self.model.target_tokenizer
        target_ids = tokenizer.tokenize_ragged(targets)[:, : self.decode.max_length_limit]
        target_in, target_out = teacher_forcing_shift(target_ids)
        target_in = at_least_one_column(target_in.to_tensor(PAD_ID))
        target_out = at_least_one_column(target_out.to_tensor(PAD_ID))
        logits, weights = self.model.teacher_forced(source_ids, target_in)
        result = token_scores(logits, target_out, tokenizer)
        if weights is not None:
            result["alignment"] = tf.where((target_out == PAD_ID)[:, :, None], 0.0, weights)
            source_tokens = tf.gather(self.model.source_tokenizer.id_to_token, source_ids)
            result["source_tokens"] = tf.where(source_ids == PAD_ID, "", source_tokens)
        return result

    def translate(self, strings, beam_size: int = 1):
        """Best output per source: greedy for `beam_size` 1, else beam search (config defaults)."""
        strings = tf.convert_to_tensor(strings, tf.string)
        if beam_size <= 1:
            return self.greedy(strings, self.decode.max_length)
        decode = self.decode
        outputs, _ = self.beam(strings, beam_size, decode.max_length, decode.length_penalty, 1)
        return outputs[:, 0]

    def greedy_ids(self, source_ids):
        """`(batch, S)` int32 source ids, 0-padded (what `s2s_runtime.encode` makes) → `(batch,
        T)` int32 ids of greedy decoding up to `decode.max_length`: each row up to and including
        its end id, then 0; an all-padding (empty) source gives a row of 0. The same search as
        `greedy`, with every row kept in the loop to the end so that shapes stay fixed — for the
        exports that run without TensorFlow (`portable.py`)."""
        source_ids = tf.convert_to_tensor(source_ids, tf.int32)
        start_ids = tf.fill([tf.shape(source_ids)[0]], START_ID)
        empty = tf.reduce_all(tf.equal(source_ids, PAD_ID), axis=1)
        ids = decode_loop(
            self.model.step_function(),
            self.model.encode(source_ids),
            start_ids,
            END_ID,
            self.decode.max_length,
            argmax,
        )
        return tf.where(empty[:, None], tf.zeros_like(ids), ids)

    def empty(self, strings):
        """`(batch,)` bool: which sources have no tokens (they decode to "")."""
        return tf.reduce_all(tf.equal(self._source_ids(strings), PAD_ID), axis=1)

    def _source_ids(self, strings):
        tokenizer = self.model.source_tokenizer
        return with_padding_column(
            tokenizer.tokenize(strings, max_length=self.decode.max_input_length)
        )

    def _start(self, strings):
        """The context is which sources are empty (they decode to "")."""
        source_ids = self._source_ids(strings)
        start_ids = tf.fill([tf.shape(source_ids)[0]], START_ID)
        empty = tf.reduce_all(tf.equal(source_ids, PAD_ID), axis=1)
        return self.model.encode(source_ids), start_ids, empty

    def _finish(self, ids, empty):
        return tf.where(empty, "", self.model.target_tokenizer.detokenize(ids))

    def _beam_scores(self, scores, empty):
        return tf.where(empty[:, None], 0.0, scores)


class Reranker:
    """n-best reranking (Liu et al. 2016 rerank a left-to-right NMT model's beam with a
    right-to-left one): `translator`'s beam of width `beam_size` gives `beam_size` candidates;
    forced decoding (`Translator.score`) gives each its `log P(Y|X)` under `translator`'s model
    and under `scorer`'s, and the candidate with the highest
    `(1 - weight) · log P_translator + weight · log P_scorer` wins (summed log-probabilities, also
    when the beam ranks with a length penalty). `scorer` is a `Translator` over a model that reads
    the same text — one trained right to left (`model.reverse_target`) sees each candidate from
    its other end; either side may be an ensemble. `weight` 0 keeps the beam's order (without a
    length penalty); a beam of width 1 has nothing to rerank.

    It has what `evaluate_pairs` reads of a `Translator`: `translate` and `model`; `ranked` is
    the n-best in the reranked order (the `rerank` signature of a SavedModel exported with a
    rescorer).
    """

    def __init__(self, translator: Translator, scorer: Translator, weight: float):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"Reranker weight: expected a number in [0, 1], got {weight!r}")
        self.translator, self.scorer, self.weight = translator, scorer, weight
        self.model = translator.model

    def translate(self, strings, beam_size: int = 1):
        """Best output per source (`(batch,)` strings) after reranking the beam's `beam_size`."""
        strings = tf.convert_to_tensor(strings, tf.string)
        if beam_size <= 1:
            return self.translator.translate(strings, 1)
        return self.ranked(strings, beam_size, 1)[0][:, 0]

    def ranked(self, strings, beam_size, num_results):
        """`(outputs (batch, n) strings, scores (batch, n))`: the beam's `beam_size` candidates
        best first by the reranking score (`combine`), `n = min(num_results, beam_size)`; an
        empty source gives "" with score 0, as the beam does."""
        candidates, forward, other = self.nbest(strings, beam_size)
        empty = self.translator.empty(strings)[:, None]
        combined = tf.where(empty, 0.0, self.combine(forward, other))
        n = tf.minimum(tf.maximum(num_results, 1), tf.shape(candidates)[1])
        scores, order = tf.math.top_k(combined, n)
        return tf.gather(candidates, order, batch_dims=1), scores

    def nbest(self, strings, beam_size: int) -> tuple:
        """`(candidates (batch, k) strings, their log P under the translator's model (batch, k),
        under the scorer's (batch, k))`, `k = beam_size`."""
        decode = self.translator.decode
        candidates, _ = self.translator.beam(
            strings, beam_size, decode.max_length, decode.length_penalty, beam_size
        )
        k = tf.shape(candidates)[1]
        sources, targets = tf.repeat(strings, k), tf.reshape(candidates, [-1])
        forward, other = (
            tf.reshape(translator.score(sources, targets)["log_prob"], [-1, k])
            for translator in (self.translator, self.scorer)
        )
        return candidates, forward, other

    def combine(self, forward, other):
        """The reranking score: `(1 - weight) · forward + weight · other`."""
        return (1.0 - self.weight) * forward + self.weight * other


class TextGenerator(SequenceDecoder):
    """A `LanguageModel`'s prompt → continuation decoding and scoring.

    A prompt is read as `</s>` + its tokens (its last `decode.max_input_length` tokens); the
    decoders (the same greedy / beam / sampling loops as seq2seq) continue it until `</s>` (the
    end of the sentence) or `max_length` tokens (the limits of `SequenceDecoder`). Outputs are
    the prompt followed by the continuation, detokenized. An empty prompt starts a sentence from
    scratch.
    """

    def __init__(self, model, decode: DecodeConfig):
        super().__init__(model, decode, name="text_generator")

    @tf.function(input_signature=[STRINGS])
    def score(self, texts):
        """`log P(text) = Σ_t log p(y_t | y_<t)` over the text's tokens and the end token, each
        text a sentence started from a zero state (texts cut to `decode.max_length_limit` tokens).
        Returns `tokens (batch, T)`, `token_log_probs (batch, T)`, `log_prob (batch,)`,
        `num_tokens (batch,)` and `perplexity (batch,) = exp(-log_prob / num_tokens)`."""
        tokenizer = self.model.target_tokenizer
        inputs, outputs = lm_shift(
            tokenizer.tokenize_ragged(texts)[:, : self.decode.max_length_limit]
        )
        inputs = at_least_one_column(inputs.to_tensor(PAD_ID))
        outputs = at_least_one_column(outputs.to_tensor(PAD_ID))
        logits, _ = self.model.forward(inputs, training=False)
        result = token_scores(logits, outputs, tokenizer)
        num_tokens = tf.reduce_sum(tf.cast(outputs != PAD_ID, tf.int32), axis=1)
        mean = -result["log_prob"] / tf.cast(tf.maximum(num_tokens, 1), tf.float32)
        return {**result, "num_tokens": num_tokens, "perplexity": tf.exp(mean)}

    def _start(self, prompts):
        """The context is the prompt's ids (`</s>` first): outputs begin with the prompt."""
        ids = self.model.target_tokenizer.tokenize_ragged(prompts)
        ids = ids[:, -self.decode.max_input_length :]
        begin = tf.RaggedTensor.from_tensor(tf.fill([ids.nrows(), 1], BEGIN_ID))
        prompt_ids = with_padding_column(tf.concat([begin, ids], axis=1).to_tensor(PAD_ID))
        state, start_ids = self.model.start(prompt_ids)
        return state, start_ids, prompt_ids

    def _finish(self, ids, prompt_ids):
        # Column 0 is the begin token (= </s>, where detokenize would stop): drop it; padding
        # between the prompt and the continuation is skipped by detokenize.
        return self.model.target_tokenizer.detokenize(tf.concat([prompt_ids[:, 1:], ids], axis=1))


class LabelPredictor(tf.Module):
    """Strings → labels for a `Classifier`, as one traced `tf.function`.

    Inputs are normalized like the training data and keep their LAST `max_tokens` tokens (the
    training cut, see `ClassifyTask.inference`). An empty input or batch is fine (an empty input
    pools to zeros: the label prior the bias learned).

    Example:
        >>> predictor = LabelPredictor(model, 400)                             # doctest: +SKIP
        >>> predictor.classify(tf.constant(["a fine film"]))["labels"]         # doctest: +SKIP
        <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'pos'], dtype=object)>
    """

    def __init__(self, model, max_tokens: int):
        super().__init__(name="label_predictor")
        self.model = model
        self.max_tokens = max_tokens
        self.labels = tf.constant(model.labels)

    @tf.function(input_signature=[STRINGS])
    def classify(self, strings):
        """`{"labels" (batch,) string, "probabilities" (batch, L) float32, "classes" (batch, L)
        string}`: the most probable label, and every label's probability in `classes` order."""
        ids = self.model.source_tokenizer.tokenize_ragged(strings)[:, -self.max_tokens :]
        logits = self.model(
            {"source_ids": with_padding_column(ids.to_tensor(PAD_ID))}, training=False
        )
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
        batch_size = tf.shape(strings)[0]
        return {
            "labels": tf.gather(self.labels, tf.argmax(probabilities, axis=-1)),
            "probabilities": probabilities,
            "classes": tf.tile(self.labels[None, :], [batch_size, 1]),
        }
