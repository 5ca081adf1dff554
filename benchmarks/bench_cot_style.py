"""How vskip-synth's reference CoTs spend their words, in each CoT style, beside real models' (DESIGN §7).

    python benchmarks/bench_cot_style.py --out benchmarks/results/cot_style.json
    python benchmarks/bench_cot_style.py --data runs/synth/val.jsonl --out runs/cot_style.json

By default it builds `--per-family` items (1,000) of each family in memory, the items `vskip synth
--seed SEED` writes in `--split`, and writes each in both styles; given `--data`, it reads the records
of a JSONL file, in whichever style they are. Per family and style: the mean share of a CoT's words
in each role, in % (A anchors: the visual words; R restated from the question; S scaffolding;
K knowledge or arithmetic; the mean of per-CoT shares, as DESIGN §7 counts real CoTs) beside real
models' (`synth.style.REAL_SHARES`), the mean words per CoT and the mean share of essential words
(those of the terse twin). A terse record carries no roles, so read from a file its shares are blank.
Per family and dressing slot, for built items only (records do not name their slots): how many of
the pool's variants were drawn, and how often the most frequent one and the three most frequent
were (real models' templates: ~30 % and ~60 %).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from vskip.records import read_records
from vskip.report.tables import format_table
from vskip.synth import COT_STYLES, FAMILIES, SPLITS
from vskip.synth.build import split_items
from vskip.synth.style import POOLS, REAL_SHARES, draws, dress
from vskip.synth.words import ROLES

Item = dict  # {"task", "style", "roles" (str or None), "essential" (list[bool]), "drawn" ([(slot, variant)] or None)}


def built(per_family: int, seed: int, split: str) -> Iterator[Item]:
    """Every item `vskip synth --seed SEED` writes in `split` (the first `per_family` of each family), in both
    styles, with the variants its natural CoT drew."""
    for family in FAMILIES:
        for _, record, _, dressing in split_items(family, split, per_family, seed):
            terse = record["cot"]
            drawn = draws(terse, dressing)
            natural = dress(terse, drawn)
            yield {"task": family, "style": "terse", "roles": "".join(terse.roles), "essential": terse.essential,
                   "drawn": []}
            yield {"task": family, "style": "natural", "roles": "".join(natural.roles),
                   "essential": natural.essential, "drawn": [(slot, variant) for _, slot, variant in drawn]}


def read(path: str | Path) -> Iterator[Item]:
    """The records of a JSONL file: natural where they carry `essential`, else terse (no roles)."""
    for record in read_records(path, required=("task", "cot")):
        natural = "essential" in record
        yield {"task": record["task"], "style": "natural" if natural else "terse", "roles": record.get("roles"),
               "essential": record["essential"] if natural else [True] * len(record["cot"].split()), "drawn": None}


def shares(items: Iterable[Item]) -> list[dict]:
    """One row per family and style: CoTs, mean words, mean essential share, mean role shares (%) and the real ones."""
    groups: dict[tuple[str, str], list[Item]] = defaultdict(list)
    for item in items:
        groups[item["task"], item["style"]].append(item)
    rows = []
    for family in FAMILIES:
        for style in COT_STYLES:
            group = groups.get((family, style))
            if not group:
                continue
            row = {"family": family, "style": style, "cots": len(group),
                   "words": round(statistics.mean(len(item["essential"]) for item in group), 1),
                   "essential": round(statistics.mean(sum(i["essential"]) / len(i["essential"]) for i in group), 3)}
            for role in ROLES:
                if all(item["roles"] for item in group):
                    share = statistics.mean(item["roles"].count(role) / len(item["roles"]) for item in group)
                    row[role] = round(100 * share, 1)
                else:
                    row[role] = None
                row[f"{role} real"] = REAL_SHARES[family][role]
            rows.append(row)
    return rows


def variety(items: Iterable[Item]) -> list[dict]:
    """One row per family and dressing slot: draws, variants drawn of the pool's, top-1 and top-3 frequencies."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for item in items:
        for slot, variant in item["drawn"] or []:
            counts[item["task"], slot][variant] += 1
    rows = []
    for family in FAMILIES:
        for slot in POOLS:
            drawn = counts.get((family, slot))
            if not drawn:
                continue
            total, top = sum(drawn.values()), [n for _, n in drawn.most_common(3)]
            rows.append({"family": family, "slot": slot, "draws": total, "variants": len(drawn),
                         "pool": len(POOLS[slot]), "top1": round(top[0] / total, 3),
                         "top3": round(sum(top) / total, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a JSONL of vskip-synth records (default: build the items in memory)")
    parser.add_argument("--per-family", type=int, default=1000, help="items per family to build")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--out", default="benchmarks/results/cot_style.json")
    args = parser.parse_args()

    items = list(read(args.data) if args.data else built(args.per_family, args.seed, args.split))
    source = args.data or f"built: seed {args.seed}, {args.split} split, {args.per_family} items per family"
    report = {"source": source, "real_shares": REAL_SHARES, "rows": shares(items), "slots": variety(items)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for rows in (report["rows"], report["slots"]):
        if rows:
            print(format_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
