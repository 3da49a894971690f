"""`s2s distill`: sequence-level knowledge distillation (Kim & Rush 2016). A teacher — one run or
an ensemble of runs — decodes every source of its training split with beam search; its best
outputs become the training targets of a student, which then decodes at one model's speed.

`distill(teachers, output)` writes, into a new (or empty) directory:
    train.jsonl   one `{"source", "target"}` per distinct training source: the teacher's output
    valid.jsonl   the teacher's validation pairs, unchanged (the student selects on real data)
    test.jsonl    the teacher's test pairs, unchanged (the student is scored like the teacher)
    distill.json  what was done: teachers, counts, seconds, and the `--data` spec to train on
A source whose teacher output is empty, or whose tokens exceed `decode.max_input_length` (the
teacher read it cut), keeps its references instead; both are counted. With `keep_references`
the training split's own pairs join the teacher's (a pair equal to the teacher's is kept once).

Then: `s2s train --data jsonl:OUT/train.jsonl,valid=OUT/valid.jsonl,test=OUT/test.jsonl ...`.
"""

from __future__ import annotations

import json
import os
import time

from s2s_keras import pipelines
from s2s_keras.config import ConfigError
from s2s_keras.run_dir import load_runs
from s2s_keras.tasks import get_task

FILES = {"train": "train.jsonl", "valid": "valid.jsonl", "test": "test.jsonl"}
SUMMARY = "distill.json"


def data_spec(output: str) -> str:
    """The `--data` spec of a distilled directory."""
    path = {split: os.path.join(output, name) for split, name in FILES.items()}
    return f"jsonl:{path['train']},valid={path['valid']},test={path['test']}"


def distill(
    teachers: list, output: str, beam_size: int | None = None, keep_references: bool = False
) -> dict:
    """Decodes the teachers' training sources into `output` (see the module doc); returns the
    summary it writes to `distill.json`."""
    if "," in output:
        raise ConfigError(f"s2s distill --output {output!r}: a data path cannot contain a comma")
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise ConfigError(f"s2s distill --output {output!r}: expected a new or empty directory")
    config, model, _ = load_runs(teachers)
    task = get_task(config.task)
    corpus = pipelines.load_corpus(config.data)
    if corpus.valid is None or corpus.test is None:
        raise ConfigError(
            f"s2s distill: the teacher's data ({config.data.source}) has no validation or test "
            "split for the student to be selected and scored on"
        )
    start = time.time()
    train_pairs = list(corpus.train)
    distilled, counts = task.distill(model, config, train_pairs, beam_size)
    if keep_references:
        seen = set(distilled)
        added = [pair for pair in dict.fromkeys(train_pairs) if pair not in seen]
        distilled += added
        counts["references_added"] = len(added)
    seconds = time.time() - start
    os.makedirs(output, exist_ok=True)
    for split, pairs in (("train", distilled), ("valid", corpus.valid), ("test", corpus.test)):
        with open(os.path.join(output, FILES[split]), "w", encoding="utf-8") as handle:
            for source, target in pairs:
                handle.write(json.dumps({"source": source, "target": target}) + "\n")
    summary = {
        "teachers": list(teachers),
        "data": config.data.source,
        "beam_size": config.decode.beam_size if beam_size is None else beam_size,
        "keep_references": keep_references,
        "train_pairs": len(train_pairs),
        **counts,
        "train_lines": len(distilled),
        "valid_pairs": len(corpus.valid),
        "test_pairs": len(corpus.test),
        "decode_seconds": seconds,
        "student_data": data_spec(output),
    }
    with open(os.path.join(output, SUMMARY), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    return summary
