"""The encoder-decoder family of Sutskever et al. (2014) and its successors: stacked LSTM / GRU /
tanh-RNN layers, an optionally bidirectional encoder whose last state starts the decoder (through
a bridge), optional global attention (with input feeding, or over the decoder's outputs), a
softmax over the target vocabulary."""

from __future__ import annotations

import typing

import keras

from s2s_keras.config import ATTENTIONS, BRIDGES, CELLS, PRECISIONS, encoder_size
from s2s_keras.keras_workarounds import DistributedBuildFix
from s2s_keras.layers import (
    Attention,
    AttentionDecoder,
    cell_steppers,
    recurrent_layer,
    state_count,
    step_cells,
    token_inputs,
)
from s2s_keras.layers.bridge import make_bridge
from s2s_keras.layers.lstm import beam_search_op, greedy_search_op
from s2s_keras.models.recurrent_encoder import RecurrentEncoderMixin, uniform_initializers
from s2s_keras.models.target_side import TargetSideMixin
from s2s_keras.text import PAD_ID


@keras.saving.register_keras_serializable(package="s2s_keras")
class Seq2Seq(RecurrentEncoderMixin, TargetSideMixin, DistributedBuildFix, keras.Model):
    """Recurrent encoder-decoder trained with teacher forcing: `P(Y|X) = Π_t p(y_t | X, y_<t)`.

    Encoder: source ids → (optionally reversed) → embedding (mask_zero) → `encoder_num_layers`
    (default: `num_layers`) stacked recurrent layers (`cell`; bidirectional optionally; dropout
    between layers; a learned initial state optionally; built by `RecurrentEncoderMixin`, shared
    with `Classifier`). Bridge: layer l's final state (forward and backward concatenated) → the
    start state of decoder layer l (`copy`, `dense` or `zero`; with unequal depths `dense` maps
    the states of all encoder layers to each decoder layer). Decoder: target_in ids →
    embedding → stacked recurrent layers → logits; with `attention`, an `AttentionDecoder`
    (input feeding, padding masked) sits between the cells and the projection, or, with
    `input_feeding=False`, an `Attention` over the top layer's outputs: `h̃_t = tanh(W_c [c_t;
    h_t])` from the decoder's `h_t` alone (Luong et al. 2015 without their input feeding), so
    teacher forcing runs the decoder's sequence layers whole (the LSTM's fused training loop)
    and attends to every step in one batched pass. The tokenizers built from
    `source_vocabulary` / `target_vocabulary` travel with the model.

    Cells (Keras's gate order in each kernel): `lstm` i, f, c̃, o —
    `i,f,o = σ(W_x x_t + W_h h_{t-1} + b)`, `c̃ = tanh(W_x x_t + W_h h_{t-1} + b)`,
    `c_t = f⊙c_{t-1} + i⊙c̃`, `h_t = o⊙tanh(c_t)`; `gru` z, r, h̃ (reset after the recurrent
    matmul); `rnn` `h_t = tanh(W_hx x_t + W_hh h_{t-1} + b)`.

    Args:
        source_vocabulary, target_vocabulary: token lists (without reserved tokens).
        source_split, target_split: `"characters"` or `"whitespace"` (see `Tokenizer`).
        source_lowercase, target_lowercase: Unicode case folding of each side.
        cell: `lstm`, `gru` or `rnn`. learn_initial_state: learned encoder h0 (and c0).
        embedding_size, hidden_units, num_layers, dropout, recurrent_dropout: network shape;
            `num_layers` is the decoder's depth and the encoder's unless `encoder_num_layers`;
            `hidden_units` is the decoder's width and the encoder's unless `encoder_units`
            (per direction).
        bidirectional, bridge: see `ModelConfig` (with `bridge="copy"` each direction gets
            `hidden_units / 2` units).
        attention: `none`, `luong_dot`, `luong_general` or `bahdanau`.
        input_feeding: with attention, feed `h̃_{t-1}` into step t (`AttentionDecoder`); False
            attends over the decoder's outputs instead.
        reverse_source: feed the source tokens in reverse order (padding stays on the right;
            attention still sees positions in source order).
        reverse_target: emit the target right to left (`Tokenizer(reverse=True)`); text in and
            out stays in reading order. A right-to-left model reranks a left-to-right model's
            n-best (`inference.Reranker`).
        tie_embeddings: the decoder embedding matrix is the output projection (transposed).
        init_scale: > 0 initializes every weight uniformly in `[-init_scale, init_scale]`.
        precision: `"float32"` or `"mixed_bfloat16"` (bf16 compute, float32 weights); the
            output projection, softmax and loss always run in float32.

    Inputs: `{"source_ids": (batch, S), "target_in_ids": (batch, T)}` int32, 0 = padding.
    Output: float32 logits `(batch, T, target_vocabulary_size)`.
    Inference (used by `s2s_keras.decoding`): `encode(source_ids) -> state`,
    `decode_step(token_ids (batch,), state) -> (logits (batch, V), state)`, and for attention
    models `alignment(source_ids, target_in_ids) -> (batch, T, S)` weights (`teacher_forced` gives
    logits and weights in one pass); the same layer objects.

    Example:
        >>> model = Seq2Seq(list("abc"), list("xyz"), embedding_size=8, hidden_units=8)
        >>> logits = model({"source_ids": tf.constant([[4, 5, 0]]),
        ...                 "target_in_ids": tf.constant([[2, 6]])})
        >>> tuple(logits.shape)
        (1, 2, 7)
    """

    def __init__(
        self,
        source_vocabulary: typing.Sequence[str],
        target_vocabulary: typing.Sequence[str],
        source_split: str = "characters",
        target_split: str = "whitespace",
        source_lowercase: bool = True,
        target_lowercase: bool = False,
        cell: str = "lstm",
        learn_initial_state: bool = False,
        embedding_size: int = 128,
        hidden_units: int = 256,
        num_layers: int = 2,
        encoder_num_layers: int = 0,
        encoder_units: int = 0,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        bidirectional: bool = False,
        bridge: str = "copy",
        attention: str = "none",
        input_feeding: bool = True,
        reverse_source: bool = False,
        reverse_target: bool = False,
        tie_embeddings: bool = False,
        init_scale: float = 0.0,
        precision: str = "float32",
        **kwargs,
    ):
        for name, value, known in (
            ("precision", precision, PRECISIONS),
            ("cell", cell, CELLS),
            ("bridge", bridge, BRIDGES),
            ("attention", attention, ATTENTIONS),
        ):
            if value not in known:
                raise ValueError(f"Seq2Seq {name}: expected one of {known}, got {value!r}")
        if bidirectional and bridge == "copy" and hidden_units % 2:
            raise ValueError(
                f"Seq2Seq: bidirectional with bridge='copy' needs an even hidden_units, "
                f"got {hidden_units}"
            )
        directions = 2 if bidirectional else 1
        if encoder_units and bridge == "copy" and encoder_units * directions != hidden_units:
            raise ValueError(
                f"Seq2Seq: encoder_units={encoder_units} × {directions} direction(s) != "
                f"hidden_units={hidden_units}; bridge='copy' needs equal state sizes (use 'dense')"
            )
        encoder_depth = encoder_num_layers or num_layers
        if encoder_depth != num_layers and bridge == "copy":
            raise ValueError(
                f"Seq2Seq: encoder_num_layers={encoder_depth} and num_layers={num_layers} differ; "
                f"bridge='copy' needs equal depths (use 'dense' or 'zero')"
            )
        if tie_embeddings and embedding_size != hidden_units:
            raise ValueError(
                f"Seq2Seq tie_embeddings: needs embedding_size == hidden_units, "
                f"got {embedding_size} and {hidden_units}"
            )
        # === Layers ===
        inits = uniform_initializers(init_scale)
        init, kernels, recurrent = inits["initializer"], inits["kernels"], inits["recurrent"]
        encoder_width = encoder_size(hidden_units, bidirectional, bridge, encoder_units)
        states_per_layer = state_count(cell)
        self._build_source_embedding(
            source_vocabulary,
            source_split,
            source_lowercase,
            embedding_size,
            reverse_source,
            init_scale,
            precision,
        )
        self._build_target_embedding(
            target_vocabulary,
            target_split,
            target_lowercase,
            embedding_size,
            tie_embeddings,
            init_scale,
            precision,
            reverse=reverse_target,
        )
        self._build_encoder_layers(
            cell,
            encoder_width,
            encoder_depth,
            bidirectional,
            learn_initial_state,
            recurrent_dropout,
            init_scale,
            precision,
        )
        self.encoder_bridge = make_bridge(
            bridge, hidden_units, num_layers, states_per_layer, dtype=precision, **kernels
        )
        # Held by the model too, here: the order in which a model takes its layers is the
        # order of its variables, which `.keras` files rely on for the optimizer's slots.
        self.bridge_layers = self.encoder_bridge.layers
        self.between_layers = keras.layers.Dropout(dropout, name="between_layers_dropout")
        self.attention_decoder = self.output_attention = None
        if attention == "none" or not input_feeding:
            self.decoder_layers = [
                recurrent_layer(
                    cell,
                    hidden_units,
                    recurrent_dropout=recurrent_dropout,
                    dtype=precision,
                    name=f"decoder_{cell}_{index}",
                    **recurrent,
                )
                for index in range(num_layers)
            ]
        else:
            self.decoder_layers = []
            self.attention_decoder = AttentionDecoder(
                cell,
                hidden_units,
                num_layers,
                embedding_size,
                encoder_width * directions,
                attention,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
                kernel_initializer=init,
                dtype=precision,
                name="attention_decoder",
            )
            self.attention_decoder.build()
        if attention != "none" and not input_feeding:
            self.output_attention = Attention(
                hidden_units,
                encoder_width * directions,
                attention,
                kernel_initializer=init or "glorot_uniform",
                dtype=precision,
                name="output_attention",
            )
            self.output_attention.build()
        if attention != "none":
            self.attentional_dropout = keras.layers.Dropout(dropout, name="attentional_dropout")
        self._build_output_projection(tie_embeddings, init_scale)

        # === Functional graph ===
        source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
        target_in_ids = keras.Input(shape=(None,), dtype="int32", name="target_in_ids")
        logits = self._decode_sequence(target_in_ids, self._encode(source_ids))
        super().__init__(
            inputs={"source_ids": source_ids, "target_in_ids": target_in_ids},
            outputs=logits,
            **kwargs,
        )

        # === Config ===
        self.source_vocabulary = list(source_vocabulary)
        self.target_vocabulary = list(target_vocabulary)
        self.source_split = source_split
        self.target_split = target_split
        self.source_lowercase = source_lowercase
        self.target_lowercase = target_lowercase
        self.cell = cell
        self.learn_initial_state = learn_initial_state
        self.embedding_size = embedding_size
        self.hidden_units = hidden_units
        self.num_layers = num_layers
        self.encoder_num_layers = encoder_num_layers
        self.encoder_units = encoder_units
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.bidirectional = bidirectional
        self.bridge = bridge
        self.attention = attention
        self.input_feeding = input_feeding
        self.reverse_source = reverse_source
        self.reverse_target = reverse_target
        self.tie_embeddings = tie_embeddings
        self.init_scale = init_scale
        self.precision = precision

    def encode(self, source_ids, training=False):
        """`(batch, S)` ids → decoder start state: a list of per-layer state lists (`[h, c]` for an
        LSTM, `[h]` otherwise), each `(batch, units)`; with attention a dict that also holds the
        encoder memory (see `AttentionDecoder.start_state`)."""
        layer_states, memory, memory_mask = self._encode(source_ids, training=training)
        if self.attention_decoder is not None:
            return self.attention_decoder.start_state(layer_states, memory, memory_mask)
        if self.output_attention is not None:
            return self.output_attention.decoding_state(layer_states, memory, memory_mask)
        return layer_states

    def decode_step(self, token_ids, state):
        """One decoder step for `(batch,)` token ids; returns `(logits (batch, V), new state)`.
        In a decoding loop use `step_function()`, made once outside the loop."""
        return self.step_function()(token_ids, state)

    def step_function(self):
        """`decode_step` with the decoder layers' weights read (and cast) once, here: make it
        outside a decoding loop, pass it to the decoders."""
        if self.attention_decoder is None:
            steppers = cell_steppers(
                self.decoder_layers, self.target_embedding
            )  # the first takes token ids
            if self.output_attention is not None:

                def step(token_ids, state):
                    x, layers = step_cells(steppers, token_ids, state["layers"])
                    attentional, _ = self.output_attention(
                        x, state["keys"], state["memory"], state["memory_mask"]
                    )
                    return self._project(attentional), {**state, "layers": layers}

                return step

            def step(token_ids, state):
                x, new_state = step_cells(steppers, token_ids, state)
                return self._project(x), new_state

            # within `lstm.fused_inference`, greedy and beam search's whole loops as one op each,
            # where they run
            decoder = (self.decoder_layers, self.target_embedding, self._projection_weights)
            step.greedy_search = greedy_search_op(*decoder)
            step.beam_search = beam_search_op(*decoder)
            return step

        def step(token_ids, state):
            # The embedding layer's own table, looked up without attaching a padding mask (a
            # cell does not take masks; a step never sees padding that matters).
            x = keras.ops.take(self.target_embedding.embeddings, token_ids, axis=0)
            x = keras.ops.cast(x, self.target_embedding.compute_dtype)
            attentional, _, state = self.attention_decoder.step(x, state)
            return self._project(attentional), state

        return step

    def teacher_forced(self, source_ids, target_in_ids):
        """Inference-mode teacher forcing in one pass: `(logits (batch, T, V) float32, attention
        weights (batch, T, S) float32 or None)`. The weights are over source positions in source
        order (also with `reverse_source`); a decoder's output fed back as `target_in_ids` gives
        exactly the alignment of that decoding: step t depends only on the source and `y_<t`."""
        return self._decode_sequence(target_in_ids, self._encode(source_ids), with_alignment=True)

    def alignment(self, source_ids, target_in_ids):
        """Attention weights `(batch, T, S)` of teacher-forced decoding (see `teacher_forced`)."""
        if self.attention == "none":
            raise ValueError("alignment: this model has no attention (model.attention=none)")
        return self.teacher_forced(source_ids, target_in_ids)[1]

    def _encode(self, source_ids, training=None):
        """`(per-layer bridged states, memory (batch, S, features) in source order, memory
        mask)`."""
        states, memory, source_mask = self._run_encoder(source_ids, training=training)
        return self.encoder_bridge(states), memory, source_mask

    def _decode_sequence(self, target_in_ids, encoded, training=None, with_alignment=False):
        """Logits; with `with_alignment`, `(logits, attention weights or None)`."""
        states, memory, memory_mask = encoded
        x = self.target_embedding(target_in_ids)
        if self.attention_decoder is not None:
            x, weights = self.attention_decoder(x, memory, memory_mask, states, training=training)
            logits = self._project(self.attentional_dropout(x, training=training))
            return (logits, weights) if with_alignment else logits
        mask = keras.ops.not_equal(target_in_ids, PAD_ID)
        for index, (layer, layer_state) in enumerate(zip(self.decoder_layers, states)):
            if index:
                x = self.between_layers(x, training=training)
            reads = {} if index else token_inputs(layer, self.target_embedding, target_in_ids)
            x, *_ = layer(x, mask=mask, initial_state=layer_state, training=training, **reads)
        weights = None
        if self.output_attention is not None:
            x, weights = self.output_attention(x, None, memory, memory_mask)
            x = self.attentional_dropout(x, training=training)
        logits = self._project(x)
        return (logits, weights) if with_alignment else logits

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "source_vocabulary": self.source_vocabulary,
            "target_vocabulary": self.target_vocabulary,
            "source_split": self.source_split,
            "target_split": self.target_split,
            "source_lowercase": self.source_lowercase,
            "target_lowercase": self.target_lowercase,
            "cell": self.cell,
            "learn_initial_state": self.learn_initial_state,
            "embedding_size": self.embedding_size,
            "hidden_units": self.hidden_units,
            "num_layers": self.num_layers,
            "encoder_num_layers": self.encoder_num_layers,
            "encoder_units": self.encoder_units,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "bidirectional": self.bidirectional,
            "bridge": self.bridge,
            "attention": self.attention,
            "input_feeding": self.input_feeding,
            "reverse_source": self.reverse_source,
            "reverse_target": self.reverse_target,
            "tie_embeddings": self.tie_embeddings,
            "init_scale": self.init_scale,
            "precision": self.precision,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
