"""A distillation step on a float32 base against the same step on a bfloat16 base (`vskip distill --dtype`).

    python benchmarks/bench_train_precision.py --compressed runs/demo/compressed.jsonl \
        --out benchmarks/results/train_precision.json

`distill` trains its LoRA adapter in float32 on a base of either precision (`lora.lora_model`). Both students
start from the same adapter weights and take the same `--steps` batches, drawn as `distill` draws them from
`--compressed`'s `--method` records (every γ alike), one step of each in turn, alternating which goes first.
Reported: each one's median step time and float32 / bfloat16, the ratio of the medians with its bootstrap
interval, and the mean absolute difference of the two students' losses over the steps. On a CPU, bfloat16
pays where the CPU multiplies in it natively (AVX512-BF16 or AMX); elsewhere it can be slower.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from common import alternating_steps, distill_student, drawn_batches, model_arguments

from vskip.distill import pair_sampler, ratio_shares, training_pairs
from vskip.latency import paired_speedup
from vskip.models import load_model
from vskip.records import iter_jsonl

PRECISIONS = ("float32", "bfloat16")


def paired_steps(model_path: str, pairs: list, data_dir: str | Path, batch_size: int, steps: int) -> dict:
    """`steps` distillation steps of a float32-based and a bfloat16-based student of `model_path` on the same
    batches of `pairs` (`distill.training_pairs`), one of each in turn after a warm-up step: see the module."""
    draw = pair_sampler(pairs, ratio_shares({ratio for _, ratio, _ in pairs}, ()))
    bases = {precision: load_model(model_path, dtype=precision) for precision in PRECISIONS}
    students = {precision: distill_student(base) for precision, base in bases.items()}
    batches = drawn_batches(bases["float32"].processor, draw, data_dir, batch_size, steps + 1)
    seconds, losses = alternating_steps(students, dict.fromkeys(PRECISIONS, batches))
    return {
        "model": model_path, "batch_size": batch_size, "steps": steps, "threads": torch.get_num_threads(),
        "median_step_s": {precision: statistics.median(seconds[precision].values()) for precision in PRECISIONS},
        "float32_over_bfloat16": paired_speedup(seconds["float32"], seconds["bfloat16"]),
        "mean_loss": {precision: statistics.fmean(losses[precision]) for precision in PRECISIONS},
        "mean_abs_loss_difference": statistics.fmean(
            abs(a - b) for a, b in zip(losses["float32"], losses["bfloat16"], strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, dtype=False)
    parser.add_argument("--compressed", required=True, help="records `vskip compress` wrote")
    parser.add_argument("--method", default="vskip")
    parser.add_argument("--steps", type=int, default=24, help="timed steps of each precision")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    pairs = training_pairs(list(iter_jsonl(args.compressed)), args.method)
    timed = paired_steps(args.model, pairs, Path(args.compressed).parent, args.batch_size, args.steps)
    result = {"method": args.method, **timed}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
