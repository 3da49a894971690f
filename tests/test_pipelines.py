import pytest

import pipelines
from pipelines import cmudict, parallel_text
from pipelines.corpus import DataError, assign_split
from s2s_keras.config import DataConfig

CMUDICT_SAMPLE = """\
abbey AE1 B IY0
read R EH1 D
read(2) R IY1 D
aalborg AO1 L B AO0 R G # place, danish
"""


def write(tmp_path, name, content: bytes | str):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def test_cmudict_sample_strips_stress_comments_and_keeps_variants(tmp_path):
    pairs = cmudict.read_pairs(write(tmp_path, "c.dict", CMUDICT_SAMPLE))
    assert pairs == [("abbey", "AE B IY"), ("read", "R EH D"), ("read", "R IY D"),
                     ("aalborg", "AO L B AO R G")]
    assert cmudict.read_pairs(write(tmp_path, "c.dict", CMUDICT_SAMPLE), keep_stress=True)[0] == \
        ("abbey", "AE1 B IY0")


def test_cmudict_bad_line_names_file_and_line(tmp_path):
    path = write(tmp_path, "c.dict", "abbey AE1 B IY0\nlonely\n")
    with pytest.raises(DataError, match=r"c.dict:2: expected a word and its phones"):
        cmudict.read_pairs(path)


def test_embedded_cmudict_splits_by_word_90_5_5():
    corpus = cmudict.load()
    words = {name: {w for w, _ in corpus.split(name)} for name in ("train", "valid", "test")}
    assert not (words["train"] & words["valid"]) and not (words["train"] & words["test"])
    assert not (words["valid"] & words["test"])
    total = sum(len(corpus.split(n)) for n in ("train", "valid", "test"))
    assert total == 135_166  # every pronunciation line of the shipped file, nothing dropped
    assert abs(len(corpus.test) / total - 0.05) < 0.005 and abs(len(corpus.valid) / total - 0.05) < 0.005
    phones = {p for _, t in corpus.train for p in t.split()}
    assert len(phones) == 39 and not any(ch.isdigit() for p in phones for ch in p)
    multi = [w for w, _ in corpus.test]
    assert len(multi) > len(set(multi))  # words with several references exist in test
    again = cmudict.load()
    assert again.test == corpus.test  # deterministic


def test_assign_split_is_deterministic_and_seeded():
    assert assign_split("hello", 1, 0.05, 0.05) == assign_split("hello", 1, 0.05, 0.05)
    splits = {assign_split(f"w{i}", 3, 0.1, 0.1) for i in range(200)}
    assert splits == {"train", "valid", "test"}


def test_tsv_reads_bom_crlf_and_repeated_sources(tmp_path):
    path = write(tmp_path, "p.tsv", "\ufeffa b\tx\r\na b\ty\r\nc\tz\n")
    assert parallel_text.read_pairs(path) == [("a b", "x"), ("a b", "y"), ("c", "z")]


@pytest.mark.parametrize("content, problem", [
    ("ok\tfine\nno tab here\n", "p.tsv:2: expected 2 tab-separated columns, got 1"),
    ("ok\tfine\na\tb\tc\n", "p.tsv:2: expected 2 tab-separated columns, got 3"),
    ("ok\tfine\n\tb\n", "p.tsv:2: empty source"),
    ("ok\tfine\nok\t \n", "p.tsv:2: empty target"),
    (b"ok\tfine\nok\tfine\n\xff\xfe\tb\n", "p.tsv:3: invalid UTF-8 at byte 0"),
])
def test_tsv_malformed_lines_name_file_and_line(tmp_path, content, problem):
    path = write(tmp_path, "p.tsv", content)
    with pytest.raises(DataError, match=problem):
        parallel_text.read_pairs(path)


def test_tsv_skip_counts_and_reports(tmp_path):
    path = write(tmp_path, "p.tsv", "a\tx\nbad\n\tb\nc\tz\n")
    corpus = parallel_text.load(path, on_bad_line="skip", valid_fraction=0.0, test_fraction=0.0)
    assert corpus.train == [("a", "x"), ("c", "z")]
    assert corpus.skipped.count == 2
    assert "p.tsv:2" in str(corpus.skipped) and "p.tsv:3" in str(corpus.skipped)


def test_tsv_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        parallel_text.read_pairs(str(tmp_path / "nope.tsv"))
    with pytest.raises(DataError, match="no usable pairs"):
        parallel_text.read_pairs(write(tmp_path, "empty.tsv", ""))


def test_load_corpus_spec_with_valid_file(tmp_path):
    train = write(tmp_path, "t.tsv", "".join(f"w{i}\tx{i}\n" for i in range(50)))
    valid = write(tmp_path, "v.tsv", "v\ty\n")
    corpus = pipelines.load_corpus(DataConfig(source=f"tsv:{train},valid={valid}"))
    assert corpus.valid == [("v", "y")]
    assert len(corpus.train) + len(corpus.test) == 50
    with pytest.raises(ValueError, match="expected tsv:PATH"):
        pipelines.load_corpus(DataConfig(source=f"tsv:{train},dev={valid}"))
    with pytest.raises(ValueError, match="expected 'cmudict' or 'tsv:PATH"):
        pipelines.load_corpus(DataConfig(source="wmt"))
