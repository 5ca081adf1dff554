"""The vLLM backend without vLLM: its error when missing, its records against the transformers path
(a stand-in engine that decodes with transformers), and the adapter checks against vLLM's LoRA loader."""

from __future__ import annotations

import json
import shutil
import sys
import types
from types import SimpleNamespace

import pytest
from safetensors.torch import load_file, save_file

from vskip.distill import DistillSettings, distill
from vskip.encoding import Example, chat_prompt, encode
from vskip.errors import BadInput, UnsupportedModel, VSkipError
from vskip.generate import generate_batch, generation_runner
from vskip.records import read_records
from vskip.training import TrainSettings
from vskip.vllm_backend import VLLM_MISSING, VllmModel, adapter_layout_problems, generate_batch_vllm, load_vllm


class StandInLLM:
    """`vllm.LLM.generate`'s signature over transformers greedy decoding, one prompt at a time."""

    def __init__(self, loaded=None):
        self.loaded = loaded
        self.calls = []

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        self.calls.append(SimpleNamespace(prompts=prompts, params=params, lora_request=lora_request))
        tokenizer = self.loaded.processor.tokenizer
        outputs = []
        for prompt in prompts:
            images = prompt.get("multi_modal_data", {}).get("image", [])
            inputs = encode(self.loaded.processor, [Example(images, prompt["prompt"])], for_generation=True).inputs
            tokens = self.loaded.model.generate(
                **inputs, max_new_tokens=params.max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )[0, inputs["input_ids"].shape[1] :]
            outputs.append(
                SimpleNamespace(outputs=[SimpleNamespace(text=tokenizer.decode(tokens, skip_special_tokens=True))])
            )
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    """A `vllm` module with the names the backend uses; `engines` records every `vllm.LLM(...)`."""
    vllm = types.ModuleType("vllm")
    vllm.engines = []

    def llm(**options):
        vllm.engines.append(options)
        return StandInLLM()

    vllm.LLM = llm
    vllm.SamplingParams = lambda **kwargs: SimpleNamespace(**kwargs)
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda name, lora_id, path: SimpleNamespace(name=name, lora_int_id=lora_id, path=path)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", request)
    return vllm


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from conftest import write_image_dataset

    return write_image_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def adapter(saved_tiny, dataset, tmp_path_factory):
    from test_distill import compressed

    out = tmp_path_factory.mktemp("adapter")
    distill(
        str(saved_tiny),
        compressed(read_records(dataset)),
        dataset.parent,
        out,
        settings=DistillSettings(training=TrainSettings(steps=2, batch_size=2, warmup_steps=1)),
    )
    return out


def test_missing_vllm_is_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(VSkipError) as raised:
        load_vllm("vskip-tiny")
    assert str(raised.value) == VLLM_MISSING == "the vllm backend needs vLLM: pip install 'vskip[vllm]' (GPU only)"
    with pytest.raises(VSkipError, match="needs vLLM"):
        generate_batch_vllm(VllmModel(None, None, "x", "float32"), [], ".", "cot")


@pytest.mark.parametrize("mode, ratio", [("cot", None), ("cot", 0.5), ("direct", None)])
def test_records_and_prompts_match_the_transformers_path(tiny_random, dataset, fake_vllm, mode, ratio):
    records = read_records(dataset)
    engine = StandInLLM(tiny_random)
    model = VllmModel(engine, tiny_random.processor, "tiny-random", tiny_random.precision)
    served = generate_batch_vllm(model, records, dataset.parent, mode, ratio=ratio, max_new_tokens=8)
    direct = generate_batch(tiny_random, records, dataset.parent, mode, ratio=ratio, max_new_tokens=8)
    assert [set(r) for r in served] == [set(r) for r in direct]
    for a, b in zip(served, direct):
        assert {k: v for k, v in a.items() if k != "latency_s"} == {k: v for k, v in b.items() if k != "latency_s"}
        assert a["latency_s"] > 0
    (call,) = engine.calls
    assert call.params.temperature == 0 and call.params.max_tokens == 8 and call.lora_request is None
    for record, prompt in zip(records, call.prompts):
        assert prompt["prompt"] == chat_prompt(tiny_random.processor, record["question"], mode, ratio, n_images=1)
        assert len(prompt["multi_modal_data"]["image"]) == 1


def test_a_latency_runner_prepares_the_prompt_then_times_the_engine_alone(tiny_random, dataset, fake_vllm):
    record = read_records(dataset)[0]
    engine = StandInLLM(tiny_random)
    model = VllmModel(engine, tiny_random.processor, "tiny-random", tiny_random.precision)
    call = generation_runner(model, dataset.parent, "cot", ratio=0.5, max_new_tokens=3)(record)
    assert engine.calls == []  # prepared, not yet generated
    call()
    (served,) = engine.calls
    assert served.prompts[0]["prompt"] == chat_prompt(tiny_random.processor, record["question"], "cot", 0.5)
    assert served.params.max_tokens == 3


def test_adapter_is_served_as_one_lora_request(tiny_random, dataset, fake_vllm, adapter):
    records = read_records(dataset)[:1]
    engine = StandInLLM(tiny_random)
    model = VllmModel(engine, tiny_random.processor, "tiny-random", "float32", adapter=str(adapter))
    generate_batch_vllm(model, records, dataset.parent, "cot", max_new_tokens=2)
    generate_batch_vllm(model, records, dataset.parent, "cot", adapter=adapter, max_new_tokens=2)
    first, second = (call.lora_request for call in engine.calls)
    assert first == second and first.lora_int_id == 1 and first.path == str(adapter.resolve())
    with pytest.raises(BadInput, match="load the model with load_vllm"):
        generate_batch_vllm(
            VllmModel(engine, tiny_random.processor, "x", "float32"), records, dataset.parent, "cot", adapter=adapter
        )


def test_records_with_more_images_than_the_engine_takes_are_refused(tiny_random, dataset, fake_vllm):
    record = {**read_records(dataset)[0], "image": ["images/0.png", "images/1.png"]}
    with pytest.raises(BadInput, match="2 images, more than the 1"):
        generate_batch_vllm(
            VllmModel(StandInLLM(tiny_random), tiny_random.processor, "x", "float32"), [record], dataset.parent, "cot"
        )


def test_records_with_a_video_are_refused_not_generated_without_it(tiny_random, dataset, fake_vllm, monkeypatch):
    monkeypatch.setattr("vskip.media.torchvision_installed", lambda: True)  # frames load without it
    record = {**read_records(dataset)[0], "video": ["images/0.png", "images/1.png"]}
    with pytest.raises(BadInput, match="record r0: the vllm backend reads no videos; use the transformers backend"):
        generate_batch_vllm(
            VllmModel(StandInLLM(tiny_random), tiny_random.processor, "x", "float32"), [record], dataset.parent, "cot"
        )


def test_load_vllm_enables_lora_for_a_checked_adapter(saved_tiny, adapter, fake_vllm):
    model = load_vllm(str(saved_tiny), adapter=adapter, gpu_memory_utilization=0.5)
    (options,) = fake_vllm.engines
    assert options == dict(
        model=str(saved_tiny),
        dtype="float32",  # auto without a bf16 GPU, as the transformers backend decides
        trust_remote_code=False,
        limit_mm_per_prompt={"image": 1},
        enable_lora=True,
        max_lora_rank=32,  # the smallest vLLM accepts for the adapter's rank
        max_loras=1,
        gpu_memory_utilization=0.5,
    )
    assert model.adapter == str(adapter) and model.processor.tokenizer is not None
    with pytest.raises(BadInput, match="vLLM cannot serve this adapter: LoRA rank 32 is greater than max_lora_rank 16"):
        load_vllm(str(saved_tiny), adapter=adapter, max_lora_rank=16)


def test_load_vllm_refuses_mllama(tmp_path, fake_vllm):
    from transformers import MllamaConfig

    MllamaConfig().save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModel, match="not served by vLLM"):
        load_vllm(str(tmp_path))


def test_distilled_adapter_fits_vllm(adapter, saved_tiny):
    config = json.loads((adapter / "adapter_config.json").read_text())
    # vskip's target_modules is a regex string; vLLM takes the modules from the weight names instead.
    assert isinstance(config["target_modules"], str)
    assert adapter_layout_problems(adapter) == []
    assert adapter_layout_problems(adapter, base_model=saved_tiny) == []
    assert adapter_layout_problems(adapter, base_model=adapter / "no-such-base") == []


def _edited(adapter, tmp_path, config=None, weights=None):
    """A copy of `adapter` with `config` merged into its adapter_config.json and `weights` added or replaced."""
    copy = tmp_path / "edited"
    shutil.copytree(adapter, copy)
    path = copy / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **(config or {})}))
    if weights is not None:
        tensors = load_file(copy / "adapter_model.safetensors")
        tensors.update(weights(tensors))
        save_file(tensors, copy / "adapter_model.safetensors")
    return copy


def _extra_lora(module: str, fan_in: int, fan_out: int):
    import torch

    return lambda tensors: {
        f"base_model.model.{module}.lora_A.weight": torch.zeros(16, fan_in),
        f"base_model.model.{module}.lora_B.weight": torch.zeros(fan_out, 16),
    }


def _renamed(tensors):
    name = next(iter(tensors))
    return {
        name.replace(".lora_A.weight", ".lora_A.default.weight").replace(
            ".lora_B.weight", ".lora_B.default.weight"
        ): tensors.pop(name)
    }


@pytest.mark.parametrize(
    "edit, problem",
    [
        (dict(config={"r": 1024}), "LoRA rank 1024 is greater than max_lora_rank 512"),
        (dict(config={"bias": "all"}), "bias is 'all'"),
        (dict(config={"use_dora": True}), "DoRA"),
        (dict(config={"modules_to_save": ["lm_head"]}), "modules_to_save ['lm_head']"),
        (dict(config={"init_lora_weights": "pissa"}), "init_lora_weights 'pissa'"),
        (dict(config={"r": None}), "no r"),
        (dict(weights=_extra_lora("model.language_model.layers.0.input_layernorm", 64, 64)), "not a linear layer"),
        (dict(weights=_extra_lora("model.visual.blocks.0.attn.qkv", 32, 96)), "outside the language model"),
        (dict(weights=_extra_lora("model.language_model.layers.0.mlp.up_proj", 32, 128)), "maps 32 -> 128 features"),
        (dict(weights=_renamed), "not a PEFT LoRA weight"),
    ],
)
def test_broken_adapters_are_named(adapter, tmp_path, edit, problem):
    problems = adapter_layout_problems(_edited(adapter, tmp_path, **edit))
    assert any(problem in p for p in problems), problems


def test_rank_above_the_engine_limit_and_names_without_a_base(adapter, tmp_path):
    assert adapter_layout_problems(adapter, max_lora_rank=8) == ["LoRA rank 32 is greater than max_lora_rank 8"]
    assert "not one vLLM accepts" in adapter_layout_problems(adapter, max_lora_rank=12)[0]
    edited = _edited(adapter, tmp_path, weights=_extra_lora("model.language_model.layers.0.input_layernorm", 64, 64))
    (problem,) = adapter_layout_problems(edited, base_model=tmp_path / "no-such-base")
    assert problem.startswith("model.language_model.layers.0.input_layernorm: not a language-model projection")


def test_a_vllm_model_is_a_backend_that_times_no_baseline_beside_it(tiny_random, fake_vllm):
    from vskip.errors import VSkipWarning
    from vskip.evaluate import baseline_model
    from vskip.generate import generation_backend, generation_settings

    model = VllmModel(StandInLLM(tiny_random), tiny_random.processor, "tiny-random", "float32", adapter="student")
    assert generation_backend(model) is model
    assert generation_settings(model, "cot", None, 8)["backend"] == "vllm"
    with pytest.raises(BadInput, match="sampled generation runs on the transformers backend only"):
        model.batch_generator(".", "cot", ratio=None, max_new_tokens=8, temperature=1.0, seed=0)
    with pytest.warns(VSkipWarning, match="no speed-up: the vllm backend does not time a baseline beside the run"):
        assert baseline_model({"model": "tiny-random"}, model, "tiny-random") is None
