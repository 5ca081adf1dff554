"""benchmarks/bench_lookup.py: where the heads look when the CoT names its first place."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from vskip.models import TINY_DIR
from vskip.records import read_records
from vskip.synth import build

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("bench_lookup")


def test_the_first_place_names_the_target_and_the_rest_is_split_by_shared_keys(bench, tmp_path):
    records = read_records(build(tmp_path, seed=4, n_train=0, n_val=8, n_test=0, progress=False)["val"])
    for record in records:
        if bench.lookup_of(record) is None:
            assert record["task"] == "pope" or "There are no" in record["cot"]
            continue
        index, target = bench.first_place(record)
        words = record["cot"].split()
        assert words[index - 1] in ("row", "line")
        kinds = bench.parts(record, target)
        assert [cell for cell, kind in enumerate(kinds) if kind == "target"] == target
        if record["task"] == "doc":
            assert len(target) == 4 and kinds.count("other objects") == 8 and kinds.count("empty") == 4
        else:
            (obj,) = [o for o in record["scene"] if (o["row"] - 1) * 4 + o["col"] - 1 == target[0]]
            assert f"{obj['shape']}" in record["cot"]
            assert len(record["scene"]) == 16 - kinds.count("empty")
    relate = next(r for r in records if r["task"] == "relate")
    assert bench.lookup_of(relate) == "relate: a colour-and-shape pair"


@pytest.mark.skipif(not (TINY_DIR / "model.safetensors").is_file(), reason="vskip-tiny not trained")
def test_the_shipped_model_finds_the_star(bench, monkeypatch, tmp_path):
    paths = build(tmp_path / "synth", seed=5, n_train=0, n_val=12, n_test=0, progress=False)
    out = tmp_path / "lookup.json"
    monkeypatch.setattr(sys, "argv", ["bench_lookup.py", "--data", str(paths["val"]), "--out", str(out)])
    bench.main()
    report = json.loads(out.read_text())
    rows = {row["lookup"]: row for row in report["rows"]}
    assert {"doc: an item's line", "relate: a colour-and-shape pair"} <= set(rows)
    for row in report["rows"]:
        assert 0 < sum(row[part] for part in bench.PARTS) <= 1 + 1e-4  # the rest of its attention is on text
    # One head puts all its image attention on the star (BENCHMARKS.md: 1.000 on 148 val items)
    assert rows["count: the star"]["target"] > 0.9
