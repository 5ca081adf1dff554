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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from .distributed import barrier, is_main_process
from .encoding import Example, chat_prompt, check_context
from .errors import BadInput
from .generate import example_for
from .models import load_model, model_identity
from .prompts import require_answer, response
from .records import Record, image_paths, load_image, require_fields
from .training import TrainConfig, fit

ADAPTER_INFO = "vskip_adapter.json"
# What a record needs to be learned from (the CLI asks the same of the file it reads).
DISTILL_FIELDS = ("id", "image", "question", "cot", "compressed_cot", "method", "ratio")


@dataclass
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0


DEFAULT_LORA = LoraSettings()
DEFAULT_TRAINING = TrainConfig(steps=600, batch_size=16, learning_rate=1e-3, warmup_steps=30)


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
        answer = require_answer(record["id"], record["cot"], record.get("prediction") or record.get("answer"))
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
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
) -> Path:
    """Train a LoRA adapter for `method` on a fresh copy of the base model and save it in PEFT format.

    Learns from the correct CoTs only unless `include_incorrect` (see `training_pairs`). Every training
    sequence is checked against the model's context before training. Rerunning after an interruption
    continues from the last checkpoint in `out_dir/checkpoint`, if that was made with the same settings.
    """
    out_dir = Path(out_dir)
    if training.steps < 1:
        raise BadInput(f"steps {training.steps} must be at least 1")
    pairs = training_pairs(records, method, include_incorrect=include_incorrect)
    loaded = load_model(model_name, dtype=torch.float32, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    processor = loaded.processor
    check_context(processor, loaded.model.config, (
        (record["id"], replace(example_for(loaded, record, base_dir, "cot", ratio), reply=reply))
        for record, ratio, reply in pairs
    ))
    model = get_peft_model(
        loaded.model,
        LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=loaded.adapter.lora_target_regex,
            task_type="CAUSAL_LM",
        ),
    )

    def sample_examples(rng: random.Random, n: int) -> list[Example]:
        examples = []
        for record, ratio, reply in rng.choices(pairs, k=n):
            images = [load_image(path) for path in image_paths(record, base_dir)]
            prompt = chat_prompt(processor, record["question"], "cot", ratio, n_images=len(images))
            examples.append(Example(images, prompt, reply))
        return examples

    settings = {"model": model_identity(loaded.path), "method": method, "training": asdict(training),
                "lora": asdict(lora), "data": _digest(pairs)}
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


def base_signature(config) -> dict:
    """What an adapter must agree with in its base model, whatever directory the base sits in."""
    text = config.get_text_config()
    return {
        "model_type": config.model_type,
        "hidden_size": text.hidden_size,
        "num_hidden_layers": text.num_hidden_layers,
        "vocab_size": text.vocab_size,
    }
