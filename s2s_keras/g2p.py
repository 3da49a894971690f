"""`G2p()(text)`: the phones of English text in one call, in the spirit of g2p_en's `G2p`.

    >>> from s2s_keras import G2p
    >>> g2p = G2p()  # the shipped pretrained:g2p model: no download, no training
    >>> g2p("Call Keras!")  # "keras" is not in CMUdict: the model reads it
    ['K', 'AO', 'L', ' ', 'K', 'EH', 'R', 'AH', 'Z', ' ', '!']

The text is cut into words (runs of letters, with inner apostrophes), numbers and single other
characters. A word found in CMUdict gets its first pronunciation there (stress marks removed,
as the model's phones have none: heteronyms such as "read" get one reading); any other word is
decoded by the model (beam search, the model's `decode.beam_size`, reranked by the
right-to-left run the shipped model carries), all of a call's unknown words in one batch. A
number is read as English words first: an integer as a whole ("911" → nine hundred eleven,
"1,000" → one thousand; beyond 10^15 digit by digit), digits after a decimal point one by one
("3.14" → three point one four). Punctuation and other symbols are kept as they are. Items
are separated by `" "` (as g2p_en does); empty or blank text gives `[]`. `lookup=False` decodes
every word with the model.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*|\d+(?:,\d{3})*(?:\.\d+)?|\S")
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "- - twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))


def number_words(number: int) -> list:
    """English words of a non-negative integer: 1984 → one thousand nine hundred eighty four."""
    if number < 20:
        return [_ONES[number]]
    if number < 100:
        return [_TENS[number // 10]] + ([_ONES[number % 10]] if number % 10 else [])
    if number < 1000:
        rest = number_words(number % 100) if number % 100 else []
        return [_ONES[number // 100], "hundred", *rest]
    for scale, name in _SCALES:
        if number >= scale:
            rest = number_words(number % scale) if number % scale else []
            return [*number_words(number // scale), name, *rest]
    raise AssertionError("unreachable")


def spoken(token: str) -> list:
    """The words a token is read as: a number's English words, else the token itself."""
    if not token[0].isdigit():
        return [token]
    whole, _, fraction = token.replace(",", "").partition(".")
    digits = [_ONES[int(digit)] for digit in fraction]
    if len(whole) > 15:
        return [_ONES[int(digit)] for digit in whole] + (["point", *digits] if fraction else [])
    return number_words(int(whole)) + (["point", *digits] if fraction else [])


class G2p:
    """`G2p(model="pretrained:g2p", lookup=True, beam_size=None)(text)` → list of phones (see
    the module). `model`: anything `s2s predict --model` takes (a run dir, a `.keras` file, a
    SavedModel version dir, `pretrained:NAME`)."""

    def __init__(self, model: str = "pretrained:g2p", lookup: bool = True, beam_size=None):
        from s2s_keras.prediction import load_predictor

        self.predictor = load_predictor(model)
        self.beam_size = beam_size
        self.dictionary = _cmudict() if lookup else {}

    def __call__(self, text: str) -> list:
        tokens = [word for token in _TOKEN.findall(text or "") for word in spoken(token)]
        words = [token for token in tokens if token[0].isalpha()]
        unknown = sorted({word.lower() for word in words} - self.dictionary.keys())
        decoded = self.predictor(unknown, self.beam_size) if unknown else []
        model = {word: results[0][0].split() for word, results in zip(unknown, decoded)}
        result = []
        for index, token in enumerate(tokens):
            if index:
                result.append(" ")
            if token[0].isalpha():
                word = token.lower()
                result += model[word] if word in model else self.dictionary[word]
            else:
                result.append(token)
        return result


def _cmudict() -> dict:
    """word → its first CMUdict pronunciation, read by the pipeline the model was trained on
    (`pipelines.cmudict.read_pairs`: variants folded, stress marks removed)."""
    from s2s_keras.pipelines.cmudict import read_pairs

    first = {}
    for word, phones in read_pairs():
        first.setdefault(word, phones.split())
    return first
