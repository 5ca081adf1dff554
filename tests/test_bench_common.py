"""The helpers the benchmarks share (benchmarks/common.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def common(benchmark):
    return benchmark("common")


def test_first_per_task_takes_a_prefix_of_every_family(common):
    records = [{"id": f"{task}-{i}", "task": task} for task in ("pope", "count") for i in range(3)]
    assert [r["id"] for r in common.first_per_task(records, 2)] == ["count-0", "count-1", "pope-0", "pope-1"]
    assert len(common.first_per_task(records, None)) == 6
