import json
import sys
import types

import pytest

from vskip.errors import BadInput
from vskip.lora import ADAPTER_INFO, base_signature, check_adapter, load_with_adapter, model_card
from vskip.vllm_backend import load_vllm


def _adapter_for_another_base(path, config):
    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 16}))
    signature = {**base_signature(config), "hidden_size": base_signature(config)["hidden_size"] + 1}
    (path / ADAPTER_INFO).write_text(json.dumps({"base_model": "a-wider-model", "base_signature": signature}))
    return path


def test_both_backends_refuse_an_adapter_of_another_base_with_one_message(saved_tiny, tiny_random, tmp_path,
                                                                          monkeypatch):
    adapter = _adapter_for_another_base(tmp_path / "adapter", tiny_random.model.config)
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))  # the check comes before any engine
    with pytest.raises(BadInput, match="trained on a-wider-model, not on a model like") as merged:
        load_with_adapter(str(saved_tiny), adapter)
    with pytest.raises(BadInput) as served:
        load_vllm(str(saved_tiny), adapter=adapter)
    assert str(merged.value) == str(served.value)


def test_a_directory_without_peft_files_is_not_an_adapter(tiny_random, tmp_path):
    with pytest.raises(BadInput, match="not a PEFT adapter directory"):
        check_adapter(tmp_path, tiny_random.model.config, "base")
    (tmp_path / "adapter_config.json").write_text("{}")
    check_adapter(tmp_path, tiny_random.model.config, "base")  # trained elsewhere: the PEFT files decide


INFO = {
    "base_model": "Qwen/Qwen2-VL-2B-Instruct", "method": "vskip", "kind": "lora", "ratios": [0.5, 0.7, "auto", 1.0],
    "ratio_shares": {"0.5": 0.25, "0.7": 0.25, "auto": 0.25, "1.0": 0.25}, "examples": 6000,
    "recipe": {"training": {"steps": 1500, "batch_size": 16, "learning_rate": 0.001, "warmup_steps": 30, "seed": 0,
                            "log_every": 50},
               "lora": {"rank": 32, "alpha": 64, "dropout": 0.0, "target_modules": "all-linear"}},
    "trainable_parameters": 18464768, "precision": {"base": "bfloat16", "adapter": "float32",
                                                   "gradient_checkpointing": True},
    "log": [{"step": 1450, "loss": 0.61, "lr": 1e-5}, {"step": 1500, "loss": 0.5432, "lr": 0.0}],
}


def test_a_model_card_says_what_the_student_is_in_words():
    card = model_card(INFO)
    assert card.startswith("---\nbase_model: Qwen/Qwen2-VL-2B-Instruct\nlibrary_name: peft\n")
    assert "A LoRA adapter for Qwen/Qwen2-VL-2B-Instruct: a student distilled by vskip" in card
    assert "asked for `auto`, it chooses its own budget" in card
    assert "    vskip evaluate --model Qwen/Qwen2-VL-2B-Instruct --adapter . --ratio 0.5 --data" in card
    for row in ["| γ learned (share of examples) | 0.5 (25%), 0.7 (25%), auto (25%), 1 (25%) |",
                "| training examples | 6,000 (item, γ) pairs |",
                "| recipe | 1,500 steps × 16 sequences, AdamW at peak lr 0.001 (cosine, 30 warm-up steps), seed 0 |",
                "| trained | LoRA rank 32, alpha 64, dropout 0, on the language model's linear layers (attention and "
                "MLP); the vision tower frozen |",
                "| precision | base bfloat16, adapter float32 |",
                "| final training loss | 0.5432 (mean of steps 1,451–1,500) |"]:
        assert row in card


def test_a_model_card_names_a_local_base_by_its_directory_alone():
    card = model_card({**INFO, "base_model": "/home/someone/models/qwen2-vl-2b", "kind": "full", "log": [],
                       "recipe": {**INFO["recipe"], "lora": None}, "ratios": [0.5, 1.0],
                       "ratio_shares": {"0.5": 0.5, "1.0": 0.5}})
    assert "/home/someone" not in card and "base_model:" not in card and "library_name: transformers" in card
    assert "qwen2-vl-2b with its language model fine-tuned" in card and "is a local checkpoint" in card
    assert "vskip evaluate --model . --ratio 0.5" in card and "| trained | every weight of the language model" in card
    assert "auto" not in card
