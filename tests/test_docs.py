"""README.md and docs/*.md: every `s2s ...` command in their code blocks parses with the real
parser (and a `train` / `tune` command's config resolves), the README's "Train on your own
pairs" commands run on tiny data, every `curl` example answers what the page shows, the Python
blocks compile, links to files resolve, and the results tables equal what `benchmarks/results/`
gives."""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO

PAGES = ["README.md"] + sorted(
    os.path.relpath(path, REPO) for path in glob.glob(os.path.join(REPO, "docs", "*.md"))
)
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL = ("", "sh", "bash", "shell", "console")
QUICK_START = "## Train on your own pairs"


def read(page: str) -> str:
    with open(os.path.join(REPO, page), encoding="utf-8") as handle:
        return handle.read()


def blocks(text: str, languages) -> list:
    return [body for language, body in BLOCK.findall(text) if language in languages]


def commands(text: str) -> list:
    """The arguments after `s2s` of each command line in the shell blocks of `text`."""
    found = []
    for body in blocks(text, SHELL):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # VAR=value before it
                words = words[1:]
            if words and os.path.basename(words[0]) == "s2s":
                found.append(words[1:])
    return found


def quick_start() -> list:
    section = read("README.md").split(QUICK_START, 1)[1].split("\n## ", 1)[0]
    return commands(section)


ALL = [(page, argv) for page in PAGES for argv in commands(read(page))]


def test_every_page_has_commands():
    assert len(ALL) > 20
    assert len(quick_start()) >= 3


@pytest.mark.parametrize(
    "page, argv", ALL, ids=[f"{page}:{' '.join(argv)[:60]}" for page, argv in ALL]
)
def test_command_parses(page, argv):
    from s2s_keras import cli
    from s2s_keras_cli import COMMANDS

    assert argv and argv[0] in COMMANDS, f"{page}: `s2s {' '.join(argv)}`: not an s2s command"
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{page}: `s2s {shlex.join(argv)}` does not parse")
    if args.command in ("train", "tune"):
        cli._config(args)  # the preset and every --set resolve (a ConfigError names the field)


def test_quick_start_runs(tmp_path, monkeypatch, capsys):
    """The README's commands as a newcomer types them, in a directory holding `pairs.tsv`;
    training is shortened with `--preset tiny --set train.epochs=1`."""
    from s2s_keras import cli

    letters = "abcdefgh"
    words = sorted({a + b + c for a in letters for b in letters for c in letters})[:80]
    lines = [f"{word}\t{' '.join(reversed(word.upper()))}\n" for word in words]
    (tmp_path / "pairs.tsv").write_text("".join(lines), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    printed = {}
    for argv in quick_start():
        if argv[0] in ("train", "tune"):
            argv = [*argv, "--preset", "tiny", "--set", "train.epochs=1"]
        assert cli.main(argv) == 0, f"`s2s {shlex.join(argv)}` failed"
        printed[argv[0]] = capsys.readouterr().out.splitlines()
    # training says which LSTM loop it runs (`make test` builds the fused kernels first)
    assert any("LSTM loop: fused" in line for line in printed["train"])
    scores = json.loads(printed["evaluate"][-1])
    assert {"wer", "per", "num_words"} <= set(scores)
    assert os.path.isfile(os.path.join(printed["export"][-1], "saved_model.pb"))
    assert printed["predict"][-1].startswith("hello\t")


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_compile(page):
    for number, body in enumerate(blocks(read(page), ("python",))):
        compile(body, f"{page}, Python block {number + 1}", "exec")


@pytest.mark.parametrize("page", PAGES)
def test_links_resolve(page):
    folder = os.path.dirname(os.path.join(REPO, page))
    prose = re.sub(r"`[^`\n]*`", "", BLOCK.sub("", read(page)))
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        path = target.split("#", 1)[0]
        if path and not re.match(r"[a-z]+:", path):
            assert os.path.exists(os.path.join(folder, path)), f"{page}: no such file: {target}"


@pytest.mark.parametrize("page", PAGES)
def test_no_history_in_the_prose(page):
    """What changed belongs in CHANGELOG.md; the pages describe the code as it is."""
    found = re.findall(r"\b(?:sessions? \d|issues? \d)|(?<![\w/])#\d", read(page), re.IGNORECASE)
    assert not found, f"{page}: {found}"


def test_readme_reads_in_five_minutes():
    assert os.path.getsize(os.path.join(REPO, "README.md")) <= 15_000


def test_results_tables_match_their_reports():
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "results_tables.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_shipped_model_command_runs(capsys):
    """The README's `s2s predict --model pretrained:g2p hello` (the model ships in the tree)."""
    from s2s_keras import cli

    assert ["predict", "--model", "pretrained:g2p", "hello"] in commands(read("README.md"))
    assert cli.main(["predict", "--model", "pretrained:g2p", "hello"]) == 0
    assert capsys.readouterr().out.startswith("hello\t")


def curl_examples() -> list:
    """`(page, command, shown response)` for every `curl` command of the pages: a shell block of
    curl commands is followed by a ```json block, one response line each."""
    examples = []
    for page in PAGES:
        found = BLOCK.findall(read(page))
        for (language, body), following in zip(found, [*found[1:], ("", "")]):
            commands = [c for c in body.replace("\\\n", " ").splitlines() if c.startswith("curl")]
            if language not in SHELL or not commands:
                continue
            responses = following[1].strip().splitlines() if following[0] == "json" else []
            assert len(responses) == len(commands), f"{page}: a response per curl command"
            examples += [(page, c, r) for c, r in zip(commands, responses)]
    return examples


def close(shown, got) -> bool:
    if isinstance(shown, dict):
        return (
            isinstance(got, dict)
            and shown.keys() == got.keys()
            and all(close(shown[k], got[k]) for k in shown)
        )
    if isinstance(shown, list):
        return isinstance(got, list) and len(shown) == len(got) and all(map(close, shown, got))
    if isinstance(shown, float):
        return isinstance(got, (int, float)) and abs(shown - got) <= 1e-4 + 1e-4 * abs(shown)
    return shown == got


@pytest.fixture(scope="module")
def shipped_rest_port(tmp_path_factory):
    """TF Serving's REST API (`tf_serving_rest.py`) over a SavedModel export of pretrained:g2p."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    import tf_serving_rest

    from s2s_keras.export import export
    from s2s_keras.run_dir import load_run

    config, model = load_run("pretrained:g2p")
    version = export(model, config, str(tmp_path_factory.mktemp("shipped") / "g2p"))
    port, stop = tf_serving_rest.serve({"g2p": tf_serving_rest.Model(tf.saved_model.load(version))})
    yield port
    stop()


def test_every_curl_example_of_the_docs_answers_what_the_docs_show(shipped_rest_port):
    examples = curl_examples()
    assert len(examples) >= 3
    for page, command, shown in examples:
        # verbatim, with localhost:8501 connected to the stand-in serving the shipped model
        words = shlex.split(command)
        connect = ["--connect-to", f"localhost:8501:127.0.0.1:{shipped_rest_port}", "-s"]
        result = subprocess.run(
            [words[0], *connect, *words[1:]], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (page, command, result.stderr)
        assert close(json.loads(shown), json.loads(result.stdout)), (command, result.stdout)
