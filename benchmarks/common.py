"""Helpers the benchmarks share and vskip itself does not need: the model options, records by family, teacher
forcing, the gate's compressions of a teacher's CoTs, and the hand-built Qwen2-VL of the cost benchmarks.

Every benchmark imports from here and from vskip, never from another benchmark. vskip's own modules are
imported inside the functions that need them, so a script that only orchestrates worker processes
(`bench_scoring.py`) does not load torch for nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from vskip.records import Record


def model_arguments(parser: argparse.ArgumentParser, *, model_help: str | None = None, dtype: bool = True,
                    batch_size: bool = True) -> None:
    """`--model`, `--dtype` and `--batch-size` (the last two unless the script has no use for them), with
    vskip's defaults: the shipped vskip-tiny, `auto`, and `vskip.settings.BATCH_SIZE`."""
    from vskip.models import TINY_NAME
    from vskip.precision import DTYPES
    from vskip.settings import BATCH_SIZE

    parser.add_argument("--model", default=TINY_NAME, help=model_help)
    if dtype:
        parser.add_argument("--dtype", choices=DTYPES, default="auto", help="see vskip.precision")
    if batch_size:
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="records per forward pass")


def first_per_task(records: Iterable[Record], n: int | None) -> list[Record]:
    """The first `n` records of each task (all of them when `n` is None), tasks in sorted order:
    a split's families come in blocks, so a plain prefix would sample one family only."""
    by_task: dict[str, list[Record]] = {}
    for record in records:
        by_task.setdefault(record["task"], []).append(record)
    return [record for task in sorted(by_task) for record in by_task[task][:n]]


def reference_replies(records: Iterable[Record]) -> list[tuple[Record, str]]:
    """Each record with its reference reply (its CoT, then its answer), as `teacher_forced` takes them."""
    from vskip.prompts import require_answer, response

    return [(record, response(record["cot"], require_answer(record))) for record in records]


def teacher_forced(loaded, pairs: Sequence[tuple[Record, str]], base_dir: str | Path, batch_size: int) -> Iterator:
    """(record, reply) pairs in batches, each encoded for teacher forcing (the reply after its prompt, in `cot`
    mode) with its inputs on the model's device: yields (records, replies, `encoding.Encoded`) per batch."""
    from vskip.encoding import encode, record_example

    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        replies = [reply for _, reply in batch]
        encoded = encode(loaded.processor, [record_example(loaded.processor, record, base_dir, reply=reply)
                                            for record, reply in batch])
        encoded.inputs = {key: value.to(loaded.model.device) for key, value in encoded.inputs.items()}
        yield [record for record, _ in batch], replies, encoded


def teacher_forced_run(description: str, out: str) -> tuple[argparse.Namespace, list[Record], object]:
    """The command line of bench_reading.py and bench_lookup.py, parsed: the arguments, the records (the first
    `--per-task` of each family, with reference CoTs) and the model they name, on the CPU."""
    from vskip.models import load_model
    from vskip.records import read_records

    parser = argparse.ArgumentParser(description=description)
    model_arguments(parser)
    parser.add_argument("--data", required=True, help="a vskip-synth split the model did not train on")
    parser.add_argument("--per-task", type=int, help="records per family (default: all)")
    parser.add_argument("--out", default=out)
    args = parser.parse_args()
    records = first_per_task(read_records(args.data, required=("task", "cot")), args.per_task)
    return args, records, load_model(args.model, device="cpu", dtype=args.dtype)


def gate_compressions(path: Path, args: argparse.Namespace, method: str, ratios: Sequence[float], base: Path,
                      right_cots: Callable[[object], list[Record]]) -> list[Record]:
    """The gate's compressions, by `method` at each γ, of the teacher's right CoTs (`right_cots(teacher)`, whose
    images resolve from `base`): made once into `path` (the teacher `args.model` loaded only then), read back
    from there after. The information-gain gate (`gain`) gets the blind pass it needs."""
    from vskip.compress import compress_records
    from vskip.models import load_model
    from vskip.records import iter_jsonl, write_jsonl_atomic
    from vskip.score import score_records

    if not path.is_file():
        teacher = load_model(args.model, dtype=args.dtype)
        scored = score_records(teacher, right_cots(teacher), base, blind=method == "gain", progress=False)
        write_jsonl_atomic(path, compress_records(scored, [method], ratios, args.seed))
    return list(iter_jsonl(path))


# The hand-built Qwen2-VL of bench_scoring.py and gpu.py: sizes, inputs, and the scoring variants they time.

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


def distill_student(loaded) -> tuple:
    """A fresh LoRA student of `loaded` as `vskip distill` makes one (the adapter seeded alike every time), with its
    trainable parameters and its optimizer: (model, trainable, optimizer)."""
    import torch

    from vskip.lora import lora_model
    from vskip.settings import DEFAULT_DISTILL

    torch.manual_seed(0)
    model = lora_model(loaded, DEFAULT_DISTILL.lora, gradient_checkpointing=False).train()
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    return model, trainable, torch.optim.AdamW(trainable, lr=DEFAULT_DISTILL.training.learning_rate)


def drawn_batches(processor, draw, data_dir: str | Path, batch_size: int, count: int) -> list[dict]:
    """`count` training batches of `batch_size` pairs, drawn by `draw` (a `distill.pair_sampler`) from a fixed seed
    at the start of training, encoded as `vskip distill` encodes them."""
    import random

    from vskip.encoding import record_example
    from vskip.training import batch_inputs

    rng = random.Random(0)
    return [batch_inputs(processor, [record_example(processor, record, data_dir, ratio=ratio, reply=reply)
                                     for record, ratio, reply in draw(rng, batch_size, 0.0)])
            for _ in range(count)]


def alternating_steps(students: dict[str, tuple], batches: dict[str, list[dict]]) -> tuple[dict, dict]:
    """One distillation step of each of `students` (`distill_student`s, by name) in turn, each on its own
    `batches[name]` (as many for each), alternating which goes first; the first step of each is a warm-up, not timed.
    Returns each one's seconds by step and its losses: ({name: {step: s}}, {name: [loss]})."""
    from vskip.settings import DEFAULT_DISTILL
    from vskip.training import train_step

    names = list(students)
    seconds: dict[str, dict[int, float]] = {name: {} for name in names}
    losses: dict[str, list[float]] = {name: [] for name in names}
    for step in range(len(batches[names[0]])):
        for name in names if step % 2 else names[::-1]:
            model, trainable, optimizer = students[name]
            started = time.perf_counter()
            loss = train_step(model, batches[name][step], trainable, optimizer, DEFAULT_DISTILL.training.max_grad_norm)
            if step:
                seconds[name][step] = time.perf_counter() - started
                losses[name].append(loss)
    return seconds, losses


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


def call_variant(variant: str, model, family, inputs, positions, key_layers):
    """One call of scoring variant `variant` (`VARIANTS`), in the attention implementation it needs."""
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
            call_variant(variant, model, family, inputs, positions, key_layers)
            if cuda:
                torch.cuda.synchronize()
            if round_:  # round 0 is the warm-up
                times[variant].append(time.perf_counter() - started)
    return times
