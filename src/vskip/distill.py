"""Policy distillation: teach the model to write the compressed chain of thought itself.

A LoRA adapter on the language model's attention projections (vision tower and backbone frozen)
is trained on `prompt(image, question, γ) → compressed_γ(CoT) + answer`, with γ taken from the
ratios present in the compressed file and 1.0 (the uncompressed CoT) always among them, so one
adapter serves every γ. The γ marker is the instruction's last sentence,
"Compress the reasoning to ratio 0.5." (`prompts.instruction`); γ = 1.0 has no marker.

Only CoTs that led the teacher to the right answer are learned (records `generate` marked
`correct: false` are left out) unless asked to include the rest: a student copies its targets.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model

from .distributed import barrier, is_main_process
from .encoding import Example, check_context, record_example
from .errors import BadInput
from .lora import ADAPTER_INFO, base_signature
from .models import LoadedModel, load_model, model_identity
from .precision import dtype_name
from .prompts import require_answer, response
from .records import Record, require_fields
from .training import TrainConfig, fit

# What a record needs to be learned from (the CLI asks the same of the file it reads).
DISTILL_FIELDS = ("id", "image", "question", "cot", "compressed_cot", "method", "ratio")

@dataclass
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0


DEFAULT_LORA = LoraSettings()
DEFAULT_TRAINING = TrainConfig(steps=600, batch_size=16, learning_rate=1e-3, warmup_steps=30)
# Bases this large train with gradient checkpointing unless told otherwise. From Qwen2-VL-2B up, the
# activations a step keeps outgrow the weights: by a rough estimate (about 50 k values per token and
# layer) some 19 GB for the 2B model at batch 4 of DocVQA-sized sequences, against 4.4 GB of bf16
# weights. benchmarks/gpu.py measures it on a GPU.
CHECKPOINTING_FROM_PARAMETERS = 1_000_000_000


def incorrect_items(records: list[Record], method: str) -> set[str]:
    """Ids of the method's records whose CoT led the teacher to a wrong answer (`correct: false`)."""
    return {record["id"] for record in records if record.get("method") == method and record.get("correct") is False}


def training_pairs(
    records: list[Record], method: str, *, include_incorrect: bool = False
) -> list[tuple[Record, float, str]]:
    """(record, γ, CoT to learn) for the given method, plus each item's uncompressed CoT at γ = 1; without
    `include_incorrect`, none of the `incorrect_items`."""
    wrong = set() if include_incorrect else incorrect_items(records, method)
    pairs, full = [], {}
    for record in records:
        if record.get("method") != method or record["id"] in wrong:
            continue
        require_fields(record, DISTILL_FIELDS, named=True)
        answer = require_answer(record)
        pairs.append((record, float(record["ratio"]), response(record["compressed_cot"], answer)))
        full.setdefault(record["id"], (record, 1.0, response(record["cot"], answer)))
    if not pairs and wrong:
        raise BadInput(f"every CoT of method {method!r} led to a wrong answer ({len(wrong)} items); "
                       "include them with --include-incorrect")
    if not pairs:
        methods = sorted({str(record.get("method")) for record in records})
        raise BadInput(f"no compressed records for method {method!r}; the file has: {', '.join(methods)}")
    have_full = {record["id"] for record, ratio, _ in pairs if ratio == 1.0}
    return pairs + [pair for item, pair in full.items() if item not in have_full]


def lora_model(
    loaded: LoadedModel, lora: LoraSettings = DEFAULT_LORA, *, gradient_checkpointing: bool | None = None
) -> PeftModel:
    """`loaded.model` with a fresh trainable LoRA adapter on its language model's attention projections.

    The adapter's weights are float32 whatever the base's dtype (peft's `autocast_adapter_dtype`): in
    bf16, AdamW's small updates would round away; peft casts each LoRA input up and its output back to
    the base's dtype, so the frozen base computes in bf16. Gradient checkpointing (default: on for bases
    of `CHECKPOINTING_FROM_PARAMETERS` parameters or more) keeps only each decoder layer's input and
    recomputes the rest in the backward pass: one more forward's compute for a fraction of the
    activation memory.
    """
    model = loaded.model
    if gradient_checkpointing is None:
        gradient_checkpointing = sum(p.numel() for p in model.parameters()) >= CHECKPOINTING_FROM_PARAMETERS
    if gradient_checkpointing:
        # transformers 5.24 renamed gradient_checkpointing_enable (kept as a deprecated alias until v6);
        # earlier 5.x releases have only the old name. Non-reentrant checkpointing needs no input grads.
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable({"use_reentrant": False})
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=loaded.adapter.lora_target_regex,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft asks the model for `is_gradient_checkpointing`, which transformers 5.24 deprecated.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        return get_peft_model(model, config, autocast_adapter_dtype=True)


def distill(
    model_name: str,
    records: list[Record],
    base_dir: str | Path,
    out_dir: str | Path,
    *,
    method: str = "vskip",
    training: TrainConfig = DEFAULT_TRAINING,
    lora: LoraSettings = DEFAULT_LORA,
    include_incorrect: bool = False,
    gradient_checkpointing: bool | None = None,
    **load_options,
) -> Path:
    """Train a LoRA adapter for `method` on a fresh copy of the base model and save it in PEFT format.

    Learns from the correct CoTs only unless `include_incorrect` (see `training_pairs`). `load_options` go
    to `load_model` (`dtype`, `allow_pickle`, `trust_remote_code`); see `lora_model` for the adapter's
    precision and `gradient_checkpointing`. Every training sequence is checked against the model's context
    before training. Rerunning after an interruption continues from the last checkpoint in
    `out_dir/checkpoint`, if that was made with the same settings (precision and checkpointing included).
    """
    out_dir = Path(out_dir)
    if training.steps < 1:
        raise BadInput(f"steps {training.steps} must be at least 1")
    pairs = training_pairs(records, method, include_incorrect=include_incorrect)
    loaded = load_model(model_name, **load_options)
    processor = loaded.processor
    check_context(processor, loaded.model.config, (
        (record["id"], record_example(processor, record, base_dir, ratio=ratio, reply=reply))
        for record, ratio, reply in pairs
    ))
    model = lora_model(loaded, lora, gradient_checkpointing=gradient_checkpointing)
    precision = {
        "base": loaded.precision,
        "adapter": dtype_name(next(p.dtype for p in model.parameters() if p.requires_grad)),
        "gradient_checkpointing": any(getattr(m, "gradient_checkpointing", False) for m in model.modules()),
    }

    def sample_examples(rng: random.Random, n: int) -> list[Example]:
        return [
            record_example(processor, record, base_dir, ratio=ratio, reply=reply)
            for record, ratio, reply in rng.choices(pairs, k=n)
        ]

    settings = {"model": model_identity(loaded.path), "method": method, "training": asdict(training),
                "lora": asdict(lora), "precision": precision, "data": _digest(pairs)}
    log = fit(model, processor, sample_examples, training, checkpoint_dir=out_dir / "checkpoint",
              description=f"distill {method}", settings=settings)
    if not is_main_process():
        barrier()
        return out_dir
    model.save_pretrained(out_dir)
    info = {
        "base_model": loaded.path,
        "base_signature": base_signature(loaded.model.config),
        "method": method,
        "ratios": sorted({ratio for _, ratio, _ in pairs}),
        "examples": len(pairs),
        "training": asdict(training),
        "lora": asdict(lora),
        "precision": precision,
        "log": log,
    }
    (out_dir / ADAPTER_INFO).write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
    barrier()
    return out_dir


def _digest(pairs: list[tuple[Record, float, str]]) -> str:
    """A short fingerprint of the training pairs: a checkpoint made on other data is not resumed."""
    text = json.dumps([(record["id"], record["question"], ratio, reply) for record, ratio, reply in pairs])
    return hashlib.sha256(text.encode()).hexdigest()[:16]

