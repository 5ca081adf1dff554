"""What differs between architectures, and nothing else: one small adapter per family.

Everything else (prompting, generation, scoring, distillation) is shared and asks the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnsupportedModel


@dataclass(frozen=True)
class Adapter:
    name: str
    model_types: tuple[str, ...]
    # LoRA goes on the language model's attention projections; the regex keeps it off the vision tower.
    lora_target_regex: str
    # Mllama reads the image through cross-attention layers instead of image tokens in the sequence.
    cross_attention: bool = False

    def image_token_id(self, config) -> int | None:
        """Id of the placeholder token whose positions hold the image keys (None for cross-attention)."""
        if self.cross_attention:
            return None
        for name in ("image_token_id", "image_token_index"):
            value = getattr(config, name, None)
            if value is not None:
                return int(value)
        raise UnsupportedModel(f"{config.model_type}: config names no image token id")


_SELF_ATTENTION = r".*language_model.*\.self_attn\.(q_proj|k_proj|v_proj|o_proj)"

ADAPTERS: tuple[Adapter, ...] = (
    Adapter("qwen2_vl", ("qwen2_vl",), _SELF_ATTENTION),
    Adapter("qwen2_5_vl", ("qwen2_5_vl",), _SELF_ATTENTION),
    Adapter("llava", ("llava",), _SELF_ATTENTION),
    Adapter("idefics3", ("idefics3", "smolvlm"), _SELF_ATTENTION),
    Adapter(
        "mllama",
        ("mllama",),
        r".*language_model.*\.(self_attn|cross_attn)\.(q_proj|k_proj|v_proj|o_proj)",
        cross_attention=True,
    ),
)


def supported_model_types() -> list[str]:
    return sorted(t for adapter in ADAPTERS for t in adapter.model_types)


def adapter_for(config) -> Adapter:
    """The adapter of a model config; an unknown family gets an error that lists the known ones."""
    model_type = getattr(config, "model_type", None)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise UnsupportedModel(
        f"model type {model_type!r} is not supported; supported: {', '.join(supported_model_types())}"
    )
