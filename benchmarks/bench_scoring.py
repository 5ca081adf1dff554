"""What the visual path costs: time and peak memory of scoring, beside a plain forward and eager attention.

    python benchmarks/bench_scoring.py [--out benchmarks/results/scoring.json] [--repeats N]

Two random Qwen2-VL models with hand-built inputs (one image, a prompt, a long CoT):
`tiny` (the shipped vskip-tiny's sizes) and `large` (text hidden 1024 x 8 layers, 1,042 tokens of
which 256 are image tokens and 768 are scored CoT tokens). Variants:

- `forward`: plain SDPA forward, `model(**inputs)` (logits at every position);
- `text_path`: `score_batch(visual=None)`: SDPA forward with logits only where a CoT token is
  predicted, and the surprisal;
- `vskip`: `score_batch` with the visual-mass capture at the default key layers (both paths);
- `eager`: eager attention with `output_attentions=True` on all layers, the naive way to get the
  visual path.

Time: one process per size runs the variants in turn (rotating the order), `--repeats` rounds
after a warm-up round, and reports each variant's fastest call (the minimum: on a shared machine
noise only adds time, and interleaving exposes every variant to the same noise; all times are in
the JSON).

Peak memory: a fresh process per size and variant, with glibc told to serve every allocation over
64 KiB by mmap (MALLOC_MMAP_THRESHOLD_), so freed tensors leave the resident set at once and it
tracks live memory rather than allocator caches. After a warm-up call the kernel's peak counter
(VmHWM) is reset (/proc/self/clear_refs); the figure is the peak resident set during one call
minus the resident set before it: the extra memory a call needs, activations and logits included
(model and inputs excluded). At the tiny size it is a MiB or less and its ratios are noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from common import (
    SIZES,
    VARIANTS,
    build_inputs,
    build_model,
    call_variant,
    interleaved_times,
    peak_memory_mib,
    qwen2_vl_config,
)


def build(size: str):
    s = SIZES[size]
    config = qwen2_vl_config(s)
    return (build_model(config), *build_inputs(config, s["grid"], s["prompt"], s["cot"]))


def _setup(size: str):
    from vskip.models import family_for
    from vskip.score import default_key_layers

    model, inputs, positions = build(size)
    family = family_for(model.config)
    return model, family, inputs, positions, default_key_layers(family, model.config)


def time_worker(size: str, repeats: int) -> dict:
    """Seconds per variant: the fastest of `repeats` interleaved rounds."""
    import torch

    model, family, inputs, positions, key_layers = _setup(size)
    return {
        "times": interleaved_times(model, family, inputs, positions, key_layers, repeats),
        "tokens": int(inputs["input_ids"].shape[1]),
        "image_tokens": int((inputs["input_ids"] == model.config.image_token_id).sum()),
        "cot_tokens": len(positions[0]),
        "key_layers": key_layers,
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(),
    }


def memory_worker(size: str, variant: str) -> dict:
    """Extra resident memory (MiB) of one call, over the process before it."""
    import gc

    model, family, inputs, positions, key_layers = _setup(size)
    call_variant(variant, model, family, inputs, positions, key_layers)  # warm-up
    gc.collect()
    extra, _ = peak_memory_mib(lambda: call_variant(variant, model, family, inputs, positions, key_layers))
    return {"peak_extra_mib": extra}


def _run_worker(*args: str, env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/scoring.json")
    parser.add_argument("--repeats", type=int, help="timed calls per variant (default: per size)")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, size, *rest = args.worker
        print(json.dumps(time_worker(size, int(rest[0])) if kind == "time" else memory_worker(size, rest[0])))
        return
    mmap_env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}
    rows = []
    for size in args.sizes:
        timing = _run_worker("time", size, str(args.repeats or SIZES[size]["repeats"]))
        for variant in VARIANTS:
            memory = _run_worker("memory", size, variant, env=mmap_env)
            rows.append(
                {
                    "size": size,
                    "variant": variant,
                    "seconds": min(timing["times"][variant]),
                    **memory,
                    **{key: value for key, value in timing.items() if key != "times"},
                    "all_seconds": timing["times"][variant],
                }
            )
            print(
                f"{size:6} {variant:10} {rows[-1]['seconds']:8.3f} s {rows[-1]['peak_extra_mib']:9.1f} MiB",
                file=sys.stderr,
            )
    by = {(r["size"], r["variant"]): r for r in rows}
    for r in rows:
        for base in ("forward", "text_path"):
            reference = by[r["size"], base]
            r[f"time_vs_{base}"] = r["seconds"] / reference["seconds"]
            r[f"memory_vs_{base}"] = r["peak_extra_mib"] / max(reference["peak_extra_mib"], 1e-9)
    result = {
        "machine": f"{platform.machine()}, python {platform.python_version()}",
        "time": "fastest of the interleaved calls, seconds",
        "memory": "peak RSS of one call (VmHWM reset before it; mallocs over 64 KiB by mmap) minus RSS before it, MiB",
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    header = f"{'size':6} {'variant':10} {'tokens':>6} {'image':>5} {'cot':>4} {'time s':>8} {'extra MiB':>9}"
    print(f"{header}  time/memory x forward, x text_path")
    for r in rows:
        versus = [f"{r[f'time_vs_{b}']:5.2f}/{r[f'memory_vs_{b}']:5.2f}" for b in ("forward", "text_path")]
        print(
            f"{r['size']:6} {r['variant']:10} {r['tokens']:6d} {r['image_tokens']:5d} {r['cot_tokens']:4d} "
            f"{r['seconds']:8.3f} {r['peak_extra_mib']:9.1f}  {'  '.join(versus)}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
