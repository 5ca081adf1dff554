from dataclasses import FrozenInstanceError, replace

import pytest

from vskip.errors import BadInput
from vskip.settings import (
    DEFAULT_DISTILL,
    DEFAULT_EVAL,
    EvalSettings,
    LoraSettings,
    RoundSettings,
    TinySettings,
    TrainSettings,
    VisualPath,
)


@pytest.mark.parametrize("make, message", [
    (lambda: TrainSettings(steps=0), "steps 0 must be at least 1"),
    (lambda: TrainSettings(learning_rate=0.0), "learning rate 0.0 must be above 0"),
    (lambda: LoraSettings(rank=0), "LoRA rank 0"),
    (lambda: LoraSettings(target_modules="mlp"), "target modules 'mlp': valid are attention, all-linear"),
    (lambda: RoundSettings(samples=0), "samples 0 must be at least 1"),
    (lambda: replace(DEFAULT_DISTILL, shares=((0.5, 0.6), (1.0, 0.6))), "together they must not pass 1"),
    (lambda: replace(DEFAULT_DISTILL, shares=((0.5, -0.1),)), r"shares 0.5:-0.1: each must lie in \[0, 1\]"),
    (lambda: replace(DEFAULT_DISTILL, shares=((0.5, 0.1), (0.5, 0.2))), "shares 0.5:0.1,0.5:0.2 name a γ twice"),
    (lambda: replace(DEFAULT_DISTILL, curriculum=1.0), "curriculum 1.0 must be at least 0 and below 1"),
    (lambda: replace(DEFAULT_DISTILL, length_groups=0), "length_groups 0 must be at least 1"),
    (lambda: EvalSettings(mode="think"), "mode 'think': valid are cot, direct"),
    (lambda: replace(DEFAULT_EVAL, latency_items=-1), "latency items -1 must be 0 or more"),
    (lambda: VisualPath(row="next"), "the row is one of own, predictor"),
    (lambda: TinySettings().with_language(8, 100), r"text hidden size 100 must be a multiple of 8"),
])
def test_settings_refuse_what_is_out_of_range_when_made(make, message):
    with pytest.raises(BadInput, match=message):
        make()


def test_settings_are_frozen():
    for settings in (DEFAULT_DISTILL, DEFAULT_DISTILL.training, DEFAULT_DISTILL.lora, DEFAULT_EVAL, VisualPath()):
        with pytest.raises(FrozenInstanceError):
            settings.seed = 1


def test_a_deeper_narrower_tiny_keeps_the_shipped_mlp_proportion():
    deep = TinySettings().with_language(8, 192)
    assert (deep.text_layers, deep.text_hidden, deep.text_intermediate) == (8, 192, 576)
    assert (deep.text_heads, deep.vision_embed) == (TinySettings().text_heads, TinySettings().vision_embed)
