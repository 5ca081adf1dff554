import warnings

import pytest
import torch

from vskip.errors import BadInput, VSkipWarning
from vskip.precision import DTYPES, dtype_name, resolve_dtype, stage_precision


def test_auto_is_bfloat16_only_on_a_gpu_that_has_it(monkeypatch):
    assert resolve_dtype("auto", "cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_dtype("auto", "cuda:0") == torch.bfloat16
    assert resolve_dtype("auto", "cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # a V100 or T4
    assert resolve_dtype("auto", "cuda") == torch.float32


def test_named_dtypes_are_taken_as_asked_and_others_refused():
    for name in DTYPES[1:]:
        assert dtype_name(resolve_dtype(name, "cpu")) == name
    with pytest.raises(BadInput, match="'half' is not one of auto, bfloat16, float16, float32"):
        resolve_dtype("half", "cpu")


def test_each_stage_adds_its_own_precision():
    generated = {"id": "a", "precision": {"generate": "bfloat16"}}
    assert stage_precision(generated, "score", "float32") == {"generate": "bfloat16", "score": "float32"}
    assert generated["precision"] == {"generate": "bfloat16"}  # the input record is left as it was
    assert stage_precision({"id": "b", "precision": None}, "score", "float32") == {"score": "float32"}


def test_bfloat16_on_a_cpu_that_emulates_it_is_taken_with_a_warning(monkeypatch):
    from vskip import precision

    monkeypatch.setattr(precision, "cpu_multiplies_bfloat16", lambda: False)
    with pytest.warns(VSkipWarning, match="this CPU has no bfloat16 arithmetic"):
        assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_multiplies_bfloat16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
        assert resolve_dtype("auto", "cpu") == torch.float32
