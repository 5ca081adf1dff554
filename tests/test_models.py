import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.utils import is_torchvision_available

from vskip.encoding import Example, chat_prompt, encode
from vskip.errors import BadInput, UnsupportedModel
from vskip.models import (
    TINY_DIR,
    TINY_NAME,
    check_model_source,
    load_model,
    load_processor,
    located_path,
    model_identity,
    portable_path,
)
from vskip.models.loading import HUB_PROBE_TIMEOUT, is_hub_id


def test_tokenizer_round_trips_text(tiny_processor):
    tokenizer = tiny_processor.tokenizer
    for text in ["The tea costs 14. 4 plus 3 makes 7.", "Is there a green star?\nAnswer: no", "ünïcode & $53.20"]:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_save_and_load_give_the_same_model_and_processor(tiny_random, saved_tiny):
    loaded = load_model(str(saved_tiny), device="cpu")
    assert sorted(p.name for p in saved_tiny.glob("*.safetensors")) == ["model.safetensors"]
    assert json.loads((saved_tiny / "processor_config.json").read_text())["processor_class"] == "Qwen2VLProcessor"
    image = Image.new("RGB", (112, 112), "red")
    example = Example([image], chat_prompt(loaded.processor, "Is there a red star?", "cot"), "Answer: no")
    before = encode(tiny_random.processor, [example]).inputs
    after = encode(loaded.processor, [example]).inputs
    assert before.keys() == after.keys()
    # With torchvision the saved processor loads the torchvision image processor, whose resize and
    # normalisation round differently in the last bit (1.2e-7 here); the tokens are the same.
    assert all(torch.allclose(before[key].float(), after[key].float(), atol=1e-6) for key in before)
    assert all(torch.equal(before[key], after[key]) for key in before if key != "pixel_values")
    with torch.no_grad():
        assert torch.allclose(tiny_random.model(**before).logits, loaded.model(**after).logits, atol=1e-5)


@pytest.mark.skipif(not is_torchvision_available(), reason="the standard Qwen2-VL processor needs torchvision")
def test_auto_classes_load_the_saved_checkpoint(saved_tiny):
    assert type(AutoProcessor.from_pretrained(saved_tiny)).__name__ == "Qwen2VLProcessor"
    assert type(AutoModelForImageTextToText.from_pretrained(saved_tiny)).__name__ == "Qwen2VLForConditionalGeneration"


def test_processor_loads_without_torchvision_too(saved_tiny):
    assert type(load_processor(str(saved_tiny))).__name__ == "Qwen2VLProcessor"


def test_unsupported_architecture_names_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UnsupportedModel, match="qwen2_vl"):
        load_model(str(tmp_path))


def test_directory_without_a_model_is_refused(tmp_path):
    with pytest.raises(UnsupportedModel, match="not a loadable model"):
        load_model(str(tmp_path))


@pytest.mark.parametrize(
    ("name", "hub"),
    [("Qwen/Qwen2-VL-2B-Instruct", True), ("gpt2", True), ("HuggingFaceTB/SmolVLM-256M-Instruct", True),
     ("./model", False), ("../model", False), ("/models/qwen", False), ("~/models/qwen", False),
     ("runs/adapters/vskip", False), ("org/../name", False), (".hidden", False), ("org\\name", False)],
)
def test_a_name_that_looks_like_a_path_is_never_a_hub_id(name, hub):
    assert is_hub_id(name) is hub


def test_a_missing_local_model_fails_before_the_hub_is_asked(monkeypatch, tmp_path):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("the hub was asked")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.chdir(tmp_path)
    for name in ("./model", "runs/a/model", str(tmp_path / "model")):
        with pytest.raises(BadInput, match="no such model directory"):
            check_model_source(name)
    (tmp_path / "org" / "name").mkdir(parents=True)
    check_model_source("org/name")  # a directory named like a hub id is that directory
    check_model_source("vskip-tiny")


def test_an_unreachable_hub_is_one_fast_error(monkeypatch):
    import socket
    import time

    timeouts = []

    def unreachable(address, timeout=None):
        timeouts.append(timeout)
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    started = time.perf_counter()
    with pytest.raises(BadInput, match="cannot be reached"):
        load_model("someone/some-vlm")
    assert time.perf_counter() - started < 5 and timeouts == [HUB_PROBE_TIMEOUT]


def test_a_model_is_recorded_by_its_absolute_directory(saved_tiny, monkeypatch):
    monkeypatch.chdir(saved_tiny.parent)
    assert model_identity(saved_tiny.name) == model_identity(str(saved_tiny)) == str(saved_tiny.resolve())
    assert model_identity("Qwen/Qwen2-VL-2B-Instruct") == "Qwen/Qwen2-VL-2B-Instruct"
    assert model_identity(TINY_NAME) == model_identity(str(TINY_DIR)) == TINY_NAME  # the same in every checkout


def test_a_file_records_a_model_relative_to_itself(saved_tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(saved_tiny.parent)
    results = tmp_path / "runs" / "eval"
    results.mkdir(parents=True)
    names = (saved_tiny.name, str(saved_tiny), TINY_NAME, str(TINY_DIR), "Qwen/Qwen2-VL-2B-Instruct")
    recorded = {name: portable_path(name, results) for name in names}
    assert recorded[saved_tiny.name] == os.path.relpath(saved_tiny.resolve(), results.resolve())
    assert recorded[saved_tiny.name].startswith("../") and recorded[str(saved_tiny)] == str(saved_tiny.resolve())
    assert recorded[TINY_NAME] == recorded[str(TINY_DIR)] == TINY_NAME
    assert recorded["Qwen/Qwen2-VL-2B-Instruct"] == "Qwen/Qwen2-VL-2B-Instruct"
    identities = {name: model_identity(name) for name in names}
    monkeypatch.chdir(tmp_path)  # read back from elsewhere: each names the same model
    assert {name: model_identity(located_path(recorded[name], results)) for name in names} == identities
    assert portable_path("runs/eval", "runs") == "./eval"  # never read back as the hub id `eval`
    assert located_path("./eval", "runs") == str(Path("runs/eval"))
