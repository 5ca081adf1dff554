"""benchmarks/bench_reading.py: teacher-forced reading of every visual word, by family and role."""

from __future__ import annotations

import json
import sys

import pytest

from vskip.models import TINY_DIR
from vskip.records import read_records
from vskip.synth import COT_STYLES, build


@pytest.fixture
def bench(benchmark):
    return benchmark("bench_reading")


@pytest.mark.parametrize("cot_style", COT_STYLES)
def test_roles_split_positions_by_axis_and_place_and_attributes_by_the_question(bench, tmp_path, cot_style):
    paths = build(tmp_path, seed=4, n_train=0, n_val=6, n_test=0, cot_style=cot_style, progress=False)
    records = read_records(paths["val"])
    relate = next(r for r in records if r["task"] == "relate")
    roles = bench.word_roles(relate)
    asked = set(relate["question"].rstrip("?").split())
    for index, role in roles.items():
        word = relate["cot"].split()[index].strip(".,")
        assert role == next(w["type"] for w in relate["visual_words"] if w["index"] == index) + (
            " (asked)" if word in asked else "")
    star = next(r for r in records if "the star" in r["question"])
    assert {"row (first)", "column (first)"} <= set(bench.word_roles(star).values())
    doc = next(r for r in records if r["task"] == "doc")
    assert "object (asked)" in set(bench.word_roles(doc).values()) <= {"object (asked)", "object", "value"}
    for record in records:
        assert sorted(bench.word_roles(record)) == [w["index"] for w in record["visual_words"]]


@pytest.mark.skipif(not (TINY_DIR / "model.safetensors").is_file(), reason="vskip-tiny not trained")
def test_the_shipped_model_reads_its_receipts(bench, monkeypatch, tmp_path):
    # Terse CoTs: the style vskip-tiny was trained on.
    paths = build(tmp_path / "synth", seed=4, n_train=0, n_val=5, n_test=0, progress=False)
    out = tmp_path / "reading.json"
    monkeypatch.setattr(sys, "argv", ["bench_reading.py", "--data", str(paths["val"]), "--out", str(out)])
    bench.main()
    rows = json.loads(out.read_text())["rows"]
    words = sum(len(r["visual_words"]) for r in read_records(paths["val"]))
    assert sum(row["n"] for row in rows) == words
    assert {row["task"] for row in rows} == {"count", "relate", "doc", "pope"}
    read = {(row["task"], row["role"]): row["read"] for row in rows}
    # 100 % on 1,500 val words (BENCHMARKS.md)
    assert read["doc", "object (asked)"] >= 0.9 and read["doc", "value"] >= 0.9
