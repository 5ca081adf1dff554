"""What differs between architectures, and nothing else: one small `ModelFamily` each.

Everything else (prompting, generation, scoring, distillation) is shared and asks the family.
Every supported family keeps its language model's settings in `config.text_config`, and its
language model's attention modules carry `layer_idx` and that text config; what still differs is
how the image reaches the language model (placeholder tokens in the sequence, or Mllama's
cross-attention layers), whether a video reaches it too (Qwen2-VL's video tokens), and what its language
model and attention blocks are called (where LoRA goes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import BadInput, UnsupportedModel
from ..settings import LORA_TARGETS


@dataclass(frozen=True)
class ModelFamily:
    name: str
    model_types: tuple[str, ...]
    # The language model's module name (a regex), and that of its attention blocks.
    language_model: str = "language_model"
    attention: str = "self_attn"
    # Mllama reads the image through cross-attention layers instead of image tokens in the sequence.
    cross_attention: bool = False
    # The config field naming the video placeholder token, for families that read videos (None: they read none).
    video_token: str | None = None

    def lora_target_regex(self, target: str = "attention") -> str:
        """peft's `target_modules` (a regex it matches against whole module names) for a `LORA_TARGETS` name."""
        if target not in LORA_TARGETS:
            raise BadInput(f"unknown LoRA target {target!r}; choose from {', '.join(LORA_TARGETS)}")
        return LORA_TARGETS[target].format(lm=self.language_model, attention=self.attention)

    def image_token_id(self, config) -> int | None:
        """Id of the placeholder token whose positions hold the image keys (None for cross-attention)."""
        if self.cross_attention:
            return None
        for name in ("image_token_id", "image_token_index"):
            value = getattr(config, name, None)
            if value is not None:
                return int(value)
        raise UnsupportedModel(f"{config.model_type}: config names no image token id")

    def video_token_id(self, config) -> int | None:
        """Id of the placeholder token whose positions hold a video's keys (None: the family reads no videos)."""
        return None if self.video_token is None else int(getattr(config, self.video_token))

    def visual_token_ids(self, config) -> list[int]:
        """The placeholder tokens whose positions are the visual path's keys: the image's and the video's (none for
        cross-attention)."""
        return [token for token in (self.image_token_id(config), self.video_token_id(config)) if token is not None]

    def image_layers(self, config) -> list[int]:
        """Language-model layers whose attention can see the image: all, or Mllama's cross-attention ones."""
        text = config.get_text_config()
        if self.cross_attention:
            return sorted(text.cross_attention_layers)
        return list(range(text.num_hidden_layers))

    def attention_modules(self, model: torch.nn.Module, layers: list[int]) -> dict[torch.nn.Module, int]:
        """The language model's attention module of each layer in `layers` (Mllama: its cross-attention).

        Found by their config: the vision tower's attention has a config of its own.
        """
        text = model.config.get_text_config()
        wanted = set(layers)
        found = {
            module: module.layer_idx
            for module in model.modules()
            if getattr(module, "config", None) is text
            and getattr(module, "layer_idx", None) in wanted
            and hasattr(module, "q_proj")
        }
        if sorted(found.values()) != sorted(wanted):
            raise UnsupportedModel(f"{config_name(model)}: no attention module found for layers {sorted(wanted)}")
        return found

    def layer_gates(self, model: torch.nn.Module) -> dict[int, float]:
        """|tanh(gate)| of each cross-attention layer: how much of its output reaches the residual stream."""
        if not self.cross_attention:
            return {}
        return {
            module.layer_idx: float(module.cross_attn_attn_gate.detach().float().tanh().abs())
            for module in model.modules()
            if hasattr(module, "cross_attn_attn_gate")
        }


def config_name(model: torch.nn.Module) -> str:
    return getattr(model.config, "model_type", type(model).__name__)


MODEL_FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily("qwen2_vl", ("qwen2_vl",), video_token="video_token_id"),
    ModelFamily("qwen2_5_vl", ("qwen2_5_vl",), video_token="video_token_id"),
    ModelFamily("llava", ("llava",)),
    ModelFamily("idefics3", ("idefics3", "smolvlm"), language_model="text_model"),
    ModelFamily("mllama", ("mllama",), attention="(self_attn|cross_attn)", cross_attention=True),
)


def supported_model_types() -> list[str]:
    return sorted(t for family in MODEL_FAMILIES for t in family.model_types)


def family_for(config) -> ModelFamily:
    """The family of a model config; an unknown family gets an error that lists the known ones."""
    model_type = getattr(config, "model_type", None)
    for family in MODEL_FAMILIES:
        if model_type in family.model_types:
            return family
    raise UnsupportedModel(
        f"model type {model_type!r} is not supported; supported: {', '.join(supported_model_types())}"
    )
