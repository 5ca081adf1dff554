"""Compression quality before any training, and the key-layer ablation.

    python benchmarks/bench_compression.py --data runs/synth/test.jsonl --out benchmarks/results/compression.json

The model scores each item's reference chain of thought (teacher-forced, with the blind pass for
the information-gain scorer); every method then compresses it at each γ. Reported per method and
γ: VARR per attribute type (share of the reference CoT's visual words kept, exact by index), the
share of kept words that are function words, and the kept share of tokens. The ablation repeats
the `visual` and `vskip` gates with the visual path averaged over different key layers.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from vskip.compress import compress_records
from vskip.metrics import varr_from_mask
from vskip.models import load_model
from vskip.precision import DTYPES
from vskip.records import read_records
from vskip.report import format_table
from vskip.score import default_key_layers, score_records

FUNCTION_WORDS = frozenset(
    "a an the is are was were be of at on in to and or it its there that this then so as by with "
    "which what i see makes make left right above below other objects object costs cost line row column".split()
)


def quality(compressed: list[dict]) -> list[dict]:
    """One row per method and γ: VARR per type, overall, function-word share, kept token share."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for record in compressed:
        groups.setdefault((record["method"], record["ratio"]), []).append(record)
    rows = []
    for (method, ratio), records in sorted(groups.items(), key=lambda g: (-g[0][1], g[0][0])):
        kept, total, function, kept_words, kept_tokens, tokens = Counter(), Counter(), 0, 0, 0, 0
        for record in records:
            for kind, (k, t) in varr_from_mask(record["visual_words"], record["keep"]).items():
                kept[kind] += k
                total[kind] += t
            visual = {entry["index"] for entry in record["visual_words"]}
            for index, (word, keep) in enumerate(zip(record["words"], record["keep"])):
                if keep:
                    kept_words += 1
                    function += index not in visual and word.strip(".,?!").lower() in FUNCTION_WORDS
            kept_tokens += sum(n for n, keep in zip(record["word_tokens"], record["keep"]) if keep)
            tokens += sum(record["word_tokens"])
        rows.append({
            "method": method,
            "ratio": ratio,
            **{f"varr_{kind}": kept[kind] / total[kind] for kind in sorted(total)},
            "varr": sum(kept.values()) / sum(total.values()),
            "function_word_share": function / kept_words if kept_words else None,
            "kept_token_share": kept_tokens / tokens,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vskip-tiny")
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="see vskip.precision")
    parser.add_argument("--data", required=True)
    parser.add_argument("--per-task", type=int, default=300, help="items per task family")
    parser.add_argument("--ablation-per-task", type=int, default=100)
    parser.add_argument("--out", default="benchmarks/results/compression.json")
    args = parser.parse_args()

    records = read_records(args.data)
    by_task: dict[str, list[dict]] = {}
    for record in records:
        by_task.setdefault(record["task"], []).append(record)
    chosen = [r for task in sorted(by_task) for r in by_task[task][: args.per_task]]
    loaded = load_model(args.model, device="cpu", dtype=args.dtype)
    base = Path(args.data).parent
    methods = ["truncate", "random", "text", "gain", "visual", "vskip"]
    ratios = [0.5, 0.7, 0.9]

    scored = score_records(loaded, chosen, base, blind=True)
    main_rows = quality(compress_records(scored, methods, ratios))
    default = default_key_layers(loaded.adapter, loaded.model.config)

    n_layers = loaded.model.config.text_config.num_hidden_layers
    half = (n_layers + 1) // 2
    lower, upper = list(range(half)), list(range(n_layers - half, n_layers))
    candidates = [[layer] for layer in range(n_layers)] + [lower, upper, list(range(n_layers))]
    subset = [r for task in sorted(by_task) for r in by_task[task][: args.ablation_per_task]]
    ablation = []
    for layers in candidates:
        rows = quality(compress_records(score_records(loaded, subset, base, key_layers=layers, progress=False),
                                        ["visual", "vskip"], [0.5]))
        for row in rows:
            ablation.append({"key_layers": ",".join(map(str, layers)), **row})

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "precision": loaded.precision, "data": args.data,
                                          "items": len(chosen),
                                          "default_key_layers": default, "quality": main_rows,
                                          "key_layer_ablation": ablation}, indent=2) + "\n")
    print(format_table(main_rows, list(main_rows[0])))
    print(format_table(ablation, list(ablation[0])))


if __name__ == "__main__":
    main()
