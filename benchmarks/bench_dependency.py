"""Does the dependency path find the words the answer needs? Each path's word scores against leave-one-out.

    python benchmarks/bench_dependency.py --data runs/synth/val.jsonl --per-task 25 \
        --out benchmarks/results/dependency.json

For each item's reference chain of thought, the model's surprisal of the answer, teacher-forced, with the
whole CoT and with each one of its words removed: the word's *need* is how much more surprising the
answer gets without it (nats). Each path's word scores (text, visual, dependency; `vskip score`'s) are
then compared with the need, per family: the Spearman correlation over each CoT's words (averaged over
CoTs), and the recall of the CoT's most needed quarter of words in the path's top quarter. A path that
finds what the answer is computed from ranks the needed words first. Choose on a validation split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import first_per_task, model_arguments, teacher_forced

from vskip.encoding import word_spans
from vskip.models import load_model
from vskip.prompts import require_answer, response
from vskip.records import read_records
from vskip.report.tables import format_table
from vskip.score import answer_token_indices, score_batch, score_records

PATHS = {"text": "word_text_score", "visual": "word_visual_score", "dependency": "word_dependency_score"}


def answer_surprisal(loaded, record: dict, cots: list[str], base: Path, batch_size: int) -> list[float]:
    """−log p(answer | image, question, cot), teacher-forced, for each of `cots` written for `record`."""
    processor, answer = loaded.processor, require_answer(record)
    out = []
    for _, replies, encoded in teacher_forced(loaded, [(record, response(cot, answer)) for cot in cots], base,
                                              batch_size):
        positions = []
        for reply, span in zip(replies, encoded.reply_spans, strict=True):
            offsets = processor.tokenizer(reply, add_special_tokens=False, return_offsets_mapping=True)
            positions.append([span.start + i for i in answer_token_indices(offsets["offset_mapping"], reply, answer)])
        scores = score_batch(loaded.model, loaded.family, encoded.inputs, positions, visual=None)
        out += [sum(values) for values in scores.surprisal]
    return out


def word_need(loaded, record: dict, base: Path, batch_size: int) -> list[float]:
    """Per CoT word: the answer's surprisal without the word minus with the whole CoT."""
    cot = record["cot"].strip()
    spans = word_spans(cot)
    without = [(cot[:start] + cot[end:]).replace("  ", " ").strip() for start, end in spans]
    whole, *dropped = answer_surprisal(loaded, record, [cot, *without], base, batch_size)
    return [value - whole for value in dropped]


def ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share their mean rank), for Spearman's correlation."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float | None:
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    mean_a, mean_b = sum(ra) / n, sum(rb) / n
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(ra, rb))
    var_a, var_b = sum((x - mean_a) ** 2 for x in ra), sum((y - mean_b) ** 2 for y in rb)
    return cov / (var_a * var_b) ** 0.5 if var_a and var_b else None


def top_quarter_recall(scores: list[float], need: list[float]) -> float:
    k = max(1, len(need) // 4)
    needed = set(sorted(range(len(need)), key=lambda i: -need[i])[:k])
    found = set(sorted(range(len(scores)), key=lambda i: -scores[i])[:k])
    return len(needed & found) / k


def summarise(items: list[dict]) -> list[dict]:
    """One row per family and path: mean per-CoT Spearman correlation with the need, top-quarter recall."""
    rows = []
    for task in sorted({item["task"] for item in items}) + ["all"]:
        chosen = [item for item in items if task in ("all", item["task"])]
        for path in PATHS:
            correlations = [c for item in chosen if (c := spearman(item[path], item["need"])) is not None]
            rows.append({
                "task": task, "path": path, "items": len(chosen),
                "spearman": sum(correlations) / len(correlations) if correlations else None,
                "top_quarter_recall": sum(top_quarter_recall(item[path], item["need"]) for item in chosen)
                / len(chosen),
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser)
    parser.add_argument("--data", required=True, help="a validation split")
    parser.add_argument("--per-task", type=int, default=25)
    parser.add_argument("--out", default="benchmarks/results/dependency.json")
    args = parser.parse_args()

    loaded = load_model(args.model, device="cpu", dtype=args.dtype)
    base = Path(args.data).parent
    records = first_per_task(read_records(args.data), args.per_task)
    items = [{"id": record["id"], "task": record["task"], "need": word_need(loaded, record, base, args.batch_size),
              **{path: record[field] for path, field in PATHS.items()}}
             for record in score_records(loaded, records, base)]
    rows = summarise(items)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "data": args.data, "rows": rows, "items": items},
                                         indent=1) + "\n")
    print(format_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
