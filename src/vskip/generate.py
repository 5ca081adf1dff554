"""Teacher generation: the model writes a chain of thought and an answer for each record."""

from __future__ import annotations

import time
import zlib
from functools import partial
from pathlib import Path

import torch

from .encoding import check_context, encode, record_example
from .errors import BadInput
from .models import LoadedModel
from .prompts import Mode
from .records import Record
from .replies import generated_record
from .settings import BATCH_SIZE, MAX_NEW_TOKENS
from .stage import run_stage


@torch.inference_mode()
def generate_batch(
    loaded: LoadedModel,
    records: list[Record],
    base_dir: str | Path,
    mode: Mode,
    *,
    ratio: float | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[Record]:
    """Decoding with the KV cache for a batch, greedy or (`temperature` > 0) sampled; one output record per
    input record.

    A sampled batch draws from torch's generator seeded by `seed` and the batch's first id: a resumed stage
    (whose batches restart where the journal stopped) draws what an uninterrupted one does. `latency_s` is the
    batch's wall time shared equally among its records (batch-1 latency is measured by `vskip evaluate`, see
    `generation_runner`).
    """
    inputs = prepared_inputs(loaded, records, base_dir, mode, ratio)
    if temperature > 0:
        torch.manual_seed(zlib.crc32(f"{seed}:{records[0]['id']}".encode()))
    start = time.perf_counter()
    output = decode(loaded, inputs, max_new_tokens, temperature)
    elapsed = time.perf_counter() - start
    tokenizer = loaded.processor.tokenizer
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    return [
        generated_record(record, mode, tokenizer.decode(tokens, skip_special_tokens=True), tokenizer,
                         elapsed / len(records), loaded.precision)
        for record, tokens in zip(records, new_tokens)
    ]


def prepared_inputs(
    loaded: LoadedModel, records: list[Record], base_dir: str | Path, mode: Mode, ratio: float | None
) -> dict[str, torch.Tensor]:
    """The generation inputs of a batch of records (images loaded, prompts tokenised), on the model's device."""
    examples = [record_example(loaded.processor, record, base_dir, mode, ratio=ratio) for record in records]
    inputs = encode(loaded.processor, examples, for_generation=True).inputs
    return {key: value.to(loaded.model.device) for key, value in inputs.items()}


@torch.inference_mode()
def decode(
    loaded: LoadedModel, inputs: dict[str, torch.Tensor], max_new_tokens: int, temperature: float = 0.0
) -> torch.Tensor:
    """`model.generate` with the KV cache, greedy (or sampled at `temperature`, no top-k or top-p cut): the
    prompt's ids followed by the new ones."""
    pad = loaded.processor.tokenizer.pad_token_id
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature > 0 else {
        "do_sample": False}
    return loaded.model.generate(**inputs, max_new_tokens=max_new_tokens, pad_token_id=pad, **sampling)


def generation_settings(
    model, mode: Mode, ratio: float | None, max_new_tokens: int, adapter=None, temperature: float = 0.0, seed: int = 0
) -> dict:
    """What a generated record depends on besides its input: the journal of a run records it (`stage.run_stage`)."""
    from .models import model_identity

    if adapter is None and not isinstance(model, LoadedModel):
        adapter = model.adapter  # a vLLM engine serves its adapter unmerged
    sampling = {"temperature": temperature, "seed": seed} if temperature > 0 else {}  # greedy journals as before
    return {
        "model": model_identity(model.path),
        "adapter": model_identity(str(adapter)) if adapter is not None else None,
        "backend": "transformers" if isinstance(model, LoadedModel) else "vllm",
        "mode": mode,
        "ratio": ratio,
        "max_new_tokens": max_new_tokens,
        "precision": model.precision,
        **sampling,
    }


def check_prompts(model, records: list[Record], base_dir: str | Path, mode: Mode, ratio: float | None = None) -> None:
    """Refuse, before any generation, a record whose prompt does not fit the model's context (`encoding.check_context`).

    vLLM checks its own `max_model_len`.
    """
    if isinstance(model, LoadedModel):
        examples = (
            (record["id"], record_example(model.processor, record, base_dir, mode, ratio=ratio)) for record in records
        )
        check_context(model.processor, model.model.config, examples)


def batch_generator(
    model, base_dir: str | Path, mode: Mode, *, ratio=None, max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = 0.0, seed: int = 0,
):
    """One batch of records -> generated records, with a transformers `LoadedModel` or a vLLM model (greedy only)."""
    if isinstance(model, LoadedModel):
        return lambda batch: generate_batch(model, batch, base_dir, mode, ratio=ratio, max_new_tokens=max_new_tokens,
                                            temperature=temperature, seed=seed)
    from .vllm_backend import generate_batch_vllm

    if temperature > 0:
        raise BadInput("sampled generation runs on the transformers backend only")

    return lambda batch: generate_batch_vllm(model, batch, base_dir, mode, ratio=ratio, max_new_tokens=max_new_tokens)


def generation_runner(model, base_dir: str | Path, mode: Mode, *, ratio=None, max_new_tokens: int = MAX_NEW_TOKENS):
    """A `latency.Runner` for batch-1 generation: record -> the call that generates its reply, its inputs
    prepared beforehand, so that a timing of the call is the generation alone (`model.generate`, or vLLM's
    `generate`)."""
    if isinstance(model, LoadedModel):

        def prepare(record: Record):
            inputs = prepared_inputs(model, [record], base_dir, mode, ratio)
            # Back on the host: a timed call ends when the device has finished, not when its work was queued.
            return lambda: decode(model, inputs, max_new_tokens).cpu()

        return prepare
    from .vllm_backend import vllm_decode, vllm_prompts

    return lambda record: partial(vllm_decode, model, vllm_prompts(model, [record], base_dir, mode, ratio),
                                  max_new_tokens)


def generate(
    loaded: LoadedModel,
    records: list[Record],
    base_dir: str | Path,
    out: str | Path,
    *,
    mode: Mode = "cot",
    ratio: float | None = None,
    batch_size: int = BATCH_SIZE,
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = 0.0,
    seed: int = 0,
    progress: bool = True,
) -> list[Record]:
    """Generate for every record and write them to `out` (resumable; see `stage.run_stage`); greedy, or sampled
    at `temperature` from `seed` (see `generate_batch`).

    The written (and returned) records' images resolve from `out`'s directory.
    """
    check_prompts(loaded, records, base_dir, mode, ratio)
    return run_stage(
        records,
        batch_generator(loaded, base_dir, mode, ratio=ratio, max_new_tokens=max_new_tokens, temperature=temperature,
                        seed=seed),
        out,
        base_dir=base_dir,
        settings=generation_settings(loaded, mode, ratio, max_new_tokens, temperature=temperature, seed=seed),
        batch_size=batch_size,
        description=f"generate ({mode}" + (f", sampled at {temperature})" if temperature > 0 else ")"),
        progress=progress,
    )
