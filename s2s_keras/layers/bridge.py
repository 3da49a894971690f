"""Bridges: the encoder's final states → the decoder's start states (OpenNMT-tf's `CopyBridge`,
`DenseBridge`, `ZeroBridge`).

States are per layer lists `[h(, c)]`; a bidirectional layer's are forward and backward
concatenated. A bridge is a small callable, not a Keras layer: `DenseBridge`'s `Dense` layers
are the model's own graph layers (so `.keras` files keep their weight paths).
"""

from __future__ import annotations

import keras


class CopyBridge:
    """The decoder starts where the encoder ended (equal depths and sizes)."""

    def __init__(self):
        self.layers = []

    def __call__(self, encoder_states: list) -> list:
        return encoder_states


class DenseBridge:
    """A linear map per decoder layer and state part (`h`, and `c` for an LSTM), named
    `bridge_<layer>_<part>`. With equal depths each encoder layer maps to the decoder layer of
    the same depth; otherwise each decoder layer reads the states of every encoder layer."""

    def __init__(self, units: int, num_layers: int, states_per_layer: int, dtype=None, **kwargs):
        self.states_per_layer = states_per_layer
        self.layers = [
            keras.layers.Dense(units, dtype=dtype, name=f"bridge_{index}_{part}", **kwargs)
            for index in range(num_layers)
            for part in range(states_per_layer)
        ]

    def __call__(self, encoder_states: list) -> list:
        parts = self.states_per_layer
        if len(self.layers) == len(encoder_states) * parts:  # equal depths: layer to layer
            inputs = encoder_states
        else:
            joined = [
                keras.ops.concatenate([states[part] for states in encoder_states], axis=-1)
                for part in range(parts)
            ]
            inputs = [joined] * (len(self.layers) // parts)
        return [
            [self.layers[index * parts + part](state) for part, state in enumerate(states)]
            for index, states in enumerate(inputs)
        ]


class ZeroBridge:
    """The decoder starts from zeros (sensible with attention only)."""

    def __init__(self, units: int, num_layers: int):
        self.units, self.num_layers = units, num_layers
        self.layers = []

    def __call__(self, encoder_states: list) -> list:
        # zeros (batch, units) built from a state: the batch size is symbolic in the graph
        zeros = keras.ops.repeat(
            keras.ops.zeros_like(encoder_states[0][0][:, :1]), self.units, axis=1
        )
        return [[zeros] * len(encoder_states[0]) for _ in range(self.num_layers)]


def make_bridge(
    kind: str, units: int, num_layers: int, states_per_layer: int, dtype=None, **kwargs
):
    """The bridge `kind` (`copy`, `dense` or `zero`) to `num_layers` decoder layers of `units`."""
    if kind == "dense":
        return DenseBridge(units, num_layers, states_per_layer, dtype=dtype, **kwargs)
    if kind == "zero":
        return ZeroBridge(units, num_layers)
    return CopyBridge()
