"""Every model family on a tiny random model of its real transformers class: the captured visual path
equals the same formula computed from eager `output_attentions`."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import partial
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from vskip import prompts
from vskip.encoding import Example, chat_prompt, encode
from vskip.errors import BadInput, UnsupportedModel
from vskip.models import family_for, supported_model_types
from vskip.score import score_batch
from vskip.settings import LORA_TARGETS, VISUAL_AGGREGATIONS, VISUAL_ROWS, VisualPath

VOCAB = 96
IMAGE, VIDEO = 90, 91  # image and video placeholder token ids in the hand-built inputs
TEXT = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)


def _sequences(n_tokens: int, runs: tuple[int, ...] = (IMAGE,), lengths=(24, 19)):
    """Two right-padded rows: text, then per entry of `runs` a run of `n_tokens` of that placeholder (the image's
    or the video's) and a text token, then text (the scored part)."""
    generator = torch.Generator().manual_seed(1)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(3, 80, (length,), generator=generator)
        for run, token in enumerate(runs):
            start = 2 + run * (n_tokens + 1)
            ids[row, start : start + n_tokens] = token
        mask[row, :length] = 1
    first_text = 2 + len(runs) * (n_tokens + 1)
    positions = [list(range(first_text, length)) for length in lengths]
    return ids, mask, positions


def _qwen_vision_inputs(n_images_rows: int, grid=(1, 4, 4), seed: int = 2):
    """Patches (channels x 2 frames x 14 x 14 each) and grids of one image or video per row."""
    t, h, w = grid
    patches = torch.randn(n_images_rows * t * h * w, 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(seed))
    return patches, torch.tensor([grid] * n_images_rows)


QWEN_VISION = {
    "qwen2_vl": dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2),
    "qwen2_5_vl": dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, window_size=56,
        fullatt_block_indexes=[1],
    ),
}


def _qwen_model(family: str):
    """A tiny random Qwen2-VL or Qwen2.5-VL (patches of 14 px, 2 frames deep, merged 2x2) with the hand-built
    inputs' token ids."""
    import transformers

    name = {"qwen2_vl": "Qwen2VL", "qwen2_5_vl": "Qwen2_5_VL"}[family]
    config = getattr(transformers, f"{name}Config")(
        text_config=dict(TEXT, rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[1, 1, 2])),
        vision_config=QWEN_VISION[family],
        image_token_id=IMAGE,
        video_token_id=VIDEO,
        vision_start_token_id=92,
        vision_end_token_id=93,
    )
    return getattr(transformers, f"{name}ForConditionalGeneration")(config)


def build_qwen2_5_vl():
    model = _qwen_model("qwen2_5_vl")
    ids, mask, positions = _sequences(4)
    pixels, grid = _qwen_vision_inputs(2)
    inputs = dict(
        input_ids=ids,
        attention_mask=mask,
        pixel_values=pixels,
        image_grid_thw=grid,
        mm_token_type_ids=(ids == IMAGE).long(),
    )
    return model, inputs, positions


def build_qwen_video(family: str):
    """Each row shows an image, then a two-frame video (one temporal patch: 4 tokens, as the image), as the
    processor lays them out: `pixel_values_videos` and `video_grid_thw` beside the image's, and the modality of
    every position in `mm_token_type_ids` (1 image, 2 video), from which M-RoPE places them."""
    model = _qwen_model(family)
    ids, mask, positions = _sequences(4, runs=(IMAGE, VIDEO))
    pixels, grid = _qwen_vision_inputs(2)
    frames, video_grid = _qwen_vision_inputs(2, seed=6)
    inputs = dict(
        input_ids=ids,
        attention_mask=mask,
        pixel_values=pixels,
        image_grid_thw=grid,
        pixel_values_videos=frames,
        video_grid_thw=video_grid,
        mm_token_type_ids=(ids == IMAGE).long() + 2 * (ids == VIDEO).long(),
    )
    return model, inputs, positions


def build_llava():
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    config = LlavaConfig(
        vision_config=dict(
            model_type="clip_vision_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        ),
        text_config=dict(TEXT, model_type="llama"),
        image_token_index=IMAGE,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    model = LlavaForConditionalGeneration(config)
    ids, mask, positions = _sequences(4)  # (28 / 14)^2 patches, CLS dropped
    pixels = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(3))
    return model, dict(input_ids=ids, attention_mask=mask, pixel_values=pixels), positions


def build_idefics3():
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    config = Idefics3Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=56,
            patch_size=14,
        ),
        text_config=dict(TEXT, model_type="llama"),
        image_token_id=IMAGE,
        scale_factor=2,
    )
    model = Idefics3ForConditionalGeneration(config)
    ids, mask, positions = _sequences(4)  # (56 / 14)^2 = 16 patches, pixel-shuffled by 2 -> 4 tokens
    pixels = torch.randn(2, 1, 3, 56, 56, generator=torch.Generator().manual_seed(4))
    return model, dict(input_ids=ids, attention_mask=mask, pixel_values=pixels), positions


def build_mllama():
    from transformers import MllamaConfig, MllamaForConditionalGeneration

    config = MllamaConfig(
        vision_config=dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_global_layers=1,
            attention_heads=2,
            intermediate_size=64,
            vision_output_dim=64,
            intermediate_layers_indices=[0],
            image_size=28,
            patch_size=14,
            max_num_tiles=2,
            supported_aspect_ratios=[[1, 1], [1, 2]],
        ),
        text_config=dict(TEXT, num_hidden_layers=4, cross_attention_layers=[1, 3], rope_parameters=None),
        image_token_index=IMAGE,
    )
    model = MllamaForConditionalGeneration(config)
    with torch.no_grad():  # random init closes the gates (tanh 0 = no image); open them to differing widths
        for value, module in zip(
            (0.4, -0.9), (m for m in model.modules() if hasattr(m, "cross_attn_attn_gate")), strict=True
        ):
            module.cross_attn_attn_gate.fill_(value)
    ids, mask, positions = _sequences(1)
    # Row 0's image has two tiles, row 1's one tile and one padding tile.
    cross = torch.zeros(2, ids.shape[1], 1, 2, dtype=torch.long)
    cross[0, 2:, 0, :] = 1
    cross[1, 2:, 0, 0] = 1
    cross[mask == 0] = 0
    inputs = dict(
        input_ids=ids,
        attention_mask=mask,
        pixel_values=torch.randn(2, 1, 2, 3, 28, 28, generator=torch.Generator().manual_seed(5)),
        aspect_ratio_ids=torch.tensor([[2], [1]]),
        aspect_ratio_mask=torch.tensor([[[1, 1]], [[1, 0]]]),
        cross_attention_mask=cross,
    )
    return model, inputs, positions


def build_qwen2_vl(tiny_processor):
    """The Qwen2-VL path end to end: the project's processor builds the inputs."""
    from vskip.models.tiny import TinySettings, build_model

    model = build_model(
        tiny_processor.tokenizer,
        TinySettings(
            vocab_size=400,
            text_hidden=64,
            text_layers=3,
            text_heads=4,
            text_kv_heads=2,
            text_intermediate=64,
            vision_embed=32,
            vision_depth=1,
            vision_heads=2,
        ),
    )
    examples = [
        Example(
            [Image.new("RGB", (112, 112), colour)],
            chat_prompt(tiny_processor, question, "cot"),
            prompts.response(cot, "2"),
        )
        for colour, question, cot in [
            ("red", "Is there a red star?", "The star is red. The red objects are the circle."),
            ("blue", "How many?", "That makes 2."),
        ]
    ]
    encoded = encode(tiny_processor, examples)
    positions = [list(range(span.start, span.stop)) for span in encoded.reply_spans]
    return model, encoded.inputs, positions


BUILDERS = {
    "qwen2_vl": build_qwen2_vl,
    "qwen2_5_vl": build_qwen2_5_vl,
    "llava": build_llava,
    "idefics3": build_idefics3,
    "mllama": build_mllama,
}
# The families that read videos, each row showing an image and a video: the visual path's keys are both.
VIDEO_BUILDERS = {f"{family}+video": partial(build_qwen_video, family) for family in ("qwen2_vl", "qwen2_5_vl")}


def eager_attentions(model, inputs) -> tuple[torch.Tensor, ...]:
    """Every layer's attention weights, from eager `output_attentions` (the model is left on SDPA)."""
    model.set_attn_implementation({"text_config": "eager"})
    try:
        with torch.no_grad():
            return model(**inputs, output_attentions=True, use_cache=False).attentions
    finally:
        model.set_attn_implementation({"text_config": "sdpa"})


def eager_visual_mass(
    model, family, inputs, positions, key_layers, visual: VisualPath, key_tokens: list[int] | None = None
) -> list[list[float]]:
    """The visual path from eager `output_attentions`, by the same formula as the capture: at each token's row or
    the row before (`visual.row`), the mass on the keys of `key_tokens` (default: the family's visual tokens, image
    and video), layers and heads reduced in `visual.aggregation`'s order."""
    attentions = eager_attentions(model, inputs)
    gates = family.layer_gates(model)
    key_tokens = torch.tensor(family.visual_token_ids(model.config) if key_tokens is None else key_tokens)
    result = []
    for b, tokens in enumerate(positions):
        rows = tokens if visual.row == "own" else [position - 1 for position in tokens]
        per_layer = []
        for layer in key_layers:
            weights = attentions[layer][b][:, rows].double()  # (H, Q, keys)
            if family.cross_attention:
                tiles = inputs["cross_attention_mask"][b][rows].flatten(1)  # (Q, images x tiles)
                real = tiles.repeat_interleave(weights.shape[-1] // tiles.shape[-1], dim=-1).bool()
                p = weights * real
                p = p / p.sum(-1, keepdim=True)
                entropy = -(p * p.clamp_min(1e-300).log()).sum(-1)
                n = real.sum(-1).double()
                value = (1 - entropy / n.log()) * gates[layer] * real.any(-1)
            else:
                value = weights[..., torch.isin(inputs["input_ids"][b], key_tokens)].sum(-1)
            per_layer.append(value)
        masses = torch.stack(per_layer)  # (key layers, heads, rows)
        reduced = masses.mean(0).amax(0) if visual.aggregation == "layer-mean-head-max" else masses.amax(1).mean(0)
        result.append(reduced.tolist())
    return result


VISUAL_PATHS = [VisualPath(row=row, aggregation=aggregation) for row in VISUAL_ROWS
                for aggregation in VISUAL_AGGREGATIONS]  # fmt: skip


@pytest.mark.parametrize("visual", VISUAL_PATHS, ids=lambda visual: f"{visual.row}-{visual.aggregation}")
@pytest.mark.parametrize("name", sorted(BUILDERS | VIDEO_BUILDERS))
def test_captured_visual_mass_equals_eager_attention(name, visual, tiny_processor):
    torch.manual_seed(0)
    builder = (BUILDERS | VIDEO_BUILDERS)[name]
    model, inputs, positions = builder(tiny_processor) if name == "qwen2_vl" else builder()
    model.eval()
    family = family_for(model.config)
    assert family.name == name.removesuffix("+video")
    key_layers = family.image_layers(model.config)  # every layer that sees the image
    visual = replace(visual, key_layers=tuple(key_layers))
    scores = score_batch(model, family, inputs, positions, visual=visual)
    captured = scores.visual_mass
    expected = eager_visual_mass(model, family, inputs, positions, key_layers, visual)
    error = max(
        abs(a - e)
        for rows_a, rows_e in zip(captured, expected, strict=True)
        for a, e in zip(rows_a, rows_e, strict=True)
    )
    assert error < 1e-4, f"{name}: max error {error:.2e}"
    assert max(max(row) for row in captured) > 0  # the image is seen: the check is not vacuous
    assert model.config.get_text_config()._attn_implementation == "sdpa"  # restored
    # The capture rides in the layers' own attention calls: the text path is what a plain forward gives.
    plain = score_batch(model, family, inputs, positions, visual=None).surprisal
    assert sum(scores.surprisal, []) == pytest.approx(sum(plain, []), abs=1e-5)


@pytest.mark.parametrize("name", sorted(VIDEO_BUILDERS))
def test_the_video_tokens_are_visual_keys(name):
    """The captured mass counts the video's keys: it exceeds the image's alone by their share of every row."""
    torch.manual_seed(0)
    model, inputs, positions = VIDEO_BUILDERS[name]()
    model.eval()
    family = family_for(model.config)
    assert family.video_token_id(model.config) == VIDEO
    key_layers = family.image_layers(model.config)
    visual = VisualPath(key_layers=tuple(key_layers), aggregation="layer-mean-head-max")
    captured = score_batch(model, family, inputs, positions, visual=visual).visual_mass
    image_only = eager_visual_mass(model, family, inputs, positions, key_layers, visual, key_tokens=[IMAGE])
    video_only = eager_visual_mass(model, family, inputs, positions, key_layers, visual, key_tokens=[VIDEO])
    assert min(min(row) for row in video_only) > 1e-2
    assert all(c > i + 1e-2 for rows_c, rows_i in zip(captured, image_only) for c, i in zip(rows_c, rows_i))


@pytest.mark.parametrize("aggregation", VISUAL_AGGREGATIONS)
@pytest.mark.parametrize("name", sorted(set(BUILDERS) - {"mllama"}))
def test_dependency_path_equals_eager_attention(name, aggregation, tiny_processor):
    """The attention a few later rows pay to each scored token, from the capture and from eager weights."""
    torch.manual_seed(0)
    builder = BUILDERS[name]
    model, inputs, positions = builder(tiny_processor) if name == "qwen2_vl" else builder()
    model.eval()
    family = family_for(model.config)
    key_layers = family.image_layers(model.config)
    answer_rows = [tokens[-2:] for tokens in positions]  # the last rows: they see (almost) every scored token
    visual = VisualPath(key_layers=tuple(key_layers), aggregation=aggregation)
    captured = score_batch(model, family, inputs, positions, visual=visual, answer_rows=answer_rows).dependency
    attentions = eager_attentions(model, inputs)
    for b, tokens in enumerate(positions):
        per_layer = torch.stack([attentions[layer][b][:, answer_rows[b]][..., tokens].double()
                                 for layer in key_layers])  # (key layers, heads, answer rows, tokens)
        combined = per_layer.mean(0).amax(0) if aggregation == "layer-mean-head-max" else per_layer.amax(1).mean(0)
        expected = combined.mean(0)
        assert max(abs(a - e) for a, e in zip(captured[b], expected.tolist(), strict=True)) < 1e-4
        assert max(captured[b]) > 0


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_lora_targets_are_linear_layers_of_the_language_model(name, tiny_processor):
    builder = BUILDERS[name]
    model = (builder(tiny_processor) if name == "qwen2_vl" else builder())[0]
    family = family_for(model.config)
    language = {id(module) for module in model.get_decoder().modules()}
    layers = model.config.get_text_config().num_hidden_layers
    found = {}
    for target in LORA_TARGETS:
        regex = family.lora_target_regex(target)
        matched = [module for name, module in model.named_modules() if re.fullmatch(regex, name)]
        assert all(isinstance(module, torch.nn.Linear) and id(module) in language for module in matched), target
        found[target] = matched
    # Every decoder layer (self- or cross-attention) has its 4 attention projections and 3 MLP projections.
    assert len(found["attention"]) == 4 * layers and len(found["all-linear"]) == 7 * layers
    assert {id(m) for m in found["attention"]} < {id(m) for m in found["all-linear"]}
    with pytest.raises(BadInput, match="unknown LoRA target 'everything'"):
        family.lora_target_regex("everything")


def test_unpadded_rows_use_the_causal_mask(tiny_random):
    """One unpadded sequence: SDPA gets no mask at all, and the capture must add the causal one itself."""
    model, family, processor = tiny_random.model, tiny_random.family, tiny_random.processor
    example = Example(
        [Image.new("RGB", (112, 112), "red")],
        chat_prompt(processor, "Is there a red star?", "cot"),
        prompts.response("The star is red.", "yes"),
    )
    encoded = encode(processor, [example])
    positions = [list(range(encoded.reply_spans[0].start, encoded.reply_spans[0].stop))]
    captured = score_batch(model, family, encoded.inputs, positions, visual=VisualPath(key_layers=(0, 1))).visual_mass
    expected = eager_visual_mass(model, family, encoded.inputs, positions, [0, 1], VisualPath())
    assert max(abs(a - e) for a, e in zip(captured[0], expected[0], strict=True)) < 1e-4


def test_family_for_an_unknown_model_type_names_the_supported_ones():
    with pytest.raises(UnsupportedModel) as err:
        family_for(SimpleNamespace(model_type="blip_2"))
    for model_type in supported_model_types():
        assert model_type in str(err.value)
