import json

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.utils import is_torchvision_available

from vskip.encoding import Example, chat_prompt, encode
from vskip.errors import UnsupportedModel
from vskip.models import load_model, load_processor


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
