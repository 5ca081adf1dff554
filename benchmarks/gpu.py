"""Real-size figures on one GPU: Qwen2-VL-2B and -7B, random weights, bf16.

    bash benchmarks/gpu.sh                              # the real sizes; about 3-5 minutes on an H100
    python benchmarks/gpu.py --tiny --out /tmp/gpu.json  # the same code at toy sizes, on CPU (the test)

The models are built from the exact configs of Qwen/Qwen2-VL-2B-Instruct and -7B-Instruct, written out
in `benchmarks/configs/` (no download): the hub's config.json values, checked here against published
module listings of the 7B model (embedding 152064 x 3584, k_proj 3584 -> 512, MLP 18944, 32 vision
blocks of 1280 merging into 3584), the Qwen2-1.5B language model the 2B one is built on (1536 x 28
layers, 12 heads, 2 KV heads, MLP 8960, vocabulary 151936, tied embeddings), and the parameter counts
they give: 2,208,985,600 and 8,291,375,616, Qwen's 2.2B and 8.3B. Weights are random: time and memory
depend on the shapes, not the values.

Inputs are hand-built as in `bench_scoring.py` (both take the builders and scoring variants from `common.py`):
one DocVQA-sized page of 72 x 72 patches (1,008 px a side, 1,296 image tokens), a 40-token prompt, and a
300-token chain of thought. Per model:

- scoring: time (fastest of `--repeats` interleaved rounds, after a warm-up) and peak GPU memory of
  `forward` (a plain forward, logits everywhere), `text_path`, `vskip` (both paths, the default key
  layers) and `eager` (`output_attentions` on every layer);
- generation: greedy decoding with the KV cache from the page and prompt, `--new-tokens` tokens forced
  (no early end), at batch 1 and 16: tokens per second over the whole call and over the decode steps
  alone (the prefill is timed by a one-token call);
- distillation: one LoRA step (vskip's `lora.lora_model` with the default recipe's adapter,
  `DEFAULT_DISTILL.lora`: rank 32 on every linear layer of the language model, fp32 adapter weights,
  AdamW) at batch 4 on the full sequences, without and with gradient checkpointing: peak GPU memory
  and time. A step that runs out of memory is recorded as such.

Memory is the CUDA allocator's peak during the call (`common.peak_memory_mib`), in all
(weights included) and over what was allocated before it. The JSON is rewritten after each model, so
a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import torch
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

from vskip.distill import DEFAULT_DISTILL
from vskip.lora import lora_model
from vskip.models import LoadedModel, family_for
from vskip.report.tables import format_table
from vskip.score import default_key_layers
from vskip.training import IGNORE_INDEX, train_step

CONFIGS = Path(__file__).parent / "configs"
MODELS = ("qwen2-vl-2b", "qwen2-vl-7b")
# The adapter of the measured step: the one `vskip distill` trains by default.
MEASURED_LORA = DEFAULT_DISTILL.lora


@dataclass(frozen=True)
class Shape:
    grid: int = 72  # patches a side: a 1,008 px page, 1,296 image tokens
    prompt: int = 40
    cot: int = 300
    new_tokens: int = 128
    generation_batches: tuple[int, ...] = (1, 16)
    distill_batch: int = 4
    repeats: int = 5


REAL = Shape()
TINY = Shape(grid=8, prompt=8, cot=16, new_tokens=4, generation_batches=(1, 2), repeats=1)


def _free() -> None:
    """Hand the GPU memory of dropped tensors back, so the next figure starts from what it allocates."""
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def _to(inputs: dict, device) -> dict:
    return {name: value.to(device) for name, value in inputs.items()}


def _timed(call, device) -> float:
    started = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def scoring(model, config, shape: Shape, device) -> list[dict]:
    """`bench_scoring`'s variants at `shape`: fastest time and peak memory of one call each."""
    family = family_for(config)
    key_layers = default_key_layers(family, config)
    inputs, positions = build_inputs(config, shape.grid, shape.prompt, shape.cot)
    inputs = _to(inputs, device)
    times = interleaved_times(model, family, inputs, positions, key_layers, shape.repeats)
    rows = []
    for variant in VARIANTS:
        call = partial(call_variant, variant, model, family, inputs, positions, key_layers)
        extra, peak = peak_memory_mib(call, device)
        rows.append({"variant": variant, "seconds": min(times[variant]), "peak_extra_mib": extra, "peak_mib": peak,
                     "all_seconds": times[variant]})
        _free()
    model.set_attn_implementation({"text_config": "sdpa"})
    for row in rows:
        row["time_vs_forward"] = row["seconds"] / rows[0]["seconds"]
        row["memory_vs_forward"] = row["peak_extra_mib"] / max(rows[0]["peak_extra_mib"], 1e-9)
    tokens = int(inputs["input_ids"].shape[1])
    image = int((inputs["input_ids"] == config.image_token_id).sum())
    return [{"tokens": tokens, "image_tokens": image, "cot_tokens": shape.cot, "key_layers": key_layers, **row}
            for row in rows]


@torch.inference_mode()
def generation(model, config, shape: Shape, device) -> list[dict]:
    """Greedy tokens per second at each batch size, the whole call and the decode steps alone."""
    rows = []
    for batch in shape.generation_batches:
        inputs = _to(build_inputs(config, shape.grid, shape.prompt, 0, batch)[0], device)

        def run(n: int, inputs=inputs):
            return model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                  pad_token_id=config.get_text_config().eos_token_id)

        run(2)  # warm-up
        prefill = _timed(lambda: run(1), device)
        seconds = _timed(lambda: run(shape.new_tokens), device)
        rows.append({
            "batch": batch,
            "prompt_tokens": int(inputs["input_ids"].shape[1]),
            "new_tokens": shape.new_tokens,
            "seconds": seconds,
            "prefill_seconds": prefill,
            "tokens_per_s": batch * shape.new_tokens / seconds,
            "decode_tokens_per_s": batch * (shape.new_tokens - 1) / max(seconds - prefill, 1e-9),
        })
        _free()
    return rows


def distill_step(config, shape: Shape, device, dtype, gradient_checkpointing: bool) -> dict:
    """Peak memory and time of one LoRA step at `shape.distill_batch`, on a freshly built model."""
    loaded = LoadedModel(build_model(config, device, dtype), None, family_for(config), "random")
    model = lora_model(loaded, MEASURED_LORA, gradient_checkpointing=gradient_checkpointing).train()
    inputs, positions = build_inputs(config, shape.grid, shape.prompt, shape.cot, shape.distill_batch)
    labels = torch.full_like(inputs["input_ids"], IGNORE_INDEX)
    labels[:, positions[0][0] :] = inputs["input_ids"][:, positions[0][0] :]
    batch = _to({**inputs, "labels": labels}, device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)

    def step() -> float:
        return train_step(model, batch, trainable, optimizer, 1.0)

    first = _timed(step, device)  # the first step also allocates AdamW's state
    extra, peak = peak_memory_mib(step, device)
    return {"seconds_first_step": first, "seconds": _timed(step, device), "peak_extra_mib": extra, "peak_mib": peak,
            "adapter_dtype": str(trainable[0].dtype).removeprefix("torch.")}


def _guarded(measurement, **row):
    """`measurement()`, or `row` marked out of memory when the GPU ran out: the other figures still come."""
    try:
        return {**row, **measurement()} if row else measurement()
    except torch.cuda.OutOfMemoryError:
        return {**row, "error": "out of memory"}
    finally:
        _free()


def inference(config, shape: Shape, device, dtype) -> dict:
    """Size, scoring and generation figures of one model, built once (and freed on return)."""
    model = build_model(config, device, dtype)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_mib": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20,
        "scoring": _guarded(lambda: scoring(model, config, shape, device)),
        "generation": _guarded(lambda: generation(model, config, shape, device)),
    }


def measure(name: str, config, shape: Shape, device, dtype) -> dict:
    """Every figure of one model; each distillation step gets a freshly built model of its own."""
    result = {"model": name, **inference(config, shape, device, dtype)}
    _free()
    result["distill"] = [
        _guarded(lambda flag=flag: distill_step(config, shape, device, dtype, flag),
                 batch=shape.distill_batch, gradient_checkpointing=flag)
        for flag in (False, True)
    ]
    return result


def load_config(name: str):
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig.from_dict(json.loads((CONFIGS / f"{name}.json").read_text()))


def _device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def tables(results: list[dict]) -> str:
    """The Markdown tables BENCHMARKS.md quotes (a section that ran out of memory is left out)."""
    columns = {
        "scoring": ("variant", "seconds", "time_vs_forward", "peak_mib", "peak_extra_mib", "memory_vs_forward"),
        "generation": ("batch", "tokens_per_s", "decode_tokens_per_s", "prefill_seconds"),
        "distill": ("batch", "gradient_checkpointing", "peak_mib", "peak_extra_mib", "seconds", "error"),
    }
    parts = []
    for section, keys in columns.items():
        rows = [{"model": r["model"], **{key: row.get(key) for key in keys}}
                for r in results if isinstance(r[section], list) for row in r[section]]
        if rows:
            parts.append(format_table(rows, list(rows[0])))
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/gpu.json")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (vskip-tiny's), on the CPU when no GPU")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    parser.add_argument("--repeats", type=int, help="timed scoring rounds (default: 5; 1 with --tiny)")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.tiny:
        parser.error("no CUDA GPU: the real sizes need one (run with --tiny to try the code on the CPU)")
    shape = TINY if args.tiny else REAL
    shape = replace(shape, repeats=args.repeats or shape.repeats)
    dtype = getattr(torch, args.dtype)
    models = {"tiny": qwen2_vl_config(SIZES["tiny"])} if args.tiny else {n: load_config(n) for n in args.models}
    import transformers

    report = {
        "device": _device_name(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": args.dtype,
        "shape": asdict(shape),
        "weights": "random, from the configs in benchmarks/configs/" if not args.tiny else "random, toy sizes",
        "models": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, config in models.items():
        started = time.perf_counter()
        report["models"].append({**measure(name, config, shape, device, dtype),
                                 "wall_seconds": time.perf_counter() - started})
        out.write_text(json.dumps(report, indent=2) + "\n")
    print(tables(report["models"]))
    print(f"wrote {out} ({report['device']})")


if __name__ == "__main__":
    main()
