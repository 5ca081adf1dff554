"""The main job end to end, in its quick form, on the shipped model."""

import json

import pytest

from vskip.cli import main
from vskip.models import TINY_DIR

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (TINY_DIR / "model.safetensors").is_file(), reason="vskip-tiny not trained"),
]

KEYS = ("method", "ratio", "n", "accuracy", "cot_tokens_mean", "act_ratio", "latency_s_mean", "speedup", "varr",
        "hallucination_rate", "pope_f1", "pope_yes_ratio")


def test_quick_demo_writes_every_artifact_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    printed = capsys.readouterr().out
    assert str(out / "report.html") in printed and "| vskip | 0.5 |" in printed.replace("0.50", "0.5")
    rows = json.loads((out / "results.json").read_text())
    assert [(r["method"], r["ratio"]) for r in rows] == [("full", 1.0), ("direct", 1.0), ("text", 0.5),
                                                          ("vskip", 0.5)]
    assert all(key in row for row in rows for key in KEYS)
    # One latency pass timed every run beside `full`: its own speed-up is 1 by construction.
    assert set(json.loads((out / "eval" / "latency.json").read_text())) == {"full", "direct", "text@0.5", "vskip@0.5"}
    assert rows[0]["speedup"] == 1.0 and all(row["speedup"] is not None for row in rows)
    for name in ("results.md", "pareto.png", "gamma.png", "latency.png", "report.html", "compressed.jsonl"):
        assert (out / name).stat().st_size > 0
    for method in ("text", "vskip"):
        assert (out / "adapters" / method / "adapter_model.safetensors").is_file()
    html = (out / "report.html").read_text()
    assert "<s" in html and "http://" not in html and "https://" not in html
    for task in ("count", "doc", "pope", "relate"):  # an example of every family, right or wrong
        assert f'<span class="muted">· {task}</span>' in html
    full = next(line for line in (out / "results.md").read_text().splitlines() if line.startswith("| full |"))
    assert full.split(" | ")[4] == "1.000"  # ActRatio of the uncompressed CoT, also on the plot
    # A second run finds every stage done and only rewrites the report.
    before = (out / "eval" / "vskip-0.5.json").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    assert (out / "eval" / "vskip-0.5.json").stat().st_mtime_ns == before
