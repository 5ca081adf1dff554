"""benchmarks/bench_cot_style.py: how reference CoTs spend their words, per style, built or read."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vskip.synth import FAMILIES, build


@pytest.fixture
def bench(benchmark):
    return benchmark("bench_cot_style")


def run(bench, monkeypatch, out: Path, *args: str) -> dict:
    monkeypatch.setattr(sys, "argv", ["bench_cot_style.py", "--out", str(out), *args])
    bench.main()
    return json.loads(out.read_text())


def test_built_items_are_reported_in_both_styles(bench, monkeypatch, tmp_path):
    report = run(bench, monkeypatch, tmp_path / "built.json", "--per-family", "12")
    rows = {(row["family"], row["style"]): row for row in report["rows"]}
    assert set(rows) == {(family, style) for family in FAMILIES for style in ("natural", "terse")}
    for family in FAMILIES:
        natural, terse = rows[family, "natural"], rows[family, "terse"]
        assert natural["cots"] == terse["cots"] == 12 and terse["essential"] == 1 > natural["essential"]
        assert natural["words"] > terse["words"] and natural["A real"] == report["real_shares"][family]["A"]
        for row in (natural, terse):
            assert abs(sum(row[role] for role in "ARSK") - 100) < 0.5
    slots = {(row["family"], row["slot"]) for row in report["slots"]}
    assert {("count", "count ask"), ("relate", "neighbour"), ("doc", "add"), ("pope", "closer")} <= slots
    for row in report["slots"]:
        assert row["variants"] <= row["pool"] and 0 < row["top1"] <= row["top3"] <= 1
        assert row["draws"] >= 12 and (row["slot"] == "add") == (row["draws"] > 12)  # a doc CoT adds 0-2 times


def test_records_are_read_in_their_own_style(bench, monkeypatch, tmp_path):
    built = run(bench, monkeypatch, tmp_path / "built.json", "--per-family", "3", "--split", "val")
    for style in ("natural", "terse"):
        data = build(tmp_path / style, seed=0, n_train=0, n_val=3, n_test=0, cot_style=style, progress=False)["val"]
        report = run(bench, monkeypatch, tmp_path / f"{style}.json", "--data", str(data))
        assert [row["style"] for row in report["rows"]] == [style] * 4 and report["slots"] == []
        same = [row for row in built["rows"] if row["style"] == style]
        if style == "natural":  # the records of `vskip synth` are the items built in memory
            assert report["rows"] == same
        else:  # terse records carry no roles
            assert all(row["A"] is None and row["words"] == twin["words"] for row, twin in zip(report["rows"], same))
