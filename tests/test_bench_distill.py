"""benchmarks/bench_distill.py, the recipe ablation, end to end at toy sizes."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from vskip.synth import build

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_recipes_are_distilled_and_evaluated_on_val_against_the_teacher(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    bench = importlib.import_module("bench_distill")
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


def test_forced_accuracy_answers_after_the_given_cot(monkeypatch, tmp_path):
    """The shipped teacher, handed each item's reference CoT (γ = 1), answers what the CoT concludes."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    bench = importlib.import_module("bench_distill")
    from vskip.models import load_model

    build(tmp_path, seed=9, n_train=0, n_val=3, n_test=0, cot_style="terse", progress=False)  # the teacher's style
    records = [json.loads(line) for line in (tmp_path / "val.jsonl").read_text().splitlines()]
    handed = [{**record, "compressed_cot": record["cot"], "ratio": 1.0} for record in records]
    assert bench.forced_accuracy(load_model("vskip-tiny"), handed, tmp_path, 1.0, batch_size=4) == 1.0
    # Given the CoT of another item of the same family, it answers what that CoT concludes, not its own item.
    swapped = [{**record, "compressed_cot": other["cot"], "ratio": 1.0}
               for record, other in zip(records, records[1:] + records[:1]) if record["answer"] != other["answer"]
               and record["task"] == other["task"]]
    assert swapped and bench.forced_accuracy(load_model("vskip-tiny"), swapped, tmp_path, 1.0, batch_size=4) < 0.5
