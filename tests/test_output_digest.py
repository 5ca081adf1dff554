"""benchmarks/output_digest.py: two runs of one pipeline digest alike whatever the wall clock said."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def digest(benchmark):
    return benchmark("output_digest").digest


def _run(root, *, latency, answer):
    (root / "eval").mkdir(parents=True)
    result = {"accuracy": 0.5, "latency_s_mean": latency, "speedup": 2 / latency, "adapter": str(root / "adapters")}
    (root / "eval" / "full.json").write_text(json.dumps(result))
    items = [{"id": "a", "prediction": answer, "latency_s": latency}, {"id": "b", "prediction": "2", "latency_s": 1}]
    (root / "items.jsonl").write_text("\n".join(json.dumps(item) for item in items))
    (root / "latency.png").write_bytes(str(latency).encode())
    return root


def test_timings_and_the_runs_own_directory_do_not_count(digest, tmp_path):
    first, second = _run(tmp_path / "one", latency=0.1, answer="1"), _run(tmp_path / "two", latency=0.3, answer="1")
    for name in ("eval/full.json", "items.jsonl", "latency.png"):
        assert digest(first / name, first) == digest(second / name, second)
    assert digest(first / "latency.png", first) == "timed"


def test_a_different_answer_does(digest, tmp_path):
    first, second = _run(tmp_path / "one", latency=0.1, answer="1"), _run(tmp_path / "two", latency=0.1, answer="3")
    assert digest(first / "items.jsonl", first) != digest(second / "items.jsonl", second)
    assert digest(first / "eval/full.json", first) == digest(second / "eval/full.json", second)
