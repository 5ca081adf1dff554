"""Distillation steps on batches drawn at random against batches grouped by length (`vskip distill --length-groups`).

    python benchmarks/bench_train_batching.py --compressed runs/demo/compressed.jsonl --dtype bfloat16 \
        --groups 8 --out benchmarks/results/train_batching.json

Two like students (the same adapter weights) each take `--steps` batches drawn as `distill` draws them from
`--compressed`'s `--method` records (every γ alike): one student's drawn at random, the other's with `--groups`
length groups, one step of each in turn, alternating which goes first. Reported for each: the share of its batches'
positions that are padding, its mean tokens per batch and its mean step time; and random ÷ grouped, the ratio of
the mean step times (the training's time is their sum) with its bootstrap interval.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from common import alternating_steps, distill_student, drawn_batches, model_arguments

from vskip.distill import pair_lengths, pair_sampler, ratio_shares, training_pairs
from vskip.latency import paired_speedup
from vskip.models import load_model
from vskip.records import iter_jsonl


def paired_steps(model_path: str, pairs: list, data_dir: str | Path, *, dtype: str, batch_size: int, steps: int,
                 groups: int) -> dict:
    """`steps` distillation steps of two like students of `model_path` on `pairs` (`distill.training_pairs`), one
    on batches drawn at random, one on batches of `groups` length groups, one of each in turn: see the module."""
    loaded = load_model(model_path, dtype=dtype)
    shares = ratio_shares({ratio for _, ratio, _ in pairs}, ())
    lengths = pair_lengths(loaded.processor.tokenizer, pairs)
    draws = {"random": pair_sampler(pairs, shares), "grouped": pair_sampler(pairs, shares, 0.0, lengths, groups)}
    batches = {name: drawn_batches(loaded.processor, draw, data_dir, batch_size, steps + 1)
               for name, draw in draws.items()}
    students = {name: distill_student(load_model(model_path, dtype=dtype)) for name in draws}
    seconds, _ = alternating_steps(students, batches)

    def padding(masks: list[torch.Tensor]) -> float:
        return 1 - sum(int(mask.sum()) for mask in masks) / sum(mask.numel() for mask in masks)

    return {
        "model": model_path, "dtype": loaded.precision, "batch_size": batch_size, "steps": steps, "groups": groups,
        "threads": torch.get_num_threads(),
        "padding_share": {name: padding([batch["attention_mask"] for batch in batches[name][1:]]) for name in draws},
        "mean_tokens_per_batch": {name: statistics.fmean(batch["attention_mask"].numel() for batch in batches[name][1:])
                                  for name in draws},
        "mean_step_s": {name: statistics.fmean(seconds[name].values()) for name in draws},
        "random_over_grouped": paired_speedup(seconds["random"], seconds["grouped"], center=statistics.fmean),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser)
    parser.add_argument("--compressed", required=True, help="records `vskip compress` wrote")
    parser.add_argument("--method", default="vskip")
    parser.add_argument("--groups", type=int, default=8, help="length groups of the grouped student's batches")
    parser.add_argument("--steps", type=int, default=48, help="timed steps of each student")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    pairs = training_pairs(list(iter_jsonl(args.compressed)), args.method)
    timed = paired_steps(args.model, pairs, Path(args.compressed).parent, dtype=args.dtype,
                         batch_size=args.batch_size, steps=args.steps, groups=args.groups)
    result = {"method": args.method, **timed}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
