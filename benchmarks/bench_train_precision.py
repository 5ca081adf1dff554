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
import random
import statistics
import time
from pathlib import Path

import torch
from common import model_arguments

from vskip.distill import DEFAULT_DISTILL, pair_sampler, ratio_shares, training_pairs
from vskip.encoding import record_example
from vskip.latency import paired_speedup
from vskip.lora import lora_model
from vskip.models import load_model
from vskip.records import iter_jsonl
from vskip.training import batch_inputs, train_step

PRECISIONS = ("float32", "bfloat16")


def paired_steps(model_path: str, pairs: list, data_dir: str | Path, batch_size: int, steps: int) -> dict:
    """`steps` distillation steps of a float32-based and a bfloat16-based student of `model_path` on the same
    batches of `pairs` (`distill.training_pairs`), one of each in turn after a warm-up step: see the module."""
    draw = pair_sampler(pairs, ratio_shares({ratio for _, ratio, _ in pairs}, ()))
    students = {}
    for precision in PRECISIONS:
        loaded = load_model(model_path, dtype=precision)
        torch.manual_seed(0)
        model = lora_model(loaded, DEFAULT_DISTILL.lora, gradient_checkpointing=False).train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=DEFAULT_DISTILL.training.learning_rate)
        students[precision] = (model, trainable, optimizer)
    processor, rng = loaded.processor, random.Random(0)
    batches = [batch_inputs(processor, [record_example(processor, record, data_dir, ratio=ratio, reply=reply)
                                        for record, ratio, reply in draw(rng, batch_size, 0.0)])
               for _ in range(steps + 1)]

    seconds: dict[str, dict[int, float]] = {precision: {} for precision in PRECISIONS}
    losses: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
    for step, batch in enumerate(batches):
        for precision in PRECISIONS if step % 2 else PRECISIONS[::-1]:
            model, trainable, optimizer = students[precision]
            started = time.perf_counter()
            loss = train_step(model, batch, trainable, optimizer, DEFAULT_DISTILL.training.max_grad_norm)
            if step:  # step 0 is the warm-up
                seconds[precision][step] = time.perf_counter() - started
                losses[precision].append(loss)
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
