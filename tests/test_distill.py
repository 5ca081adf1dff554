import json
import math
import random

import pytest
import torch
from peft import PeftModel
from safetensors import safe_open

from vskip.distill import distill, incorrect_items, lora_model, training_pairs
from vskip.encoding import record_example
from vskip.errors import BadInput
from vskip.lora import load_with_adapter
from vskip.models import load_model
from vskip.models.tiny import save_processor
from vskip.records import read_records
from vskip.training import TrainConfig, fit


@pytest.fixture(scope="module")
def base_dir(tiny_random, tmp_path_factory):
    path = tmp_path_factory.mktemp("base")
    tiny_random.model.save_pretrained(path)
    save_processor(tiny_random.processor, path)
    return path


def compressed(records):
    out = []
    for record in records:
        words = record["cot"].split()
        for ratio in (0.5, 1.0):
            keep = [i < len(words) * ratio for i in range(len(words))]
            kept = " ".join(w for w, k in zip(words, keep) if k)
            out.append({**record, "method": "vskip", "ratio": ratio, "compressed_cot": kept, "keep": keep})
    return out


@pytest.fixture(scope="module")
def adapter(base_dir, tmp_path_factory, request):
    data = request.getfixturevalue("image_dataset_module")
    out = tmp_path_factory.mktemp("adapter")
    distill(str(base_dir), compressed(read_records(data)), data.parent, out,
            training=TrainConfig(steps=3, batch_size=2, warmup_steps=1))
    return out


@pytest.fixture(scope="module")
def image_dataset_module(tmp_path_factory):
    from conftest import write_image_dataset

    return write_image_dataset(tmp_path_factory.mktemp("data"))


def test_adapter_is_peft_format_on_language_attention_only(adapter, base_dir):
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 16 and config["lora_alpha"] == 32 and config["peft_type"] == "LORA"
    assert config["base_model_name_or_path"] == str(base_dir)
    with safe_open(adapter / "adapter_model.safetensors", "pt") as weights:
        names = list(weights.keys())
    assert names and all("language_model" in name and "self_attn" in name for name in names)
    assert {name.split(".")[-3] for name in names} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert not (adapter / "checkpoint").exists()
    info = json.loads((adapter / "vskip_adapter.json").read_text())
    assert info["method"] == "vskip" and info["ratios"] == [0.5, 1.0]
    assert info["precision"] == {"base": "float32", "adapter": "float32", "gradient_checkpointing": False}


def test_adapter_loads_with_peft_and_merges_for_inference(adapter, base_dir):
    loaded = load_model(str(base_dir), device="cpu")
    assert isinstance(PeftModel.from_pretrained(loaded.model, str(adapter)), PeftModel)
    merged = load_with_adapter(str(base_dir), adapter)
    assert not any("lora" in name for name, _ in merged.model.named_parameters())


def test_uncompressed_cot_is_always_among_the_targets(image_dataset_module):
    records = read_records(image_dataset_module)
    half = [r for r in compressed(records) if r["ratio"] == 0.5]
    pairs = training_pairs(half, "vskip")
    assert sorted({ratio for _, ratio, _ in pairs}) == [0.5, 1.0]
    assert len(pairs) == 2 * len(records)


def test_only_cots_that_led_to_the_right_answer_are_learned_by_default(image_dataset_module):
    records = compressed(read_records(image_dataset_module))
    for record in records:
        record["correct"] = record["id"] != "r1"
    assert incorrect_items(records, "vskip") == {"r1"} and incorrect_items(records, "text") == set()
    assert {record["id"] for record, _, _ in training_pairs(records, "vskip")} == {"r0", "r2"}
    everything = training_pairs(records, "vskip", include_incorrect=True)
    assert {record["id"] for record, _, _ in everything} == {"r0", "r1", "r2"}
    with pytest.raises(BadInput, match="every CoT of method 'vskip' led to a wrong answer .* --include-incorrect"):
        training_pairs([{**record, "correct": False} for record in records], "vskip")


def test_a_record_without_a_cot_is_refused_as_the_cli_refuses_it(image_dataset_module):
    records = compressed(read_records(image_dataset_module))
    records[2]["cot"] = ""
    with pytest.raises(BadInput, match=f"record {records[2]['id']!r} has no 'cot'"):
        training_pairs(records, "vskip")


def test_no_steps_is_refused_before_the_model_loads(image_dataset_module, tmp_path):
    records = compressed(read_records(image_dataset_module))
    with pytest.raises(BadInput, match="steps 0 must be at least 1"):
        distill("./no-model-here", records, image_dataset_module.parent, tmp_path / "adapter",
                training=TrainConfig(steps=0))
    assert list(tmp_path.iterdir()) == []


def test_a_method_missing_from_the_file_is_named(image_dataset_module):
    with pytest.raises(BadInput, match="no compressed records for method 'text'"):
        training_pairs(compressed(read_records(image_dataset_module)), "text")


def test_adapter_refuses_a_base_of_another_shape(adapter, tiny_random, tmp_path):
    import dataclasses

    from conftest import SMALL

    from vskip.models.tiny import build_model

    other = build_model(tiny_random.processor.tokenizer, dataclasses.replace(SMALL, text_layers=1), seed=1)
    other.save_pretrained(tmp_path)
    save_processor(tiny_random.processor, tmp_path)
    with pytest.raises(BadInput, match="was trained on .* pass the base model it was distilled from"):
        load_with_adapter(str(tmp_path), adapter)


def test_a_bfloat16_base_trains_a_float32_adapter(base_dir, image_dataset_module, tmp_path):
    data = image_dataset_module
    out = distill(str(base_dir), compressed(read_records(data)), data.parent, tmp_path / "adapter",
                  training=TrainConfig(steps=3, batch_size=2, warmup_steps=1, log_every=1), dtype="bfloat16")
    info = json.loads((out / "vskip_adapter.json").read_text())
    assert info["precision"] == {"base": "bfloat16", "adapter": "float32", "gradient_checkpointing": False}
    assert all(math.isfinite(row["loss"]) for row in info["log"]) and len(info["log"]) == 3
    with safe_open(out / "adapter_model.safetensors", "pt") as weights:
        assert {weights.get_tensor(name).dtype for name in weights.keys()} == {torch.float32}
    merged = load_with_adapter(str(base_dir), out, dtype="bfloat16")  # merges into the bf16 base
    assert merged.precision == "bfloat16"


def _train(base_dir, data, gradient_checkpointing):
    """Two LoRA steps; returns the log, the trained adapter and how often decoder layer 0's MLP ran forward."""
    loaded = load_model(str(base_dir), device="cpu")
    torch.manual_seed(0)  # the same initial adapter
    model = lora_model(loaded, gradient_checkpointing=gradient_checkpointing)
    pairs = training_pairs(compressed(read_records(data)), "vskip")
    calls = []
    mlp = model.get_decoder().layers[0].mlp
    forward = mlp.forward

    def counted(*args, **kwargs):  # not a forward hook: torch's recompute skips module hooks
        calls.append(1)
        return forward(*args, **kwargs)

    mlp.forward = counted

    def sample(rng: random.Random, n: int):
        chosen = rng.choices(pairs, k=n)
        return [record_example(loaded.processor, r, data.parent, ratio=g, reply=y) for r, g, y in chosen]

    log = fit(model, loaded.processor, sample, TrainConfig(steps=2, batch_size=2, warmup_steps=1, log_every=1))
    return log, {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}, len(calls)


def test_gradient_checkpointing_recomputes_layers_without_changing_the_step(base_dir, image_dataset_module):
    log, adapter, calls = _train(base_dir, image_dataset_module, None)  # a small base: off by default
    checkpointed_log, checkpointed, recomputed = _train(base_dir, image_dataset_module, True)
    assert (calls, recomputed) == (2, 4)  # each step runs layer 0 again in the backward pass
    assert [row["loss"] for row in checkpointed_log] == pytest.approx([row["loss"] for row in log], abs=1e-6)
    assert all(torch.allclose(checkpointed[name], adapter[name], atol=1e-6) for name in adapter)
