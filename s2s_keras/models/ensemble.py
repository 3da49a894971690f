"""Several trained models of one task decoding, classifying or scoring text as one: their
probabilities averaged.

Sutskever et al. (2014) reported their best translations from an ensemble of 5 deep LSTMs
(BLEU 34.8 with beam 12, against 30.6 for a single one: different random initializations and
minibatch orders make different errors). An `Ensemble` stands in for a `Seq2Seq`, a
`Classifier` or a `LanguageModel` wherever inference takes one (`Translator`, `LabelPredictor`,
`TextGenerator`, `s2s evaluate`'s perplexity, the export), so the decoders and signatures are
the same code:

    p(y_t | X, y_<t) = 1/n Σ_i p_i(y_t | X, y_<t)

at every decoding step (greedy, beam, sampling and `score` all see these probabilities; each
member keeps its own decoder state), and a classifier's label probabilities are the members'
mean. The "logits" it hands on are `log` of that mean, so a softmax over them gives the mean back.
Zaremba et al. (2014) averaged language models the same way (PTB test perplexity: one medium
LSTM 82.7, two 77.0, ten 72.0; 68.7 for 38 large ones); a language-model ensemble's carried state
(truncated-BPTT evaluation) is each member's own.

Members must read and write the same tokens: the same task and, compared in full, the same
source and target tokenizers (vocabulary, split, lower-casing, direction: left-to-right and
right-to-left models do not average step by step; a language model has only the target one) —
a classifier's labels and input cut (`max_source_tokens`) too. Architectures may differ (depth,
attention, bidirectional, reversed source, cell, weight tying).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from s2s_keras.models.classifier import Classifier
from s2s_keras.models.language_model import LanguageModel
from s2s_keras.models.seq2seq import Seq2Seq

# The model kinds an ensemble may be made of, and the tokenizers their members must share.
_SIDES = {
    Seq2Seq: ("source_tokenizer", "target_tokenizer"),
    Classifier: ("source_tokenizer",),
    LanguageModel: ("target_tokenizer",),
}


class Ensemble:
    """Trained `Seq2Seq`s (or `Classifier`s, or `LanguageModel`s) as one model for inference.

    Args:
        members: at least 2 models of one kind sharing their tokenizers (module docstring).
        names: one per member (e.g. run dirs), used only to say which member an error is about.

    It has what inference reads of a model: `source_tokenizer`, `target_tokenizer` (seq2seq) or
    `labels` and `max_source_tokens` (classify), `variables`, `encode(source_ids (batch, S))` →
    a tuple of the members' start states, `step_function()`, `teacher_forced(...)` → log mean
    probabilities `(batch, T, V)`, and `ensemble({"source_ids": ids})` → a classifier's log mean
    label probabilities `(batch, labels)`; for language models `start`, `forward`,
    `carry_state` and `ensemble({"input_ids": ids})` (log mean next-token probabilities).

    Example:
        >>> ensemble = Ensemble([keras.saving.load_model(f"runs/g2p-seed-{i}/model.keras")
        ...                      for i in (1, 2, 3)])                          # doctest: +SKIP
        >>> translator = Translator(ensemble, DecodeConfig())                 # doctest: +SKIP
        >>> translator.greedy(tf.constant(["hello"]), 40)                     # doctest: +SKIP
        <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'HH AH L OW'], dtype=object)>
    """

    def __init__(self, members: list, names: list | None = None):
        names = list(names) if names is not None else [f"member {i}" for i in range(len(members))]
        if len(members) < 2:
            raise ValueError(f"Ensemble: needs at least 2 models, got {len(members)}")
        if len(names) != len(members):
            raise ValueError(f"Ensemble: {len(members)} models but {len(names)} names")
        kinds = {type(m) for m in members}
        if len(kinds) != 1 or next(iter(kinds)) not in _SIDES:
            found = ", ".join(f"{n}: {type(m).__name__}" for n, m in zip(names, members))
            raise ValueError(
                f"Ensemble: models must all be Seq2Seq, all Classifier or all LanguageModel; "
                f"got {found}"
            )
        self.members = list(members)
        first = members[0]
        is_classifier = isinstance(first, Classifier)
        sides = _SIDES[type(first)]
        differences = []
        for name, member in zip(names[1:], members[1:]):
            for side in sides:
                if _tokenizer_config(getattr(member, side)) != _tokenizer_config(
                    getattr(first, side)
                ):
                    differences.append(
                        f"{name}: {side} (vocabulary, split, lower-casing or direction) "
                        f"differs from {names[0]}'s"
                    )
            if is_classifier:
                if member.labels != first.labels:
                    differences.append(
                        f"{name}: labels {member.labels} != {names[0]}'s {first.labels}"
                    )
                if member.max_source_tokens != first.max_source_tokens:
                    differences.append(
                        f"{name}: max_source_tokens {member.max_source_tokens} != "
                        f"{names[0]}'s {first.max_source_tokens}"
                    )
        if differences:
            raise ValueError(
                "Ensemble: the models must read and write the same tokens:\n  "
                + "\n  ".join(differences)
            )
        # Tokenization is the first member's (the same as every member's, checked above).
        for side in sides:
            setattr(self, side, getattr(first, side))
        if is_classifier:
            self.labels = first.labels
            self.max_source_tokens = first.max_source_tokens

    @property
    def variables(self) -> list:
        return [variable for member in self.members for variable in member.variables]

    # --- Classifier and LanguageModel interface -------------------------------------------------

    def __call__(self, inputs, training=False):
        """`log` of the members' mean label probabilities `(batch, labels)` (classifier) or
        next-token probabilities `(batch, T, V)` (language model; each member continues its own
        carried state when `carry_state` is on)."""
        return _log_mean_probabilities([m(inputs, training=training) for m in self.members])

    # --- Seq2Seq interface ----------------------------------------------------------------------

    def encode(self, source_ids, training=False):
        """A tuple: each member's decoder start state."""
        return tuple(member.encode(source_ids, training=training) for member in self.members)

    def step_function(self):
        steps = [member.step_function() for member in self.members]

        def step(token_ids, state):
            outputs = [step_i(token_ids, state_i) for step_i, state_i in zip(steps, state)]
            return _log_mean_probabilities([logits for logits, _ in outputs]), tuple(
                s for _, s in outputs
            )

        return step

    def teacher_forced(self, source_ids, target_in_ids):
        """`(log mean probabilities (batch, T, V), None)`: an ensemble has no single alignment."""
        logits = [member.teacher_forced(source_ids, target_in_ids)[0] for member in self.members]
        return _log_mean_probabilities(logits), None

    # --- LanguageModel interface ----------------------------------------------------------------

    def forward(self, input_ids, initial_state=None, training=None):
        """`(log mean probabilities (batch, T, V), a tuple of each member's final states)`;
        `initial_state` is such a tuple (None: every member from zeros)."""
        states = (None,) * len(self.members) if initial_state is None else initial_state
        outputs = [
            member.forward(input_ids, initial_state=state, training=training)
            for member, state in zip(self.members, states, strict=True)
        ]
        return _log_mean_probabilities([logits for logits, _ in outputs]), tuple(
            s for _, s in outputs
        )

    def start(self, prompt_ids):
        """`(a tuple of each member's state after the prompt, the prompt's last token (batch,))`."""
        starts = [member.start(prompt_ids) for member in self.members]
        return tuple(state for state, _ in starts), starts[0][1]

    def carry_state(self, batch_size: int | None) -> None:
        """Truncated-BPTT state carrying on (or off) in every member, each with its own state."""
        for member in self.members:
            member.carry_state(batch_size)


def _log_mean_probabilities(logits: list) -> tf.Tensor:
    """`log(1/n Σ_i softmax(logits_i))`, in float32, without leaving log space."""
    log_probs = tf.stack([tf.nn.log_softmax(tf.cast(x, tf.float32), axis=-1) for x in logits])
    return tf.reduce_logsumexp(log_probs, axis=0) - math.log(len(logits))


def _tokenizer_config(tokenizer: keras.layers.Layer) -> dict:
    config = tokenizer.get_config()
    return {key: config[key] for key in ("vocabulary", "split", "lowercase", "reverse")}
