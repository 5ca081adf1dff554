"""benchmarks/eval_table.py: `vskip evaluate` results side by side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _result(accuracy, tasks, ratio=0.5):
    return {"ratio": ratio, "n": 8, "accuracy": accuracy, "varr": 0.75, "hallucination_rate": 0.125,
            "tasks": {task: {"accuracy": value} for task, value in tasks.items()}}


def test_a_row_per_file_with_every_family_in_order(tmp_path):
    vskip, full = tmp_path / "vskip.json", tmp_path / "full.json"
    vskip.write_text(json.dumps(_result(0.5, {"pope": 1.0, "count": 0.25})))
    full.write_text(json.dumps(_result(1.0, {"count": 1.0, "doc": 1.0, "pope": 1.0, "relate": 1.0}, ratio=None)))
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "eval_table.py"), f"a student={vskip}", str(full),
                           "--out", str(out)], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert lines[0] == "| student | γ | items | accuracy | count / doc / pope / relate | VARR | hallucination |"
    assert lines[2] == "| a student | 0.50 | 8 | 0.500 | 0.250 / – / 1.000 / – | 0.750 | 0.125 |"
    assert lines[3].startswith("| full | 1.00 | 8 | 1.000 | 1.000 / 1.000 / 1.000 / 1.000 |")
    assert [(saved["student"], saved["accuracy"]) for saved in json.loads(out.read_text())] == [("a student", 0.5),
                                                                                              ("full", 1.0)]
