import json
import sys
import types

import pytest

from vskip.errors import BadInput
from vskip.lora import ADAPTER_INFO, base_signature, check_adapter, load_with_adapter
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
