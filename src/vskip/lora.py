"""Students: what distillation trains (a LoRA adapter, or the whole language model), and loading one back.

`lora_model` puts a fresh LoRA adapter on a base model's language model, `language_model_trainable` makes
that language model trainable instead (`vskip distill --full`). `vskip distill` writes, beside the PEFT
files of an adapter (or the weights of a fully trained model), `vskip_adapter.json` with the signature of
the base it trained on, its method, γ values and recipe, and README.md, a model card that says it in words.
Both generation backends check an adapter here before using it: transformers merges it into the base
(`load_with_adapter`), vLLM serves it unmerged (`vllm_backend.load_vllm`); a fully trained student, or one
merged into its base for good (`merge.merge_student`), loads as the model it is (`load_student`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .errors import BadInput
from .hub import is_hub_id
from .models import TINY_NAME, LoadedModel, load_model, located_path
from .prompts import AUTO, ratio_text
from .settings import LoraSettings

if TYPE_CHECKING:
    from peft import PeftModel  # imported where used: loading peft takes seconds

ADAPTER_INFO = "vskip_adapter.json"
MODEL_CARD = "README.md"
# Bases this large train with gradient checkpointing unless told otherwise. From Qwen2-VL-2B up, the
# activations a step keeps outgrow the weights: by a rough estimate (about 50 k values per token and
# layer) some 19 GB for the 2B model at batch 4 of DocVQA-sized sequences, against 4.4 GB of bf16
# weights. benchmarks/gpu.py measures it on a GPU.
CHECKPOINTING_FROM_PARAMETERS = 1_000_000_000


@contextmanager
def peft_wrapping() -> Iterator[None]:
    """Around peft wrapping a model: peft asks it for `is_gradient_checkpointing`, which transformers 5.24
    deprecated, and the warning would reach users on every adapter load and distillation."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        yield


def base_signature(config) -> dict:
    """What an adapter must agree with in its base model, whatever directory the base sits in."""
    text = config.get_text_config()
    return {
        "model_type": config.model_type,
        "hidden_size": text.hidden_size,
        "num_hidden_layers": text.num_hidden_layers,
        "vocab_size": text.vocab_size,
    }


def adapter_info(adapter: str | Path) -> dict:
    """What `vskip distill` (or `vskip merge`) wrote about a student, an adapter or a whole model
    (`vskip_adapter.json`: base, method, kind, ratios, recipe, precision); empty for one trained elsewhere."""
    path = Path(adapter) / ADAPTER_INFO
    return json.loads(path.read_text()) if path.is_file() else {}


def write_adapter_info(directory: str | Path, info: dict) -> None:
    """Write `info` as the student's `vskip_adapter.json` in `directory` (read back by `adapter_info`)."""
    (Path(directory) / ADAPTER_INFO).write_text(json.dumps(info, indent=2) + "\n")


def write_model_card(directory: str | Path, info: dict) -> None:
    """Write the student's model card (`model_card`) as README.md in `directory`, in place of the blank template
    PEFT's `save_pretrained` writes there, which names the base by its absolute path on the training machine."""
    (Path(directory) / MODEL_CARD).write_text(model_card(info))


def model_card(info: dict) -> str:
    """A student's model card from its `vskip_adapter.json` `info`: what it is, its base by name (never a path of
    the machine it was trained on), method, γ values, recipe, final training loss, and how to run it."""
    base = info["base_model"]
    hub, local = base != TINY_NAME and is_hub_id(base), base != TINY_NAME and not is_hub_id(base)
    base = Path(base).name if local else base  # a local directory by its name alone
    recipe, training, kind = info["recipe"], info["recipe"]["training"], info["kind"]
    what = {"lora": f"A LoRA adapter for {base}", "full": f"{base} with its language model fine-tuned",
            "merged": f"{base} with a LoRA student merged into its weights"}[kind]
    gammas = ", ".join(f"{_gamma(ratio)} ({share:.0%})" for ratio, share in info["ratio_shares"].items())
    lora = recipe["lora"]
    trained = "every weight of the language model" if lora is None else (
        f"LoRA rank {lora['rank']}, alpha {lora['alpha']}, dropout {lora['dropout']:g}, on the language model's "
        + {"attention": "attention projections"}.get(lora["target_modules"], "linear layers (attention and MLP)"))
    rows = [
        ("method", f"`{info['method']}`"),
        ("γ learned (share of examples)", gammas),
        ("training examples", f"{info['examples']:,} (item, γ) pairs"),
        ("recipe", f"{training['steps']:,} steps × {training['batch_size']} sequences, AdamW at peak lr "
                   f"{training['learning_rate']:g} (cosine, {training['warmup_steps']} warm-up steps), seed "
                   f"{training['seed']}"),
        ("trained", f"{trained}; the vision tower frozen"),
        ("trainable parameters", f"{info['trainable_parameters']:,}"),
        ("precision", ", ".join(f"{part} {dtype}" for part, dtype in info["precision"].items()
                                if part != "gradient_checkpointing")),
        ("final training loss", _final_loss(info["log"], training["log_every"])),
        *([("on-policy rounds", _rounds(info["rounds"]))] if info.get("rounds") else []),
    ]
    model = f"--model {'BASE' if local else base} --adapter ." if kind == "lora" else "--model ."
    first = next((ratio for ratio in info["ratios"] if ratio != 1.0), 1.0)
    front = [f"base_model: {base}"] if hub else []
    front += [f"library_name: {'peft' if kind == 'lora' else 'transformers'}", "tags:", "- vskip",
              "- chain-of-thought-compression"]
    return "\n".join([
        "---", *front, "---", "",
        f"# vskip student: `{info['method']}` chains of thought for {base}", "",
        f"{what}: a student distilled by vskip (V-Skip, arXiv 2601.13879) to write chains of thought compressed as the "
        f"`{info['method']}` method compressed its teacher's: asked for a ratio γ (\"Compress the reasoning to "
        "ratio 0.5.\"), it writes about γ of its full chain of thought, then its answer"
        + (", and asked for `auto`, it chooses its own budget." if AUTO in info["ratios"] else "."),
        *(["", f"Its base, {base}, is a local checkpoint: `{ADAPTER_INFO}` records where it was."] if local else []),
        *(["", f"Its base, {TINY_NAME}, is the small Qwen2-VL shipped inside vskip."] if base == TINY_NAME else []),
        "", "## Use", "", "From this directory, DATA.jsonl a vskip dataset with answers:", "",
        f"    vskip evaluate {model} --ratio {_gamma(first)} --data DATA.jsonl --out results.json", "",
        "## Training", "", "| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows), "",
        f"`{ADAPTER_INFO}` holds all of it, and the training log, for programs to read.", "",
    ])


def _gamma(ratio: float | str) -> str:
    """γ as the marker writes it, from `vskip_adapter.json` (where a γ key is text: "0.5", "auto")."""
    return ratio if ratio == AUTO else ratio_text(float(ratio))


def _rounds(rounds: list[dict]) -> str:
    """Each on-policy round's yield: the share of (item, γ) asked that had a qualifying candidate of its own."""
    def share(round_: dict) -> str:
        counts = [n for per_task in round_["yield"].values() for n in per_task.values()]
        qualified, items = sum(n["qualified"] for n in counts), sum(n["items"] for n in counts)
        return f"round {round_['round']}: {qualified:,} of {items:,} (item, γ) targets its own writing"

    return "; ".join(share(round_) for round_ in rounds)


def _final_loss(log: list[dict], log_every: int) -> str:
    if not log:
        return f"not logged (fewer than {log_every} steps)"
    last = log[-1]
    return f"{last['loss']:.4f} (mean of steps {last['step'] - log_every + 1:,}–{last['step']:,})"


def peft_adapter_dir(adapter: str | Path) -> Path:
    """`adapter` if it holds a PEFT adapter (`adapter_config.json`); else `BadInput`, which says so where it holds
    a model instead (a student distilled with `--full`, or merged), since that one loads as it is."""
    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        if (adapter / "config.json").is_file():
            raise BadInput(f"{adapter}: already a model, not a LoRA adapter (a student distilled with --full, or "
                           f"merged): it loads as it is, as --model {adapter}")
        raise BadInput(f"{adapter}: not a PEFT adapter directory (no adapter_config.json)")
    return adapter


def check_adapter(adapter: str | Path, config, base_path: str) -> None:
    """`BadInput` unless `adapter` is a PEFT adapter directory (`peft_adapter_dir`) distilled from a model like
    `config`.

    An adapter without `vskip_adapter.json` (trained elsewhere) passes on its PEFT files alone.
    """
    adapter = peft_adapter_dir(adapter)
    trained_on = adapter_info(adapter)
    expected = trained_on.get("base_signature")
    if expected and expected != base_signature(config):
        base = trained_on.get("base_model")
        raise BadInput(
            f"{adapter}: adapter was trained on {located_path(base, adapter) if base else 'another model'}, "
            f"not on a model like {base_path}; pass the base model it was distilled from as --model"
        )


def load_with_adapter(model_name: str, adapter: str | Path | None = None, **load_options) -> LoadedModel:
    """The base model, with a distilled LoRA adapter merged in when one is given.

    `load_options` go to `load_model` (`dtype`, `allow_pickle`, `trust_remote_code`).
    """
    loaded = load_model(model_name, **load_options)
    if adapter is None:
        return loaded
    check_adapter(adapter, loaded.model.config, loaded.path)
    from peft import PeftModel

    try:
        with peft_wrapping():
            model = PeftModel.from_pretrained(loaded.model, str(adapter))
    except (RuntimeError, ValueError, KeyError) as err:
        raise BadInput(
            f"{adapter}: adapter does not fit {loaded.path}: {str(err).splitlines()[0]}; "
            "pass the base model it was distilled from as --model"
        ) from None
    # Merged weights decode exactly as fast as the base model: the adapter costs nothing at run time.
    loaded.model = model.merge_and_unload().eval()
    return loaded


def load_student(model_name: str, student: str | Path, **load_options) -> LoadedModel:
    """A distilled student: `model_name` with the adapter in `student` merged, or, where `student` holds a
    whole model (`vskip distill --full`), that model."""
    if (Path(student) / "adapter_config.json").is_file():
        return load_with_adapter(model_name, student, **load_options)
    return load_model(str(student), **load_options)


def _checkpointing(model: torch.nn.Module, gradient_checkpointing: bool | None) -> None:
    """Turn on gradient checkpointing where asked, or by default for bases of `CHECKPOINTING_FROM_PARAMETERS`
    parameters or more: each decoder layer keeps only its input and recomputes the rest in the backward
    pass, one more forward's compute for a fraction of the activation memory."""
    if gradient_checkpointing is None:
        gradient_checkpointing = sum(p.numel() for p in model.parameters()) >= CHECKPOINTING_FROM_PARAMETERS
    if gradient_checkpointing:
        # transformers 5.24 renamed gradient_checkpointing_enable (kept as a deprecated alias until v6);
        # earlier 5.x releases have only the old name. Non-reentrant checkpointing needs no input grads.
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable({"use_reentrant": False})


def lora_model(
    loaded: LoadedModel, lora: LoraSettings = LoraSettings(), *, gradient_checkpointing: bool | None = None
) -> PeftModel:
    """`loaded.model` with a fresh trainable LoRA adapter on its language model's `lora.target_modules`.

    The adapter's weights are float32 whatever the base's dtype (peft's `autocast_adapter_dtype`): in
    bf16, AdamW's small updates would round away; peft casts each LoRA input up and its output back to
    the base's dtype, so the frozen base computes in bf16. See `_checkpointing` for `gradient_checkpointing`.
    """
    from peft import LoraConfig, get_peft_model

    _checkpointing(loaded.model, gradient_checkpointing)
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=loaded.family.lora_target_regex(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    with peft_wrapping():
        return get_peft_model(loaded.model, config, autocast_adapter_dtype=True)


def language_model_trainable(loaded: LoadedModel, *, gradient_checkpointing: bool | None = None) -> torch.nn.Module:
    """`loaded.model` with every weight of its language model trainable (its decoder and output layer) and
    the rest, the vision tower and its projector, frozen. See `_checkpointing` for `gradient_checkpointing`."""
    model = loaded.model
    _checkpointing(model, gradient_checkpointing)
    model.requires_grad_(False)
    model.get_decoder().requires_grad_(True)
    model.get_output_embeddings().requires_grad_(True)
    return model
