"""How far two scorings of the same CoTs differ: in their word scores and in the keep masks they gate to.

    python benchmarks/compare_masks.py BEFORE.jsonl AFTER.jsonl [--methods vskip,text,visual]
        [--ratios 0.5,0.7,0.9] [--out benchmarks/results/masks.json]

BEFORE and AFTER are `vskip score` outputs of the same records (by id), e.g. the same CoTs scored by two
commits, two precisions or two attention kernels. For each method and γ: the share of word decisions that
are the same, and the records whose masks differ at all; beside them the largest absolute difference of
each word score.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vskip.compress import compress_records
from vskip.records import read_records

SCORES = ("word_text_score", "word_visual_score")


def compare(before: list[dict], after: list[dict], methods: list[str], ratios: list[float]) -> dict:
    """Per method and γ, how many word decisions the two scorings share; per word score, the largest gap."""
    by_id = {record["id"]: record for record in after}
    missing = [record["id"] for record in before if record["id"] not in by_id]
    if missing or len(by_id) != len(before):
        raise SystemExit(f"the files score different records ({len(before)} and {len(after)}; e.g. {missing[:3]})")
    after = [by_id[record["id"]] for record in before]
    gaps = {
        name: max(abs(a - b) for x, y in zip(before, after) for a, b in zip(x[name], y[name], strict=True))
        for name in SCORES
    }
    masks = []
    for one, other in zip(compress_records(before, methods, ratios), compress_records(after, methods, ratios)):
        same = sum(a == b for a, b in zip(one["keep"], other["keep"], strict=True))
        masks.append((one["method"], one["ratio"], same, len(one["keep"])))
    table = []
    for method in methods:
        for ratio in ratios:
            rows = [(same, n) for m, r, same, n in masks if (m, r) == (method, ratio)]
            table.append(
                {
                    "method": method,
                    "ratio": ratio,
                    "same_decisions": sum(same for same, _ in rows) / sum(n for _, n in rows),
                    "records_with_a_change": sum(same != n for same, n in rows),
                }
            )
    return {"records": len(before), "max_score_gap": gaps, "masks": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--methods", default="vskip,text,visual")
    parser.add_argument("--ratios", default="0.5,0.7,0.9")
    parser.add_argument("--out")
    args = parser.parse_args()
    result = compare(
        read_records(args.before),
        read_records(args.after),
        args.methods.split(","),
        [float(ratio) for ratio in args.ratios.split(",")],
    )
    result["files"] = [args.before, args.after]
    print(f"{result['records']} records; largest word-score gap: "
          + ", ".join(f"{name} {gap:.2e}" for name, gap in result["max_score_gap"].items()))
    for row in result["masks"]:
        print(f"{row['method']:8s} γ={row['ratio']:.1f}  same decisions {row['same_decisions']:.4%}  "
              f"records changed {row['records_with_a_change']}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
