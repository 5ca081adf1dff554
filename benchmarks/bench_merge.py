"""Batch-1 latency of a merged student (`vskip merge`) against its adapter as `vskip evaluate` loads it.

    python benchmarks/bench_merge.py --items 24 --out benchmarks/results/merge.json

`vskip evaluate --adapter` merges the adapter into its base in memory (`lora.load_with_adapter`); `vskip merge`
saves that merged model as a directory, which then loads as any model. Both are timed as `evaluate` times a
model beside its baseline (`evaluate.timed_generation`: the same seeded sample of vskip-synth validation items,
greedy at γ = `--ratio`, alternating which goes first, inputs prepared off the clock). Reported: each one's
median latency, and merged / adapter, the ratio of the medians, with its bootstrap interval. The student is
`--adapter`, or one distilled here from `--model` in `--steps` steps on vskip-synth's reference CoTs,
scored by the model and compressed by the vskip gate at γ = `--ratio`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from common import model_arguments

from vskip import compress_records, distill, merge_student, score_records
from vskip.distill import DEFAULT_DISTILL
from vskip.evaluate import EvalSettings, timed_generation
from vskip.generate import generation_runner
from vskip.latency import paired_speedup
from vskip.lora import load_with_adapter
from vskip.models import load_model
from vskip.records import read_records
from vskip.synth import build


def distilled_student(args, synth: dict[str, Path], work: Path) -> Path:
    """A student of `args.model`: `args.steps` steps on the training split's reference CoTs at γ 1 and `args.ratio`."""
    train = read_records(synth["train"])
    scored = score_records(load_model(args.model, dtype=args.dtype), train, synth["train"].parent, progress=False)
    settings = replace(DEFAULT_DISTILL, training=replace(DEFAULT_DISTILL.training, steps=args.steps))
    return distill(args.model, compress_records(scored, ["vskip"], [args.ratio]), synth["train"].parent,
                   work / "student", settings=settings, dtype=args.dtype)


def measure(args, work: Path) -> dict:
    # Four families: `items` validation items (rounded up), and four times as many to distil from, if needed.
    per_family = -(-args.items // 4)
    synth = build(work / "synth", seed=0, n_train=0 if args.adapter else 4 * per_family, n_val=per_family, n_test=0,
                  progress=False)
    adapter = Path(args.adapter) if args.adapter else distilled_student(args, synth, work)
    merged_dir = merge_student(adapter, work / "merged", model=args.model, dtype=args.dtype)
    models = {"adapter": load_with_adapter(args.model, adapter, dtype=args.dtype),
              "merged": load_model(str(merged_dir), dtype=args.dtype)}
    base = synth["val"].parent
    runners = {name: generation_runner(loaded, base, "cot", ratio=args.ratio, max_new_tokens=args.max_new_tokens)
               for name, loaded in models.items()}
    settings = EvalSettings(ratio=args.ratio, latency_items=args.items, max_new_tokens=args.max_new_tokens)
    times = timed_generation(runners, read_records(synth["val"]), settings)
    # paired_speedup divides its first runner's median by its second's: here merged / adapter.
    ratio = paired_speedup(times["merged"], times["adapter"])
    return {
        "model": args.model,
        "adapter": args.adapter or f"distilled here, {args.steps} steps",
        "precision": models["merged"].precision,
        "device": str(models["merged"].model.device),
        "ratio": args.ratio,
        "max_new_tokens": args.max_new_tokens,
        "items": len(times["merged"]),
        "median_latency_s": {name: statistics.median(seconds.values()) for name, seconds in times.items()},
        "merged_over_adapter": ratio["speedup"],
        "merged_over_adapter_interval": [ratio["speedup_low"], ratio["speedup_high"]],
        "latency_s": times,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, model_help="the base", batch_size=False)
    parser.add_argument("--adapter", help="a LoRA student of --model (default: one distilled here)")
    parser.add_argument("--steps", type=int, default=20, help="distillation steps of the student made here")
    parser.add_argument("--items", type=int, default=24, help="validation items timed, each by both models")
    parser.add_argument("--ratio", type=float, default=0.5, help="γ asked of the student")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--work", help="a new directory for the data, student and merged model (default: temporary)")
    parser.add_argument("--out", default="benchmarks/results/merge.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vskip-merge-") as temporary:
        results = measure(args, Path(args.work or temporary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    medians, (low, high) = results["median_latency_s"], results["merged_over_adapter_interval"]
    print(f"{results['items']} items, batch 1: adapter {medians['adapter']:.3f} s, merged {medians['merged']:.3f} s "
          f"(median); merged / adapter {results['merged_over_adapter']:.3f} [{low:.3f}, {high:.3f}]")


if __name__ == "__main__":
    main()
