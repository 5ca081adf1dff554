"""Students side by side on one split, from the files `vskip evaluate` wrote: accuracy overall and per family, VARR
and hallucination, one row per result file.

    python benchmarks/eval_table.py "vskip 2k=runs/r30/test/vskip-0.5.json" "text 2k=runs/r30/test/text-0.5.json"

Each argument is NAME=PATH (PATH alone: the file's name without `.json`); rows keep the order given. With
`--out`, the rows are also written there as JSON (the figures a page quotes, kept beside the command).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vskip.report.tables import format_table
from vskip.synth import FAMILIES as SYNTH_FAMILIES

FAMILIES = tuple(sorted(SYNTH_FAMILIES))  # vskip-synth's families, in the order of bench_writing's table


def row(name: str, result: dict) -> dict:
    """One table row of a `vskip evaluate` result: its γ, accuracy, each family's accuracy, VARR, hallucination."""
    tasks = result.get("tasks", {})
    per_family = " / ".join(f"{tasks[task]['accuracy']:.3f}" if task in tasks else "–" for task in FAMILIES)
    return {"student": name, "ratio": result.get("ratio") or 1.0, "n": result["n"], "accuracy": result["accuracy"],
            "families": per_family, "varr": result.get("varr"), "hallucination_rate": result.get("hallucination_rate")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="NAME=PATH of a `vskip evaluate` result, or PATH")
    parser.add_argument("--out", type=Path, help="also write the rows here as JSON")
    args = parser.parse_args()
    rows = []
    for argument in args.results:
        name, _, path = argument.rpartition("=")
        rows.append(row(name or Path(path).stem, json.loads(Path(path).read_text())))
    columns = ["student", "ratio", "n", "accuracy", "families", "varr", "hallucination_rate"]
    print(format_table(rows, columns, labels={"student": "student", "ratio": "γ", "n": "items",
                                              "accuracy": "accuracy", "families": " / ".join(FAMILIES),
                                              "varr": "VARR", "hallucination_rate": "hallucination"}))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
