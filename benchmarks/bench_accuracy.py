"""Accuracy of a model on a vskip-synth split, with and without a chain of thought.

    python benchmarks/bench_accuracy.py --data runs/synth/test.jsonl --out benchmarks/results/accuracy.json

Writes per-family accuracy in `cot` and `direct` modes, the CoT's gain, POPE's yes-ratio and
CoT length, and prints them as a Markdown table. On vskip-synth items (with their scene or receipt)
it also checks the generated CoTs' claims against the image (`synth.attribute_words`): the share
true, for claims that name a place ("at row 2 column 3", "on line 1") and for the rest; and splits
CoT accuracy by whether the image breaks a language prior (`synth.contradicts_prior`: a star not
yellow, a circle not red, a price not the item's usual one); and by whether the CoT's premises, its
claims before the concluding sentence, are all true (`synth.premises_true`), which tells wrong
evidence from a wrong step taken from right evidence.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import first_per_task, model_arguments

from vskip.generate import generate
from vskip.metrics import summarize
from vskip.models import load_model
from vskip.records import read_records
from vskip.report.tables import format_table
from vskip.synth import attribute_words, contradicts_prior, premises_true


def grounding(items: list[dict]) -> dict:
    """Claims per item and the share true (placed claims and the rest); accuracy with and against the prior,
    and where the premises are true."""
    placed, plain = [], []
    for item in items:
        for mention in attribute_words(item, item.get("cot") or ""):
            (placed if " row " in f" {mention.claim} " or " line " in f" {mention.claim} " else plain).append(
                mention.true)
    broken = [contradicts_prior(item) for item in items]
    against = [item["correct"] for item, prior_broken in zip(items, broken) if prior_broken]
    with_prior = [item["correct"] for item, prior_broken in zip(items, broken) if not prior_broken]
    premised = [item["correct"] for item in items if premises_true(item, item.get("cot") or "")]

    def share(values: list) -> float | None:
        return sum(values) / len(values) if values else None

    return {
        "claims_per_item": (len(placed) + len(plain)) / len(items),
        "placed_claims_true": share(placed),
        "other_claims_true": share(plain),
        "prior_broken_share": len(against) / len(items),
        "cot_where_prior_broken": share(against),
        "cot_where_prior_holds": share(with_prior),
        "premises_true": len(premised) / len(items),
        "cot_where_premises_true": share(premised),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser)
    parser.add_argument("--device", help="default: a GPU when there is one, else the CPU")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="benchmarks/results/accuracy.json")
    parser.add_argument("--per-task", type=int, help="records per family (default: all)")
    args = parser.parse_args()

    records = first_per_task(read_records(args.data), args.per_task)
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    work = Path(args.out).with_suffix("")
    summaries, seconds, outputs = {}, {}, {}
    for mode in ("cot", "direct"):
        start = time.perf_counter()
        results = generate(loaded, records, Path(args.data).parent, work / f"{mode}.jsonl", mode=mode,
                           batch_size=args.batch_size)
        seconds[mode] = time.perf_counter() - start
        summaries[mode], outputs[mode] = summarize(results), results
    rows = []
    for task in [*sorted(summaries["cot"]["tasks"]), "overall"]:
        block = {mode: (summaries[mode]["tasks"][task] if task != "overall" else summaries[mode]["overall"])
                 for mode in summaries}
        rows.append({
            "task": task,
            "n": block["cot"]["n"],
            "cot": block["cot"]["accuracy"],
            "direct": block["direct"]["accuracy"],
            "cot_gain_points": 100 * (block["cot"]["accuracy"] - block["direct"]["accuracy"]),
            "cot_tokens_mean": block["cot"]["cot_tokens_mean"],
            "pope_yes_ratio_cot": block["cot"]["pope_yes_ratio"],
        })
        if all("scene" in item or "document" in item for item in outputs["cot"]):
            rows[-1].update(grounding([item for item in outputs["cot"] if task in ("overall", item["task"])]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "precision": loaded.precision, "data": args.data,
                                          "rows": rows, "seconds": seconds}, indent=2) + "\n")
    print(format_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
