"""benchmarks/gpu.py, the real-size GPU figures, run end to end at toy sizes on the CPU."""

from __future__ import annotations

import json
import sys

import torch
from transformers import Qwen2VLForConditionalGeneration


def test_every_figure_is_measured_at_toy_sizes(benchmark, monkeypatch, tmp_path):
    gpu = benchmark("gpu")
    out = tmp_path / "gpu.json"
    monkeypatch.setattr(sys, "argv", ["gpu.py", "--tiny", "--out", str(out)])
    gpu.main()
    report = json.loads(out.read_text())
    assert report["dtype"] == "bfloat16" and report["shape"]["distill_batch"] == 4
    (model,) = report["models"]
    scoring = model["scoring"]
    assert [row["variant"] for row in scoring] == ["forward", "text_path", "vskip", "eager"]
    assert all(row["seconds"] > 0 and row["peak_mib"] > 0 for row in scoring)
    assert {(row["tokens"], row["image_tokens"], row["cot_tokens"]) for row in scoring} == {(42, 16, 16)}
    assert [row["batch"] for row in model["generation"]] == [1, 2]
    assert all(row["tokens_per_s"] > 0 and row["new_tokens"] == 4 for row in model["generation"])
    distill = model["distill"]
    assert [(row["gradient_checkpointing"], row["adapter_dtype"]) for row in distill] == [
        (False, "float32"), (True, "float32")
    ]
    assert all("error" not in row and row["seconds"] > 0 for row in distill)


def test_the_configs_are_the_published_qwen2_vl_sizes(benchmark, monkeypatch):
    gpu = benchmark("gpu")
    published = {"qwen2-vl-2b": 2_208_985_600, "qwen2-vl-7b": 8_291_375_616}  # Qwen's 2.2B and 8.3B
    for name, parameters in published.items():
        with torch.device("meta"):
            model = Qwen2VLForConditionalGeneration._from_config(gpu.load_config(name))
        assert sum(p.numel() for p in model.parameters()) == parameters, name
