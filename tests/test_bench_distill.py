"""benchmarks/bench_distill.py, the recipe ablation, end to end at toy sizes."""

from __future__ import annotations

import json
import sys

from vskip.synth import build


def test_recipes_are_distilled_and_evaluated_on_val_against_the_teacher(benchmark, monkeypatch, tmp_path):
    bench = benchmark("bench_distill")
    data, work, out = tmp_path / "synth", tmp_path / "work", tmp_path / "distill.json"
    build(data, seed=4, n_train=3, n_val=2, n_test=0, progress=False)
    recipes = ["lora-attention-r16-600", "full-1500"]
    argv = ["bench_distill.py", "--data", str(data), "--work", str(work), "--out", str(out), "--n-train", "3",
            "--n-val", "2", "--steps", "2", "--ratios", "0.5", "0.7", "--recipes", *recipes]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()

    report = json.loads(out.read_text())
    assert report["full"]["n"] == 8  # two val items of each of the four families
    assert [(row["recipe"], row["ratio"]) for row in report["rows"]] == [
        ("full (teacher)", 1.0), *[(recipe, ratio) for recipe in recipes for ratio in (0.5, 0.7)]
    ]
    lora, full_tune = report["recipes"]
    assert lora["trained_parameters"] < full_tune["trained_parameters"]
    assert lora["settings"]["training"]["steps"] == 2 and full_tune["settings"]["lora"] is None
    assert all(0 <= row["accuracy"] <= 1 and row["act_ratio"] >= 0 for row in report["rows"])
    students = report["rows"][1:]
    assert all(row["forced_accuracy"] is None or 0 <= row["forced_accuracy"] <= 1 for row in students)
    assert all({"accuracy_count", "accuracy_doc", "accuracy_pope", "accuracy_relate"} <= set(row) for row in students)
    # A rerun reuses every student and evaluation: the merge alone, the same figures.
    monkeypatch.setattr(sys, "argv", [*argv[:-3], "--recipes"])
    bench.main()
    assert json.loads(out.read_text())["rows"] == report["rows"]
