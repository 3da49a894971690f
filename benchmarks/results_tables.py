"""Writes `docs/results.md` and the README's headline results table from the measurements in
`benchmarks/results/` (every `*.json` there and below it, and the tuners' `*.csv` trials).

    .venv/bin/python benchmarks/results_tables.py           # rewrite both (`make docs`)
    .venv/bin/python benchmarks/results_tables.py --check   # exit 1, naming each file that differs

Nothing here knows a file by name: a report is placed by what it holds (`test.wer`: G2P quality;
`test.accuracy` or `test.perplexity`: the other tasks; `ours` + `tokens_per_s`: training speed;
`saved_model`: decoding speed; `formats`: the export formats; `this_over_baseline`: an
interleaved decoding A/B; `runs` with `peak_rss_mb`: memory). A new `quality-P.json` (P its
preset) or `pretrained-NAME.json` is a headline row of the README too. Where a report records
its `host` and `measured` command and date, they are printed; where it does not, the table says
what it has (`cpu_count`).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
RESULTS_DOC = os.path.join(ROOT, "docs", "results.md")
README = os.path.join(ROOT, "README.md")
START, END = "<!-- results:start -->", "<!-- results:end -->"
NONE = "—"


# --- reading ------------------------------------------------------------------------------------


def load_reports() -> list:
    """`(name, report)` for every JSON under benchmarks/results/, `name` relative to it."""
    paths = sorted(glob.glob(os.path.join(RESULTS, "**", "*.json"), recursive=True))
    reports = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            reports.append((os.path.relpath(path, RESULTS), json.load(handle)))
    return reports


def kind(report: dict) -> str:
    test = report.get("test") if isinstance(report.get("test"), dict) else {}
    if "best_alpha_on_valid" in report:
        return "length_penalty"
    if "best_weight_on_valid" in report:
        return "rescore"
    if "wer" in test:
        return "g2p"
    if "accuracy" in test or "perplexity" in test:
        return "tasks"
    if "formats" in report:
        return "formats"
    if "this_over_baseline" in report:
        return "decode_ab"
    if "this_over_baseline_p50" in report:
        return "latency_ab"
    if "saved_model" in report:
        return "decode"
    if "ours" in report and "tokens_per_s" in report:
        return "train_speed"
    if "on_over_off" in report:
        return "onednn_ab"
    if "lever" in report or any(
        isinstance(v, dict) and "fused_over_tensorflow_ops" in v for v in report.values()
    ):
        return "train_ab"
    if "onednn_kernels" in report:
        return "step_profile"
    if "by_region_ms_per_call" in report.get("batch_256", {}):
        return "decode_profile"
    if any("peak_rss_mb" in run for run in report.get("runs", []) if isinstance(run, dict)):
        return "memory"
    return "other"


# --- formatting ---------------------------------------------------------------------------------


def number(value, digits: int = 0) -> str:
    if value is None:
        return NONE
    return f"{value:,.{digits}f}".replace(",", " ")


def percent(value) -> str:
    return NONE if value is None else f"{100 * value:.1f}%"


def duration(seconds) -> str:
    if seconds is None:
        return NONE
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def millions(count) -> str:
    return NONE if count is None else f"{count / 1e6:.2f} M"


def relative(text: str) -> str:
    """Paths inside the repository as the README writes them (relative to its root), whichever
    checkout measured them: `/any/checkout/runs/x` → `runs/x`, so that the pages do not depend
    on where they are generated."""
    text = text.replace(ROOT + os.sep, "")
    return re.sub(r"/[^\s`'\"]*?/(?=(?:runs|benchmarks|saved_models)/)", "", text)


def code(items) -> str:
    items = [relative(str(item)) for item in items or []]
    return " ".join(f"`{item}`" for item in items) if items else NONE


def link(name: str, prefix: str) -> str:
    return f"[{name}]({prefix}benchmarks/results/{name})"


def host(report: dict) -> str:
    machine = report.get("host")
    if isinstance(machine, dict):
        flags = [
            "AVX-512-BF16" if machine.get("avx512_bf16") else "no AVX-512-BF16",
            "AMX" if machine.get("amx") else "no AMX",
        ]
        return f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {', '.join(flags)}"
    if "cpu_count" in report:
        return f"{report['cpu_count']} cores"
    return NONE


def date(report: dict) -> str:
    measured = report.get("measured")
    return measured.get("date", NONE) if isinstance(measured, dict) else NONE


def command(report: dict) -> str:
    measured = report.get("measured")
    if isinstance(measured, dict) and measured.get("command"):
        return f"`{relative(measured['command'])}`"
    return NONE


def table(header: list, rows: list) -> list:
    """A Markdown table; a column no report fills is left out."""
    kept = [i for i in range(len(header)) if any(str(row[i]) != NONE for row in rows)]
    header = [header[i] for i in kept]
    rows = [[row[i] for i in kept] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def train_seconds(report: dict):
    for key in ("fit_seconds", "train_seconds"):
        if report.get(key) is not None:
            return report[key]
    seconds = report.get("seconds")
    return seconds.get("train") if isinstance(seconds, dict) else None


def epochs(report: dict) -> str:
    if report.get("epochs_run") is not None:
        updates, steps = report.get("updates"), report.get("steps_per_epoch")
        if updates and steps and updates != report["epochs_run"] * steps:
            return f"{updates / steps:.2f}"  # the last epoch cut short (train.max_minutes)
        return str(report["epochs_run"])
    members = [m.get("epochs_run") for m in report.get("members", [])]
    return " + ".join(map(str, members)) if members and None not in members else NONE


def settings(report: dict) -> str:
    parts = []
    if report.get("data"):
        parts.append(f"`--data {report['data']}`")
    overrides = report.get("overrides") or []
    if overrides:
        parts.append(code(overrides))
    if report.get("seeds"):
        parts.append(f"ensemble of `train.seed` {', '.join(map(str, report['seeds']))}")
    rescore = report.get("rescore")
    if isinstance(rescore, dict) and "reverse_target" in rescore:  # a shipped model's reranker
        parts.append(
            f"reranked by a right-to-left `{rescore['preset']}` run "
            f"({millions(rescore['parameters'])}, {rescore['epochs_run']} epochs, "
            f"{duration(rescore['train_seconds'])}; weight {rescore['weight']})"
        )
    if isinstance(rescore, dict) and "right_to_left_seeds" in rescore:
        seeds = ", ".join(map(str, rescore["right_to_left_seeds"]))
        parts.append(
            f"reranked by right-to-left `train.seed` {seeds} (weight {rescore['weight']}; "
            f"the beam alone: {percent(rescore['test_beam_alone']['wer'])})"
        )
    threads = report.get("threads")
    if isinstance(threads, dict):
        parts.append(", ".join(f"{key} threads {value}" for key, value in threads.items()))
    return "; ".join(parts) if parts else "no overrides"


def task_score(split) -> str:
    """A classifier's accuracy or a language model's perplexity, with the split's size."""
    if not isinstance(split, dict):
        return NONE
    if "accuracy" in split:
        return f"accuracy {percent(split['accuracy'])} ({number(split.get('num_examples'))})"
    return f"perplexity {split['perplexity']:.1f} ({number(split.get('tokens'))} tokens)"


def members(report: dict) -> str:
    scores = []
    for member in report.get("members", []):
        test = member.get("test", {})
        if "accuracy" in test:
            scores.append(percent(test["accuracy"]))
        elif "perplexity" in test:
            scores.append(f"{test['perplexity']:.1f}")
    return ", ".join(scores) if scores else NONE


# --- the tables ---------------------------------------------------------------------------------


def g2p_rows(reports: list, prefix: str) -> list:
    rows = []
    for name, report in reports:
        test, valid = report["test"], report.get("valid") or {}
        total = report.get("total_seconds")
        training = duration(train_seconds(report))
        if total is not None:
            training += f" (all of `make train`: {duration(total)})"
        sample = report.get("sample") or {}
        rows.append(
            [
                link(name, prefix),
                f"`{report.get('preset', NONE)}`",
                settings(report),
                millions(report.get("parameters")),
                epochs(report),
                training,
                f"**{percent(test['wer'])}**",
                percent(test.get("per")),
                percent(test.get("exact_match")),
                percent(valid.get("wer")),
                percent(sample.get("wer")),
                test.get("beam_size", NONE),
                host(report),
                date(report),
            ]
        )
    header = [
        "result",
        "preset",
        "settings",
        "parameters",
        "epochs",
        "training",
        "test WER",
        "test PER",
        "exact match",
        "valid WER",
        "500-word sample WER",
        "beam",
        "host",
        "date",
    ]
    return table(header, rows)


def task_rows(reports: list, prefix: str) -> list:
    rows = [
        [
            link(name, prefix),
            f"`{report.get('preset', NONE)}`",
            report["test"].get("data", NONE),
            settings(report),
            millions(report.get("parameters")),
            epochs(report),
            duration(train_seconds(report)),
            f"**{task_score(report['test'])}**",
            task_score(report.get("valid")),
            members(report),
            host(report),
            date(report),
        ]
        for name, report in reports
    ]
    header = [
        "result",
        "preset",
        "data",
        "settings",
        "parameters",
        "epochs",
        "training",
        "test",
        "valid",
        "ensemble members (test)",
        "host",
        "date",
    ]
    return table(header, rows)


PYTORCH_OF = {"float32": "fp32", "mixed_bfloat16": "bf16_autocast"}


def train_speed_rows(reports: list, prefix: str) -> list:
    rows = []
    for name, report in reports:
        torch, keras_io = report.get("pytorch") or {}, report.get("keras_io") or {}
        for precision, ours in report["ours"].items():
            reference = torch.get(PYTORCH_OF.get(precision, precision)) or {}
            recipe = keras_io.get(precision) or {}
            rows.append(
                [
                    link(name, prefix),
                    settings(report),
                    f"`{precision}`",
                    percent(ours.get("pad_fraction")),
                    f"**{number(ours['tokens_per_s'])}**",
                    number(reference.get("tokens_per_s")),
                    fastest_torch(torch),
                    number(recipe.get("tokens_per_s")),
                    number(ours.get("seconds_per_epoch"), 1),
                    number(ours.get("useful_gflop_per_s")),
                    percent(ours.get("utilization")),
                    number(ours.get("peak_rss_mb")),
                    host(report),
                    date(report),
                ]
            )
    header = [
        "result",
        "settings",
        "precision",
        "padding",
        "ours (tokens/s)",
        "PyTorch, same precision, packed (tokens/s)",
        "PyTorch's fastest (tokens/s)",
        "keras-io recipe (tokens/s)",
        "s per epoch",
        "useful GFLOP/s",
        "of matmul peak",
        "peak RSS (MB)",
        "host",
        "date",
    ]
    return table(header, rows)


def fastest_torch(torch: dict) -> str:
    """The fastest of the PyTorch variants a report ran, named (older reports ran two)."""
    if "fastest" not in torch:
        return NONE
    return f"{number(torch['tokens_per_s'])} (`{torch['fastest']}`)"


PRECISION_KEYS = ("float32", "mixed_bfloat16")


TRAIN_AB_SIDES = {
    "kernels": ("fused", "tensorflow_ops"),
    "sequence": ("whole_sequence", "per_step"),
    "tables": ("token_tables", "multiply"),
    "one_hot": ("one_hot_matmul", "segment_sum"),
    "strategy": ("default_strategy", "one_device"),
    "adam": ("fused_adam", "keras_adam"),
    "autotune": ("without_autotune", "autotune"),
}


def train_ab_rows(reports: list, prefix: str) -> list:
    rows = []
    for name, report in reports:
        lever = report.get("lever", "kernels")
        on, off = TRAIN_AB_SIDES[lever]
        for precision in PRECISION_KEYS:
            ab = report.get(precision)
            if not ab:
                continue
            a, b = ab[on], ab[off]
            mean_ratio = ab.get(f"{off}_over_{on}_mean_seconds")
            rows.append(
                [
                    link(name, prefix),
                    network(report),
                    f"`{on}` / `{off}`",
                    f"`{precision}`",
                    str(len(a["seconds_per_epoch"])),
                    f"**{number(a['best_tokens_per_s'])}**",
                    number(b["best_tokens_per_s"]),
                    f"**{ab[f'{on}_over_{off}']:.2f}**",
                    NONE if mean_ratio is None else f"{mean_ratio:.2f}",
                    f"{ab[f'cpu_seconds_{off}_over_{on}']:.2f}",
                    " ".join(f"{x:.1f}" for x in a["seconds_per_epoch"]),
                    " ".join(f"{x:.1f}" for x in b["seconds_per_epoch"]),
                    number(ab.get("step_matmul_gflop_per_s")),
                    host(report),
                ]
            )
    header = [
        "result",
        "network",
        "sides (A / B)",
        "precision",
        "rounds",
        "A, best epoch (tokens/s)",
        "B, best epoch",
        "A / B, best epochs",
        "mean epoch time, B / A",
        "CPU s per epoch, B / A",
        "A, s per epoch",
        "B, s per epoch",
        "step matmul GFLOP/s",
        "host",
    ]
    return table(header, rows)


def onednn_ab_rows(reports: list, prefix: str) -> list:
    rows = []
    for name, report in reports:
        on, off = report["on"], report["off"]
        rows.append(
            [
                link(name, prefix),
                f"`{report['precision']}`",
                str(report["rounds"]),
                f"**{number(on['best_tokens_per_s'])}**",
                number(off["best_tokens_per_s"]),
                f"**{report['on_over_off']:.2f}**",
                f"{report['on_over_off_median']:.2f}",
                " ".join(f"{x:.1f}" for x in on["seconds_per_epoch"]),
                " ".join(f"{x:.1f}" for x in off["seconds_per_epoch"]),
                host(report),
            ]
        )
    header = [
        "result",
        "precision",
        "rounds",
        "on, best run (tokens/s)",
        "off, best run",
        "on / off, best runs",
        "on / off, medians",
        "on, s per epoch",
        "off, s per epoch",
        "host",
    ]
    return table(header, rows)


REGIONS = (
    "encoder forward loop",
    "decoder forward loop",
    "backward loops",
    "forward sequence ops",
    "backward sequence ops",
    "outside the loops",
)


def network(report: dict) -> str:
    """A training benchmark's network: layers × units, batch size, and its `--set` levers."""
    levers = ", ".join(f"`{o}`" for o in report.get("overrides", []))
    shape = f"{report['layers']}×{report['units']}, batch {report['batch_size']}"
    return f"{shape}; {levers}" if levers else shape


def step_profile_rows(reports: list, prefix: str) -> list:
    rows = []
    for name, report in reports:
        sides = ("tensorflow_ops", "fused", "whole_sequence_without_token_tables", "whole_sequence")
        for side in sides:
            if side not in report:  # whole_sequence: hosts with the whole-sequence ops only
                continue
            profile = report[side]
            regions = profile["by_region_ms_per_step"]
            top = list(profile["by_op_ms_per_step"].items())[:4]
            rows.append(
                [
                    link(name, prefix),
                    network(report),
                    f"`{report['precision']}`",
                    side.replace("_", " "),
                    f"**{profile['step_ms']:.1f}**",
                    *(f"{regions.get(region, 0):.1f}" for region in REGIONS),
                    ", ".join(f"{op} {ms:.1f}" for op, ms in top),
                    host(report),
                ]
            )
    header = [
        "result",
        "network",
        "precision",
        "loop",
        "step (ms, unprofiled)",
        *(f"{region} (op ms)" for region in REGIONS),
        "top op types (op ms)",
        "host",
    ]
    lines = table(header, rows)
    for name, report in reports:
        kernels = report["onednn_kernels"]
        lines += [
            "",
            f"oneDNN primitives of {kernels['steps']} training steps ({link(name, prefix)}): "
            + "; ".join(
                f"`{key}` {value['calls']}× {value['ms']:.0f} ms"
                for key, value in list(kernels["by_primitive"].items())[:6]
            ),
        ]
    return lines


DECODE_REGIONS = ("encoder loops", "decoding loop", "outside the loops")


def decode_profile_rows(reports: list, prefix: str) -> list:
    rows = []
    for name, report in reports:
        profile = report["batch_256"]
        regions = profile["by_region_ms_per_call"]
        top = list(profile["by_op_ms_per_call"].items())[:5]
        rows.append(
            [
                link(name, prefix),
                f"`{report['preset']}`, `{report['precision']}`"
                + (", fused export" if report.get("fused") else ""),
                f"**{profile['ms_per_call']:.1f}**",
                number(profile["words_per_s"]),
                f"{profile['op_ms_per_call']:.1f} ({number(profile['ops_per_call'])} ops)",
                *(f"{regions.get(region, 0):.1f}" for region in DECODE_REGIONS),
                ", ".join(f"{op} {v['ms']:.1f} ({number(v['count'])}×)" for op, v in top),
                number(report["step_matmul_gflop_per_s_batch_256"]),
                host(report),
            ]
        )
    header = [
        "result",
        "model",
        "batch of 256 (ms)",
        "words/s",
        "op ms (ops)",
        *(f"{region} (op ms)" for region in DECODE_REGIONS),
        "top op types (op ms, count)",
        "step matmul alone (GFLOP/s)",
        "host",
    ]
    return table(header, rows)


def chosen_on_valid_rows(reports: list, prefix: str, name: str, columns: dict) -> list:
    """Rows of `sweep.chosen_on_valid` reports: `name` is the setting's key, `columns` the
    headers of its own columns (the value's, the chosen one's, test at 0 and at the chosen value)
    and what a report adds before them ("extra": header and how to read it)."""
    rows = []
    for report_name, report in reports:
        best = report[f"best_{name}_on_valid"]
        test = report["test"]
        extra = [read(report) for read in columns["extra"].values()]
        rows.append(
            [
                link(report_name, prefix),
                f"`{report['preset']}`, {len(report['run_dirs'])} model(s), beam "
                f"{report['beam_size']}",
                *extra,
                ", ".join(f"{value}: {percent(r['wer'])}" for value, r in report["valid"].items()),
                f"{best}",
                f"{percent(test['0.0']['wer'])} / {percent(test['0.0']['per'])}",
                f"**{percent(test[str(best)]['wer'])}** / {percent(test[str(best)]['per'])}",
                host(report),
            ]
        )
    header = [
        "result",
        "model",
        *columns["extra"],
        f"validation WER by {columns['value']}",
        f"{columns['value']} chosen",
        f"test WER / PER, {columns['zero']}",
        f"test WER / PER, {columns['chosen']}",
        "host",
    ]
    return table(header, rows)


def length_penalty_rows(reports: list, prefix: str) -> list:
    columns = {"value": "α", "zero": "α = 0", "chosen": "α chosen", "extra": {}}
    return chosen_on_valid_rows(reports, prefix, "alpha", columns)


def rescore_rows(reports: list, prefix: str) -> list:
    extra = {"rescored with": lambda r: ", ".join(f"`{run}`" for run in r["rescore"])}
    columns = {"value": "weight", "zero": "beam alone", "chosen": "reranked", "extra": extra}
    return chosen_on_valid_rows(reports, prefix, "weight", columns)


def latency(value: dict) -> str:
    return f"{value['p50']:.1f} / {value['p99']:.1f}" if value else NONE


def decode_rows(reports: list, prefix: str) -> list:
    rows = []
    for name, report, export, saved in (
        (name, report, export, saved)
        for name, report in reports
        for export, saved in (
            ("", report["saved_model"]),
            (", fused export", report.get("fused_saved_model")),
        )
        if saved
    ):
        greedy, beam = saved["greedy_words_per_s"], saved["beam5_words_per_s"]
        torch = report.get("pytorch_eager") or {}
        bf16 = torch.get("greedy_words_per_s_batch_256_bf16_autocast")
        fp32 = torch.get("greedy_words_per_s_batch_256_fp32")
        rows.append(
            [
                link(name, prefix),
                f"`{report.get('preset', NONE)}`{export}, {number(report.get('words'))} words",
                number(greedy["batch_1"]),
                f"**{number(greedy['batch_256'])}**",
                number(beam["batch_1"]),
                f"**{number(beam['batch_256'])}**",
                latency(saved["latency_ms"].get("serving_default_beam5")),
                latency(saved["latency_ms"].get("greedy")),
                f"{number(bf16)} ({number(fp32)})" if torch else NONE,
                number((report.get("keras_io") or {}).get("greedy_words_per_s_batch_256")),
                host(report),
                date(report),
            ]
        )
        reranked = report.get("reranked_saved_model") if not export else None
        if reranked:  # `serving_default` reranking its beam: what the beam 5 columns cost then
            served = reranked["serving_default_words_per_s"]
            rows.append(
                [
                    link(name, prefix),
                    f"`{report.get('preset', NONE)}`, beam reranked by "
                    f"{millions(reranked['rescorer_parameters'])} parameters (weight "
                    f"{reranked['rescore_weight']}), {number(report.get('words'))} words",
                    NONE,
                    NONE,
                    number(served["batch_1"]),
                    f"**{number(served['batch_256'])}**",
                    latency(reranked["latency_ms"]["serving_default_beam5"]),
                    NONE,
                    NONE,
                    NONE,
                    host(report),
                    date(report),
                ]
            )
    header = [
        "result",
        "model",
        "greedy, batch 1 (words/s)",
        "greedy, batch 256",
        "beam 5, batch 1",
        "beam 5, batch 256",
        "one word p50 / p99, beam 5 (ms)",
        "one word p50 / p99, greedy (ms)",
        "PyTorch eager greedy, batch 256, bf16 (fp32)",
        "keras-io `predict()` per token, batch 256",
        "host",
        "date",
    ]
    return table(header, rows)


def format_rows(reports: list, prefix: str) -> list:
    rows = []
    for name, report in reports:
        for fmt, run in report["formats"].items():
            rows.append(
                [
                    link(name, prefix),
                    f"`{fmt}`",
                    number(run["words_per_s_batch_1"]),
                    f"**{number(run['words_per_s_batch_256'])}**",
                    f"{run['bytes'] / 1e6:.1f} MB",
                    f"{run['equal_to_savedmodel']} / {report['words']}",
                    percent(run["greedy_wer"]),
                    percent(run["greedy_per"]),
                    host(report),
                    date(report),
                ]
            )
    header = [
        "result",
        "format",
        "one word at a time (words/s)",
        "batches of 256",
        "model file",
        "outputs equal to the SavedModel's",
        "greedy WER",
        "greedy PER",
        "host",
        "date",
    ]
    return table(header, rows)


AB_MEASURES = (
    "greedy_batch_1",
    "greedy_batch_256",
    "beam5_batch_1",
    "beam5_batch_256",
    "latency_greedy_p50_ms",
    "latency_beam5_p50_ms",
)


def decode_ab_rows(reports: list, prefix: str) -> list:
    rows = []
    for name, report in reports:
        commits = report.get("commits")
        if isinstance(commits, list):
            commits = next((c for c in commits if c), None)
        sides = commits or {}
        runs = report.get("runs") or {}
        rounds = report.get("rounds") or len(runs.get("this", [])) or NONE
        for side in ("baseline", "this"):
            medians = report["median"][side]
            label = f"{side} `{sides[side]}`" if side in sides else side
            rows.append(
                [link(name, prefix), rounds, f"median, {label}"]
                + [number(medians[m], 1 if m.endswith("_ms") else 0) for m in AB_MEASURES]
                + [host(report)]
            )
        ratio = report["this_over_baseline"]
        rows.append(
            [link(name, prefix), rounds, "**this / baseline**"]
            + [f"**{ratio[m]:.2f}**" for m in AB_MEASURES]
            + [host(report)]
        )
    header = [
        "result",
        "rounds",
        "",
        "greedy, batch 1 (words/s)",
        "greedy, batch 256",
        "beam 5, batch 1",
        "beam 5, batch 256",
        "greedy p50 (ms)",
        "beam 5 p50 (ms)",
        "host",
    ]
    return table(header, rows)


def latency_ab_rows(reports: list, prefix: str) -> list:
    rows = []
    for name, report in reports:
        speeds = report.get("words_per_s_batch_256")  # runs with --batch-words
        for side in ("baseline", "this"):
            latency = report["latency"][side]
            rows.append(
                [
                    link(name, prefix),
                    f"{side} `{report['commits'][side]}`",
                    f"{report['rounds']} × {report['requests']}",
                    *(
                        f"{latency[kind][p]:.2f}"
                        for kind in ("greedy", "beam5")
                        for p in ("p50_ms", "p90_ms")
                    ),
                    *(
                        number(speeds[side][kind]) if speeds else NONE
                        for kind in ("greedy", "beam5")
                    ),
                    "yes" if report["identical_outputs"] else "**no**",
                    host(report),
                ]
            )
        ratio = report["this_over_baseline_p50"]
        faster = report.get("this_over_baseline_words_per_s")
        rows.append(
            [link(name, prefix), "**this / baseline**", "", f"**{ratio['greedy']:.2f}**", ""]
            + [f"**{ratio['beam5']:.2f}**", ""]
            + [f"**{faster[kind]:.2f}**" if faster else "" for kind in ("greedy", "beam5")]
            + ["", host(report)]
        )
    header = [
        "result",
        "tree",
        "rounds × requests",
        "greedy p50 (ms)",
        "greedy p90",
        "beam 5 p50",
        "beam 5 p90",
        "greedy, batch 256 (words/s)",
        "beam 5, batch 256",
        "same outputs",
        "host",
    ]
    return table(header, rows)


def memory_rows(reports: list, prefix: str) -> list:
    rows = []
    for name, report in reports:
        load = report.get("load_average")
        for run in report["runs"]:
            rows.append(
                [
                    link(name, prefix),
                    settings(report),
                    "streamed" if run.get("streamed") else "in memory",
                    number(run.get("corpus_pairs")),
                    number(run.get("corpus_gzip_mb"), 1),
                    number(run.get("steps_per_epoch")),
                    f"**{number(run['peak_rss_mb'])}**",
                    duration(run.get("seconds")),
                    " / ".join(f"{x:.1f}" for x in load) if load else NONE,
                    host(report),
                    date(report),
                ]
            )
        if report.get("ratio") is not None:
            rows.append(
                [link(name, prefix), "peak RSS, largest / smallest corpus"]
                + [""] * 4
                + [f"**{report['ratio']:.2f}×**"]
                + [""] * 4
            )
    header = [
        "result",
        "settings",
        "training split",
        "training pairs",
        "gzip'd corpus (MB)",
        "steps (1 epoch)",
        "peak RSS (MB)",
        "wall clock",
        "load average (1/5/15 min)",
        "host",
        "date",
    ]
    return table(header, rows)


def tuning_rows(prefix: str) -> list:
    rows = []
    for path in sorted(glob.glob(os.path.join(RESULTS, "**", "*.csv"), recursive=True)):
        with open(path, encoding="utf-8", newline="") as handle:
            trials = list(csv.reader(handle))
        header, values = trials[0], trials[1:]
        scores = [float(row[1]) for row in values if len(row) > 1 and row[1]]
        searched = ", ".join(f"`{key}`" for key in header[2:])
        rows.append(
            [
                link(os.path.relpath(path, RESULTS), prefix),
                len(values),
                f"`{header[1]}`",
                f"**{max(scores):.3f}**" if scores else NONE,
                f"{min(scores):.3f}" if scores else NONE,
                searched,
            ]
        )
    return table(["result", "trials", "objective", "best", "worst", "searched"], rows)


def other_rows(reports: list, prefix: str) -> list:
    return table(["result", "keys"], [[link(n, prefix), code(sorted(r))] for n, r in reports])


RESULTS_INTRO = """\
# Results

Every number on this page is read from a report in
[`benchmarks/results/`](../benchmarks/results/) by `benchmarks/results_tables.py`
(`make docs` rewrites this page and the README's table; the test suite fails when they differ
from the reports). How each kind of number is measured, and what the hosts are:
[benchmarks.md](benchmarks.md). Compare numbers within one host and one table.

A report's file name says what was measured; its settings are the `--set` overrides it records
on top of the preset it names (a `--data` other than the preset's own is named). Reports whose
settings are not all recorded are described in
[benchmarks.md](benchmarks.md#reports-named-after-their-settings). "host" is the machine the report
records; reports that record only their core count say so. "training" is the time spent in
`model.fit`, summed over every attempt of a resumed run.
"""

SECTIONS = (
    (
        "g2p",
        "G2P quality (CMUdict, stress removed, our test split)",
        "Word error rate (a word is right when it equals one of its pronunciations) and phone "
        "error rate of `s2s evaluate --split test` (beam 5, every pronunciation a reference).",
        g2p_rows,
    ),
    (
        "length_penalty",
        "G2P: length penalty in beam search",
        "`benchmarks/length_penalty.py`: GNMT's α (`decode.length_penalty`) chosen on the "
        "validation split, then scored on the test split next to α = 0.",
        length_penalty_rows,
    ),
    (
        "rescore",
        "G2P: reranking the beam with right-to-left models",
        "`benchmarks/rescore.py`: the beam's candidates rescored by other runs (trained with "
        "`model.reverse_target=true`); the weight chosen on the validation split, then scored on "
        "the test split next to the beam alone.",
        rescore_rows,
    ),
    (
        "tasks",
        "Other tasks: sentiment classification and language models",
        "Test accuracy (classify) or test perplexity (lm) of `s2s evaluate --split test`; an "
        "ensemble's members are scored alone too.",
        task_rows,
    ),
    (
        "train_speed",
        "Training speed",
        "One epoch of CMUdict pairs after a warm-up epoch (`benchmarks/train_speed.py`); tokens "
        "are non-padding source tokens plus target tokens with the end token.",
        train_speed_rows,
    ),
    (
        "train_ab",
        "Training speed: one lever on and off, interleaved",
        "`benchmarks/train_ab.py --lever`: two models of `train_speed.py`'s configuration in one "
        "process, one epoch (one `fit` call) each in turn on the same batches; `kernels`: the "
        "fused LSTM kernels against TensorFlow ops (the same numbers); `sequence`: the "
        "whole-sequence LSTM ops against the per-step kernels; `tables`: the first layers' "
        "input projections gathered from token tables against embedding and multiplying; "
        "`one_hot`: the token tables' gradient as one one-hot matmul against TensorFlow's sum "
        "per id; `strategy`: TensorFlow's default strategy against OneDeviceStrategy; "
        "`adam`: Adam as one op "
        "per variable against Keras' Adam; `autotune`: the pipeline without tf.data's "
        "autotuning (as training runs) against it on.",
        train_ab_rows,
    ),
    (
        "onednn_ab",
        "Training speed: TensorFlow's oneDNN ops on and off",
        "`benchmarks/onednn_ab.py`: `train_speed.py`'s measurement of ours in fresh processes, "
        "`TF_ENABLE_ONEDNN_OPTS=1` and `=0` in turn (the switch is read when TensorFlow is "
        "imported).",
        onednn_ab_rows,
    ),
    (
        "step_profile",
        "Where a training step's time goes",
        "`benchmarks/step_profile.py`: TensorFlow's profiler over one epoch, op time per step "
        "by region of the graph (the two executor threads overlap, so regions can sum to more "
        "than the step), and the oneDNN primitives the matmuls run.",
        step_profile_rows,
    ),
    (
        "decode_profile",
        "Where greedy decoding's time goes",
        "`benchmarks/decode_profile.py`: TensorFlow's profiler over the SavedModel's `greedy` "
        "signature, batches of 256 test words; op time per call by region of the graph (the two "
        "executor threads overlap) and by op type.",
        decode_profile_rows,
    ),
    (
        "decode",
        "Decoding speed",
        "Through the loaded SavedModel, tokenization included (`benchmarks/decode_speed.py`).",
        decode_rows,
    ),
    (
        "formats",
        "Export formats",
        "Greedy decoding of the same test words through each export (`benchmarks/portable_speed."
        "py`): the SavedModel with TensorFlow, LiteRT and ONNX Runtime without it (tokenization "
        "in `s2s_runtime.py` included), each in its own process; a LiteRT model's batch size is "
        "fixed at export (`batch1`: one word per call). WER/PER: against the test references.",
        format_rows,
    ),
    (
        "decode_ab",
        "Decoding speed, two trees interleaved",
        "`benchmarks/decode_ab.py`: the same measures from two checkouts in turn on one host; "
        "above 1 is faster for words/s, below 1 is faster for latency.",
        decode_ab_rows,
    ),
    (
        "latency_ab",
        "Latency and batches, two trees interleaved in one process",
        "`benchmarks/latency_ab.py`: the same run exported by two checkouts, both SavedModels "
        "answering the same single-word requests (and, where given, batches of 256 words) in "
        "turn in one process; below 1 is faster for latency, above 1 for words/s.",
        latency_ab_rows,
    ),
    (
        "memory",
        "Memory of a streamed corpus",
        "Peak resident memory of one `s2s train` process (`benchmarks/stream_memory.py`).",
        memory_rows,
    ),
    ("other", "Other reports", "Reports of a kind this page has no table for.", other_rows),
)


def results_page(reports: list) -> str:
    lines = [RESULTS_INTRO]
    for name, title, text, rows in SECTIONS:
        chosen = [(n, r) for n, r in reports if kind(r) == name]
        if not chosen:
            continue
        lines += [f"## {title}", "", text, ""] + rows(chosen, "../") + [""]
        if name == "g2p":
            lines += [
                "Learning curves of an `lstm` run (2×256, no attention) and the `attention` "
                'model\'s alignment for "pronunciation" (`s2s plot history`, `s2s plot '
                "attention`):",
                "",
                "![learning curves](history-small.png)",
                "![alignment](attention-pronunciation.png)",
                "",
            ]
    lines += ["## Tuning trials", "", "`s2s tune`'s `trials.csv` of each search.", ""]
    lines += tuning_rows("../") + [""]
    commands = [(n, command(r)) for n, r in reports if command(r) != NONE]
    if commands:
        lines += ["## Commands recorded by the reports", ""]
        lines += table(["result", "command"], [[link(n, "../"), c] for n, c in commands])
        lines += [""]
    return "\n".join(lines)


# --- the README's headline table -----------------------------------------------------------------


# The reports of the best recipes (several runs of a preset together), headlined in the README.
BEST_RECIPES = ("quality-g2p-ensemble-2-seeds-2-right-to-left-amx.json",)


def headline(name: str, report: dict) -> bool:
    """A preset's own report (`quality-P.json` for preset P), `make train`'s, a shipped model's,
    a best recipe's."""
    stem = os.path.splitext(name)[0]
    if kind(report) not in ("g2p", "tasks") or os.sep in name:
        return False
    return (
        name in BEST_RECIPES
        or stem == f"quality-{report.get('preset')}"
        or stem == f"make-train-{report.get('preset')}"
        or stem.startswith("pretrained-")
    )


def headline_table(reports: list) -> str:
    chosen = [(n, r) for n, r in reports if headline(n, r)]

    def order(item):
        name, report = item
        test = report["test"]
        task = 0 if "wer" in test else 1 if "accuracy" in test else 2
        return task, report.get("parameters") or 0, name

    rows = []
    for name, report in sorted(chosen, key=order):
        test = report["test"]
        if name.startswith("pretrained-"):
            label = f"`{report.get('name', name)}` (shipped; preset `{report.get('preset')}`)"
        elif name.startswith("make-train-"):
            label = f"`{report.get('preset')}` (`make train`)"
        elif name in BEST_RECIPES:
            right_to_left = len((report.get("rescore") or {}).get("right_to_left_seeds", []))
            label = (
                f"best: `{report.get('preset')}`, {len(report['seeds'])} seeds averaged, "
                f"reranked by {right_to_left} right to left"
            )
        else:
            label = f"`{report.get('preset')}`"
        if "wer" in test:
            what = "G2P, CMUdict"
            score = f"WER **{percent(test['wer'])}**, PER {percent(test.get('per'))}"
        else:
            what = ("sentiment, " if "accuracy" in test else "language model, ") + test.get(
                "data", NONE
            )
            score = (
                f"accuracy **{percent(test['accuracy'])}**"
                if "accuracy" in test
                else f"perplexity **{test['perplexity']:.1f}**"
            )
        training = duration(train_seconds(report))
        if report.get("total_seconds") is not None:
            training += f" (all of `make train`: {duration(report['total_seconds'])})"
        parameters, epochs_run = millions(report.get("parameters")), epochs(report)
        reranker = report.get("rescore") or {}
        if "reverse_target" in reranker:  # a shipped model and the reranker it carries
            label += f" + a right-to-left `{reranker['preset']}` reranking its beam"
            parameters += f" + {millions(reranker['parameters'])}"
            epochs_run += f" + {reranker['epochs_run']}"
            training += f" + {duration(reranker['train_seconds'])}"
        rows.append([label, what, score, parameters, epochs_run, training, link(name, "")])
    header = ["preset", "task, data", "test", "parameters", "epochs", "training", "report"]
    return "\n".join(table(header, rows))


def readme_text(readme: str, reports: list) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md: the markers {START} and {END} are missing")
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{headline_table(reports)}\n{END}{after}"


# --- main ---------------------------------------------------------------------------------------


def outputs() -> dict:
    """path → the text this script writes there."""
    reports = load_reports()
    with open(README, encoding="utf-8") as handle:
        readme = handle.read()
    return {RESULTS_DOC: results_page(reports), README: readme_text(readme, reports)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file would change"
    )
    args = parser.parse_args(argv)
    differ = []
    for path, text in outputs().items():
        current = None
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                current = handle.read()
        if current == text:
            continue
        if args.check:
            differ.append(os.path.relpath(path, ROOT))
        else:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            print(f"wrote {os.path.relpath(path, ROOT)}")
    for path in differ:
        print(
            f"{path} differs from what benchmarks/results/ gives: "
            "run `.venv/bin/python benchmarks/results_tables.py` (make docs) and commit it",
            file=sys.stderr,
        )
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
