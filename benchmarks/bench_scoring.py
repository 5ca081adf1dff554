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
import time
from pathlib import Path

SIZES = {
    # text hidden, layers, heads, kv heads, intermediate, vocab, image grid side (patches), CoT tokens,
    # prompt tokens, timed calls
    "tiny": dict(
        hidden=256,
        layers=4,
        heads=4,
        kv=2,
        intermediate=768,
        vocab=640,
        grid=8,
        cot=64,
        prompt=24,
        repeats=30,
    ),
    "large": dict(
        hidden=1024,
        layers=8,
        heads=16,
        kv=4,
        intermediate=2816,
        vocab=32000,
        grid=32,
        cot=768,
        prompt=16,
        repeats=6,
    ),
}
VARIANTS = ("forward", "text_path", "vskip", "eager")
IMAGE, VIDEO, START, END = 5, 6, 3, 4  # special token ids of the hand-built vocabulary


def qwen2_vl_config(s: dict):
    """A Qwen2-VL config of the hand-built sizes `s` (a value of `SIZES`)."""
    from transformers import Qwen2VLConfig

    half = s["hidden"] // s["heads"] // 2
    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=s["vocab"],
            hidden_size=s["hidden"],
            intermediate_size=s["intermediate"],
            num_hidden_layers=s["layers"],
            num_attention_heads=s["heads"],
            num_key_value_heads=s["kv"],
            max_position_embeddings=4096,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            rope_parameters=dict(
                rope_type="default",
                rope_theta=10000.0,
                mrope_section=[half // 4, 3 * half // 8, half - half // 4 - 3 * half // 8],
            ),
        ),
        vision_config=dict(depth=2, embed_dim=256, hidden_size=s["hidden"], num_heads=4, mlp_ratio=2),
        image_token_id=IMAGE,
        video_token_id=VIDEO,
        vision_start_token_id=START,
        vision_end_token_id=END,
    )


def build_model(config, device="cpu", dtype=None):
    """A Qwen2-VL of `config` with seeded random weights, created directly on `device` in `dtype` (fp32)."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration._from_config(config, dtype=dtype or torch.float32)
    return model.eval()


def build_inputs(config, grid: int, prompt: int, cot: int, batch: int = 1):
    """Hand-built inputs of `batch` identical sequences, and the positions of their CoT tokens.

    A sequence is half the prompt, one image of `grid` x `grid` patches (grid² / 4 image tokens), the
    rest of the prompt, then `cot` tokens (none: the input of generation). Text tokens are drawn below
    the config's special token ids, so none of them is read as an image token.
    """
    import torch

    vision = config.vision_config
    special = (config.image_token_id, config.video_token_id, config.vision_start_token_id, config.vision_end_token_id)
    high = min([config.get_text_config().vocab_size] + [token for token in special if token >= 10])
    generator = torch.Generator().manual_seed(0)
    text = lambda n: torch.randint(10, high, (n,), generator=generator)  # noqa: E731
    ids = torch.cat(
        [
            text(prompt // 2),
            torch.tensor([config.vision_start_token_id]),
            torch.full((grid**2 // vision.spatial_merge_size**2,), config.image_token_id),
            torch.tensor([config.vision_end_token_id]),
            text(prompt - prompt // 2),
            text(cot),
        ]
    )[None].repeat(batch, 1)
    patch = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
    inputs = dict(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        mm_token_type_ids=(ids == config.image_token_id).long(),
        pixel_values=torch.randn(batch * grid**2, patch, generator=generator),
        image_grid_thw=torch.tensor([[1, grid, grid]] * batch),
    )
    positions = [list(range(ids.shape[1] - cot, ids.shape[1]))] * batch
    return inputs, positions


def build(size: str):
    s = SIZES[size]
    config = qwen2_vl_config(s)
    return (build_model(config), *build_inputs(config, s["grid"], s["prompt"], s["cot"]))


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory_mib(call, device="cpu") -> tuple[float, float]:
    """(peak extra memory of `call()` over the memory before it, the peak in all), MiB.

    On a GPU: the CUDA allocator's counters (tensors only). On the CPU: the resident set, its peak
    (VmHWM) reset first; it tracks live memory where glibc serves large allocations by mmap
    (`memory_worker`'s process is started with MALLOC_MMAP_THRESHOLD_), else allocator caches add noise.
    """
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        result = call()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        del result
        return (peak - before) / 2**20, peak / 2**20
    before = _rss_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current resident set
    result = call()
    peak = _rss_kb("VmHWM")
    del result
    return (peak - before) / 1024, peak / 1024


def _call(variant: str, model, family, inputs, positions, key_layers):
    import torch

    from vskip.score import VisualPath, score_batch

    implementation = "eager" if variant == "eager" else "sdpa"
    if model.config.get_text_config()._attn_implementation != implementation:
        model.set_attn_implementation({"text_config": implementation})
    with torch.no_grad():
        if variant == "forward":
            return model(**inputs).logits
        if variant == "text_path":
            return score_batch(model, family, inputs, positions, visual=None)
        if variant == "vskip":
            return score_batch(model, family, inputs, positions, visual=VisualPath(key_layers=tuple(key_layers)))
        return model(**inputs, output_attentions=True).attentions


def _setup(size: str):
    from vskip.models import family_for
    from vskip.score import default_key_layers

    model, inputs, positions = build(size)
    family = family_for(model.config)
    return model, family, inputs, positions, default_key_layers(family, model.config)


def interleaved_times(model, family, inputs, positions, key_layers, repeats: int) -> dict[str, list[float]]:
    """Seconds of every call of each variant over `repeats` rounds, after a warm-up round.

    Each round starts at a different variant, so none always follows eager's large allocations; on a
    GPU each call is timed to the end of its kernels.
    """
    import torch

    cuda = next(model.parameters()).device.type == "cuda"
    times = {variant: [] for variant in VARIANTS}
    for round_ in range(repeats + 1):
        for variant in VARIANTS[round_ % len(VARIANTS) :] + VARIANTS[: round_ % len(VARIANTS)]:
            started = time.perf_counter()
            _call(variant, model, family, inputs, positions, key_layers)
            if cuda:
                torch.cuda.synchronize()
            if round_:  # round 0 is the warm-up
                times[variant].append(time.perf_counter() - started)
    return times


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
    _call(variant, model, family, inputs, positions, key_layers)  # warm-up
    gc.collect()
    extra, _ = peak_memory_mib(lambda: _call(variant, model, family, inputs, positions, key_layers))
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
