"""benchmarks/bench_lookup.py: where the heads look when the CoT reads a word off the image."""

from __future__ import annotations

import json
import sys

import pytest

from vskip.models import TINY_DIR
from vskip.records import read_records
from vskip.synth import COT_STYLES, build


@pytest.fixture
def bench(benchmark):
    return benchmark("bench_lookup")


@pytest.mark.parametrize("cot_style", COT_STYLES)
def test_each_lookup_names_the_word_read_and_its_target(bench, tmp_path, cot_style):
    paths = build(tmp_path, seed=4, n_train=0, n_val=8, n_test=0, cot_style=cot_style, progress=False)
    records = read_records(paths["val"])
    for record in records:
        words = [word.strip(".,") for word in record["cot"].split()]
        found = bench.lookups(record)
        for lookup, index, target in found:
            kinds = bench.parts(record, target)
            assert [cell for cell, kind in enumerate(kinds) if kind == "target"] == target
            if record["task"] == "doc":
                assert words[index] == record["document"][target[0] // 4]["item"]
                assert len(target) == 4 and kinds.count("other objects") == 8 and kinds.count("empty") == 4
                continue
            (obj,) = [o for o in record["scene"] if (o["row"] - 1) * 4 + o["col"] - 1 == target[0]]
            assert len(record["scene"]) == 16 - kinds.count("empty")
            if lookup == "count: the star":
                assert obj["shape"] == "star" and words[index - 1] == "row" and int(words[index]) == obj["row"]
            else:  # the colour word of the object in the target cell, its shape beside it
                assert words[index] == obj["colour"] and obj["shape"] in words[index - 2 : index + 2]
        names = [lookup for lookup, _, _ in found]
        if record["task"] == "doc":
            assert names == ["doc: the next line"] * 3
        else:
            assert names.count("walk: the next object") == len(record["scene"])
            assert names.count("relate: the neighbour") == (record["task"] == "relate")


@pytest.mark.skipif(not (TINY_DIR / "model.safetensors").is_file(), reason="vskip-tiny not trained")
def test_the_shipped_model_walks_the_image(bench, monkeypatch, tmp_path):
    # Terse CoTs: the style vskip-tiny was trained on.
    paths = build(tmp_path / "synth", seed=5, n_train=0, n_val=12, n_test=0, progress=False)
    out = tmp_path / "lookup.json"
    monkeypatch.setattr(sys, "argv", ["bench_lookup.py", "--data", str(paths["val"]), "--out", str(out)])
    bench.main()
    report = json.loads(out.read_text())
    rows = {row["lookup"]: row for row in report["rows"]}
    assert {"doc: the next line", "walk: the next object", "relate: the neighbour"} <= set(rows)
    for row in report["rows"]:
        assert 0 < sum(row[part] for part in bench.PARTS) <= 1 + 1e-4  # the rest of its attention is on text
    # One head puts nearly all its image attention on the next object or line (BENCHMARKS.md: 0.918 and
    # 0.993 on the val split)
    assert rows["walk: the next object"]["target"] > 0.8 and rows["doc: the next line"]["target"] > 0.9
