"""Compression quality before any training, and the ablations of the visual path: on a validation split.

    python benchmarks/bench_compression.py --data runs/synth/val.jsonl --out benchmarks/results/compression.json

The model scores each item's reference chain of thought (teacher-forced, with the blind pass for
the information-gain scorer); every method then compresses it at each γ (`oracle` too where the
records carry `essential` flags, as vskip-synth's natural CoTs do). Reported per method and γ: VARR
per attribute type (share of the reference CoT's visual words kept, exact by index), the
essential-word recall (share of the words a step needs that are kept), the share of kept words that
are function words, the kept share of tokens, and the forced accuracy (the model handed the
compression after the prompt and asked only for the answer: `generate.forced_correct`; `--no-forced`
skips it); per family, the share of the CoT's tokens no gate at γ below it can drop without losing an
anchor (`room`). The ablations repeat the `visual` and `vskip` gates at γ = 0.5 with the visual path
read otherwise (`score.VisualPath`): over other key layers; at the row that predicted the token
instead of its own; with the max over heads taken before the mean over layers; and the `vskip` union
with its budget split otherwise between the visual and the text ranking (`--union-split`), with
forced accuracy for the union. These choose the defaults, so the script refuses a test split (a file
named test.jsonl, or items whose ids start with "test-"): the test split only reports.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from common import first_per_task, model_arguments

from vskip.compress import compress_records
from vskip.errors import BadInput
from vskip.generate import forced_correct
from vskip.models import load_model
from vskip.prompts import bare_word
from vskip.records import read_records
from vskip.report.tables import format_table
from vskip.score import default_key_layers, score_records
from vskip.settings import VISUAL_AGGREGATIONS, VISUAL_ROWS, VisualPath

FUNCTION_WORDS = frozenset(
    "a an the is are was were be of at on in to and or it its there that this then so as by with "
    "which what i see makes make left right above below other objects object costs cost line row column".split()
)


def varr_from_mask(
    visual_words: Sequence[Mapping[str, Any]], keep: Sequence[bool]
) -> dict[str, tuple[int, int]]:
    """{type: (kept, total)} for a compressed CoT given by a keep mask over the reference CoT's words
    (`metrics.visual_word_retention` reads them from a CoT's text instead)."""
    retained: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in visual_words:
        index = entry["index"]
        if not 0 <= index < len(keep):
            raise BadInput(
                f"visual word {entry['word']!r} has index {index}, but the CoT has {len(keep)} words"
            )
        counts = retained[entry["type"]]
        counts[0] += bool(keep[index])
        counts[1] += 1
    return {kind: (kept, total) for kind, (kept, total) in retained.items()}


def quality(compressed: list[dict]) -> list[dict]:
    """One row per method and γ: VARR per type, overall, function-word share, kept token share."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for record in compressed:
        groups.setdefault((record["method"], record["ratio"]), []).append(record)
    rows = []
    for (method, ratio), records in sorted(groups.items(), key=lambda g: (-g[0][1], g[0][0])):
        kept, total, function, kept_words, kept_tokens, tokens = Counter(), Counter(), 0, 0, 0, 0
        essential_kept = essential_total = 0
        for record in records:
            for keep, essential in zip(record["keep"], record.get("essential") or []):
                essential_kept += keep and essential
                essential_total += essential
            for kind, (k, t) in varr_from_mask(record["visual_words"], record["keep"]).items():
                kept[kind] += k
                total[kind] += t
            visual = {entry["index"] for entry in record["visual_words"]}
            for index, (word, keep) in enumerate(zip(record["words"], record["keep"])):
                if keep:
                    kept_words += 1
                    function += index not in visual and bare_word(word) in FUNCTION_WORDS
            kept_tokens += sum(n for n, keep in zip(record["word_tokens"], record["keep"]) if keep)
            tokens += sum(record["word_tokens"])
        rows.append({
            "method": method,
            "ratio": ratio,
            **{f"varr_{kind}": kept[kind] / total[kind] for kind in sorted(total)},
            "varr": sum(kept.values()) / sum(total.values()),
            "essential_recall": essential_kept / essential_total if essential_total else None,
            "function_word_share": function / kept_words if kept_words else None,
            "kept_token_share": kept_tokens / tokens,
        })
    return rows


def with_forced_accuracy(rows: list[dict], compressed: list[dict], loaded, base: Path, batch_size: int) -> list[dict]:
    """`rows` (one per method and γ) with the share of `compressed` records the model answers right when handed
    their compression."""
    right = forced_correct(loaded, compressed, base, batch_size=batch_size)
    forced: dict[tuple[str, float], list[bool]] = {}
    for record, correct in zip(compressed, right, strict=True):
        forced.setdefault((record["method"], record["ratio"]), []).append(correct)
    return [{**row, "forced_accuracy": sum(forced[key]) / len(forced[key])}
            for row in rows for key in [(row["method"], row["ratio"])]]


def room(scored: list[dict]) -> list[dict]:
    """Per family, how much of a CoT a gate could drop and keep every anchor: the share of its tokens in
    visual words and numbers (the counters "(1)", prices, sums), and in every word that is not a
    function word. Above γ, no gate keeps them all."""
    groups: dict[str, list[int]] = {}
    for record in scored:
        visual = {entry["index"] for entry in record["visual_words"]}
        totals = groups.setdefault(record["task"], [0, 0, 0, 0])  # anchors, content, tokens, CoTs
        totals[3] += 1
        for index, (word, tokens) in enumerate(zip(record["words"], record["word_tokens"])):
            bare = bare_word(word)
            totals[0] += tokens * (index in visual or any(ch.isdigit() for ch in word))
            totals[1] += tokens * (index in visual or bare not in FUNCTION_WORDS)
            totals[2] += tokens
    return [{"task": task, "anchor_token_share": anchors / total, "content_token_share": content / total,
             "cot_tokens": total / cots}
            for task, (anchors, content, total, cots) in sorted(groups.items())]


def is_test_split(path: str | Path, records: list[dict]) -> bool:
    """Whether the records are a test split, by the file's name or vskip-synth's ids."""
    return Path(path).stem == "test" or any(str(record["id"]).startswith("test-") for record in records)


def ablation_paths(n_layers: int) -> list[VisualPath]:
    """The visual paths the ablation compares: each single layer, the lower and upper halves and all layers, read
    at each row with the paper's aggregation, then the other aggregation on the default key layers at each row."""
    half = (n_layers + 1) // 2
    layer_sets = [[layer] for layer in range(n_layers)] + [list(range(half)), list(range(n_layers - half, n_layers)),
                                                           list(range(n_layers))]
    default = VisualPath()
    paths = [replace(default, row=row, key_layers=tuple(layers)) for row in VISUAL_ROWS for layers in layer_sets]
    return paths + [VisualPath(row=row, aggregation=aggregation) for row in VISUAL_ROWS
                    for aggregation in VISUAL_AGGREGATIONS if aggregation != default.aggregation]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser)
    parser.add_argument("--data", required=True, help="a validation split (never the test split)")
    parser.add_argument("--per-task", type=int, default=100, help="items per task family")
    parser.add_argument("--ablation-per-task", type=int, default=100)
    parser.add_argument("--union-splits", default="1:1,2:1,3:1,1:2",
                        help="VISUAL:TEXT turns of the vskip union that the ablation compares")
    parser.add_argument("--no-forced", dest="forced", action="store_false", help="skip the forced accuracy")
    parser.add_argument("--out", default="benchmarks/results/compression.json")
    args = parser.parse_args()
    splits = [tuple(int(turns) for turns in split.split(":")) for split in args.union_splits.split(",")]

    records = read_records(args.data)
    if is_test_split(args.data, records):
        parser.error(f"{args.data} is a test split; the ablations choose defaults, so run them on val.jsonl")
    chosen = first_per_task(records, args.per_task)
    loaded = load_model(args.model, device="cpu", dtype=args.dtype)
    base = Path(args.data).parent
    methods = ["truncate", "random", "text", "gain", "visual", "vskip", "dependency", "vskip+dependency"]
    if all(record.get("essential") for record in chosen):
        methods.append("oracle")
    ratios = [0.5, 0.7, 0.9]

    scored = score_records(loaded, chosen, base, blind=True)
    compressed = compress_records(scored, methods, ratios)
    main_rows = quality(compressed)
    if args.forced:
        main_rows = with_forced_accuracy(main_rows, compressed, loaded, base, args.batch_size)
    room_rows = room(scored)
    default = default_key_layers(loaded.family, loaded.model.config)

    subset = first_per_task(records, args.ablation_per_task)
    ablation = []
    for visual in ablation_paths(loaded.model.config.text_config.num_hidden_layers):
        rescored = score_records(loaded, subset, base, visual=visual, progress=False)
        layers = visual.key_layers if visual.key_layers is not None else default
        path = {"key_layers": ",".join(map(str, layers)), "row": visual.row, "aggregation": visual.aggregation}
        visual_rows = quality(compress_records(rescored, ["visual"], [0.5]))
        ablation += [{**path, "union_split": None, **row} for row in visual_rows]
        for split in splits:
            union = compress_records(rescored, ["vskip"], [0.5], turns={"vskip": split})
            rows = quality(union)
            if args.forced and (list(layers), visual.row, visual.aggregation) == (default, VisualPath().row,
                                                                                  VisualPath().aggregation):
                rows = with_forced_accuracy(rows, union, loaded, base, args.batch_size)
            ablation += [{**path, "union_split": f"{split[0]}:{split[1]}", **row} for row in rows]

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "precision": loaded.precision, "data": args.data,
                                          "items": len(chosen), "ablation_items": len(subset),
                                          "default_visual_path": {**asdict(VisualPath()), "key_layers": default},
                                          "quality": main_rows, "room": room_rows,
                                          "ablation": ablation}, indent=2) + "\n")
    print(format_table(main_rows, list(main_rows[0])))
    print(format_table(room_rows, list(room_rows[0])))
    print(format_table(ablation, list(ablation[0])))


if __name__ == "__main__":
    main()
