"""Teacher generation: the model writes a chain of thought and an answer for each record."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar, Protocol

import torch

from . import metrics
from .encoding import check_context, encode, record_example
from .errors import BadInput
from .latency import Runner
from .models import LoadedModel
from .prompts import Mode
from .records import Record
from .replies import generated_record
from .settings import BACKENDS, BATCH_SIZE, MAX_NEW_TOKENS
from .stage import fingerprint, run_stage


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


class GenerationBackend(Protocol):
    """What the stages that generate (`generate`, `evaluate`, `demo`, `distill`'s rounds) ask of a model, whichever
    engine runs it: the transformers `LoadedModel` (`TransformersBackend`) or a vLLM engine
    (`vllm_backend.VllmModel`). `generation_backend` gives one for either; `load_backend` loads one by name."""

    name: str  # as journals and the CLI's --backend name it: one of `settings.BACKENDS`
    path: str
    precision: str
    adapter: str | None  # the adapter served unmerged (vLLM); None where it is merged into the weights, or none
    times_baseline: bool  # whether a baseline's model can be loaded and timed beside it (`evaluate.baseline_model`)

    @classmethod
    def load(
        cls, model: str, adapter: str | Path | None = None, *, records: Iterable[Record] = (),
        base_dir: str | Path = ".", **load_options,
    ) -> GenerationBackend:
        """The backend of `model` (a directory, hub id or vskip-tiny) with `adapter`, for generating on `records`
        (their images resolved from `base_dir`); `load_options`: `dtype`, `allow_pickle`, `trust_remote_code`."""

    def check_prompts(self, records: list[Record], base_dir: str | Path, mode: Mode, ratio: float | None) -> None:
        """Refuse, before any generation, a record whose prompt does not fit the model's context."""

    def batch_generator(
        self, base_dir: str | Path, mode: Mode, *, ratio: float | None, max_new_tokens: int, temperature: float,
        seed: int,
    ) -> Callable[[list[Record]], list[Record]]:
        """One batch of records -> generated records (the fields of `replies.generated_record`)."""

    def runner(self, base_dir: str | Path, mode: Mode, *, ratio: float | None, max_new_tokens: int) -> Runner:
        """A `latency.Runner` for batch-1 generation: record -> the call that generates its reply, its inputs
        prepared beforehand, so that a timing of the call is the generation alone."""


@dataclass
class TransformersBackend:
    """A transformers `LoadedModel` (an adapter merged in, if any) as a `GenerationBackend`: `model.generate` with
    the KV cache, greedy or sampled."""

    loaded: LoadedModel
    name: ClassVar[str] = "transformers"
    adapter: ClassVar[None] = None
    times_baseline: ClassVar[bool] = True

    @classmethod
    def load(cls, model: str, adapter: str | Path | None = None, *, records=(), base_dir=".", **load_options):
        """`lora.load_with_adapter` (the adapter merged); `records` and `base_dir` are not needed."""
        from .lora import load_with_adapter

        return cls(load_with_adapter(model, adapter, **load_options))

    @property
    def path(self) -> str:
        return self.loaded.path

    @property
    def precision(self) -> str:
        return self.loaded.precision

    def check_prompts(self, records: list[Record], base_dir: str | Path, mode: Mode, ratio: float | None) -> None:
        """`encoding.check_context` of every record's prompt."""
        processor = self.loaded.processor
        examples = (
            (record["id"], record_example(processor, record, base_dir, mode, ratio=ratio)) for record in records
        )
        check_context(processor, self.loaded.model.config, examples)

    def batch_generator(self, base_dir, mode, *, ratio, max_new_tokens, temperature, seed):
        return partial(generate_batch, self.loaded, base_dir=base_dir, mode=mode, ratio=ratio,
                       max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)

    def runner(self, base_dir, mode, *, ratio, max_new_tokens) -> Runner:
        def prepare(record: Record):
            inputs = prepared_inputs(self.loaded, [record], base_dir, mode, ratio)
            # Back on the host: a timed call ends when the device has finished, not when its work was queued.
            return lambda: decode(self.loaded, inputs, max_new_tokens).cpu()

        return prepare


def generation_backend(model: LoadedModel | GenerationBackend) -> GenerationBackend:
    """`model` as a `GenerationBackend`: a `LoadedModel` wrapped in a `TransformersBackend`, a backend as it is."""
    return TransformersBackend(model) if isinstance(model, LoadedModel) else model


def backend_type(name: str) -> type:
    """The `GenerationBackend` class of a backend name (`settings.BACKENDS`): `TransformersBackend` or
    `vllm_backend.VllmModel` (vLLM itself is imported only when an engine is loaded)."""
    from .vllm_backend import VllmModel

    types = {backend.name: backend for backend in (TransformersBackend, VllmModel)}
    if name not in types:
        raise BadInput(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    return types[name]


def load_backend(
    name: str,
    model: str,
    adapter: str | Path | None = None,
    *,
    records: Iterable[Record] = (),
    base_dir: str | Path = ".",
    **load_options,
) -> GenerationBackend:
    """The model to generate with, by backend name (`settings.BACKENDS`): transformers (`lora.load_with_adapter`,
    the adapter merged), or a vLLM engine (`vllm_backend.load_vllm`, the adapter served as a LoRA, started for as
    many images per prompt as the most any of `records` has, their images resolved from `base_dir`).
    `load_options`: `dtype`, `allow_pickle`, `trust_remote_code`."""
    return backend_type(name).load(model, adapter, records=records, base_dir=base_dir, **load_options)


def generate_model(
    model: str,
    records: list[Record],
    base_dir: str | Path,
    out: str | Path,
    *,
    backend: str = "transformers",
    adapter: str | Path | None = None,
    mode: Mode = "cot",
    batch_size: int = BATCH_SIZE,
    max_new_tokens: int = MAX_NEW_TOKENS,
    progress: bool = True,
    **load_options,
) -> list[Record]:
    """`generate` with `model` (and `adapter`) loaded on `backend` (`load_backend`, with `load_options`): what
    `vskip generate` runs."""
    loaded = load_backend(backend, model, adapter, records=records, base_dir=base_dir, **load_options)
    return generate(loaded, records, base_dir, out, mode=mode, batch_size=batch_size, max_new_tokens=max_new_tokens,
                    progress=progress)


def generation_settings(
    model: LoadedModel | GenerationBackend, mode: Mode, ratio: float | None, max_new_tokens: int, adapter=None,
    temperature: float = 0.0, seed: int = 0,
) -> dict:
    """What a generated record depends on besides its input: the journal of a run records it (`stage.run_stage`)."""
    from .models import model_identity

    backend = generation_backend(model)
    if adapter is None:
        adapter = backend.adapter  # a vLLM engine serves its adapter unmerged
    sampling = {"temperature": temperature, "seed": seed} if temperature > 0 else {}  # greedy journals as before
    return {
        "model": model_identity(backend.path),
        "adapter": model_identity(str(adapter)) if adapter is not None else None,
        "backend": backend.name,
        "mode": mode,
        "ratio": ratio,
        "max_new_tokens": max_new_tokens,
        "precision": backend.precision,
        **sampling,
    }


def check_prompts(
    model: LoadedModel | GenerationBackend, records: list[Record], base_dir: str | Path, mode: Mode,
    ratio: float | None = None,
) -> None:
    """Refuse, before any generation, a record whose prompt does not fit the model's context
    (`encoding.check_context`; vLLM checks its own `max_model_len`)."""
    generation_backend(model).check_prompts(records, base_dir, mode, ratio)


def batch_generator(
    model: LoadedModel | GenerationBackend, base_dir: str | Path, mode: Mode, *, ratio=None,
    max_new_tokens: int = MAX_NEW_TOKENS, temperature: float = 0.0, seed: int = 0,
) -> Callable[[list[Record]], list[Record]]:
    """One batch of records -> generated records, on whichever backend `model` is (vLLM: greedy only)."""
    return generation_backend(model).batch_generator(base_dir, mode, ratio=ratio, max_new_tokens=max_new_tokens,
                                                     temperature=temperature, seed=seed)


def generation_runner(
    model: LoadedModel | GenerationBackend, base_dir: str | Path, mode: Mode, *, ratio=None,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> Runner:
    """A `latency.Runner` for batch-1 generation on whichever backend `model` is (`GenerationBackend.runner`)."""
    return generation_backend(model).runner(base_dir, mode, ratio=ratio, max_new_tokens=max_new_tokens)


def generate(
    model: LoadedModel | GenerationBackend,
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

    `model`: a transformers `LoadedModel` or any `GenerationBackend`. The written (and returned) records' images
    resolve from `out`'s directory.
    """
    backend = generation_backend(model)
    backend.check_prompts(records, base_dir, mode, ratio)
    return run_stage(
        records,
        backend.batch_generator(base_dir, mode, ratio=ratio, max_new_tokens=max_new_tokens, temperature=temperature,
                                seed=seed),
        out,
        base_dir=base_dir,
        settings=generation_settings(backend, mode, ratio, max_new_tokens, temperature=temperature, seed=seed),
        batch_size=batch_size,
        description=f"generate ({mode}" + (f", sampled at {temperature})" if temperature > 0 else ")"),
        progress=progress,
    )


# ---------------------------------------------------------------------------------------------
# Forced answers: what a compression leaves to answer from (distillation's `auto` marker, evaluation's benchmarks).


def forced_correct(
    loaded: LoadedModel,
    records: list[Record],
    base_dir: str | Path,
    *,
    ratio: float | None = None,
    batch_size: int = 16,
    progress: bool = True,
    journal: str | Path | None = None,
) -> list[bool]:
    """Per record, whether `loaded` answers right when handed the record's `compressed_cot` (after the prompt,
    with γ = `ratio`'s marker, or none) and asked only for the answer: what a compression leaves to answer from,
    with the writing of it taken out. With `progress`, a progress bar.

    With a `journal` path, the answers are journaled there as a stage's records are (`stage.run_stage`, keyed by
    the model, its precision, `ratio` and the records' content) and the journal is kept when all are done: an
    interrupted run resumes from it, and the caller removes it once it has used them.
    """
    from tqdm.auto import tqdm

    from .models import model_identity

    answer = partial(_forced_answers, loaded, base_dir=base_dir, ratio=ratio)
    if journal is None:
        starts = range(0, len(records), batch_size)
        bar = tqdm(starts, desc="forced answers", unit="batch", disable=not progress or len(starts) < 2)
        return [right for start in bar for right in answer(records[start : start + batch_size])]

    # Records may share an id (an item compressed at several γ): each is keyed by its place in `records`, which
    # their fingerprint in the settings ties to them.
    def journaled(keys: list[Record]) -> list[Record]:
        right = answer([records[int(key["id"])] for key in keys])
        return [{"id": key["id"], "correct": correct} for key, correct in zip(keys, right, strict=True)]

    done = run_stage(
        [{"id": str(index)} for index in range(len(records))],
        journaled,
        journal,
        settings={"model": model_identity(loaded.path), "precision": loaded.precision, "ratio": ratio,
                  "records": fingerprint(records)},
        batch_size=batch_size,
        description="forced answers",
        progress=progress,
        keep_journal=True,
    )
    return [result["correct"] for result in done]


def _forced_answers(
    loaded: LoadedModel, batch: list[Record], *, base_dir: str | Path, ratio: float | None
) -> list[bool]:
    """`forced_correct` of one batch."""
    from .prompts import ANSWER_PREFIX, split_response

    examples = [record_example(loaded.processor, record, base_dir, ratio=ratio) for record in batch]
    for example, record in zip(examples, batch, strict=True):
        example.prompt += f"{record['compressed_cot']}\n{ANSWER_PREFIX}"
    inputs = encode(loaded.processor, examples, for_generation=True).inputs
    inputs = {key: value.to(loaded.model.device) for key, value in inputs.items()}
    output = decode(loaded, inputs, max_new_tokens=8)[:, inputs["input_ids"].shape[1] :]
    tokenizer = loaded.processor.tokenizer
    return [metrics.is_correct(split_response(ANSWER_PREFIX + tokenizer.decode(tokens, skip_special_tokens=True))[1],
                               record)
            for record, tokens in zip(batch, output, strict=True)]
