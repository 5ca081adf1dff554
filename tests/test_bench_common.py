"""The helpers the benchmarks share (benchmarks/common.py), the one sibling a benchmark imports."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from vskip.settings import BATCH_SIZE


@pytest.fixture
def common(benchmark):
    return benchmark("common")


def test_first_per_task_takes_a_prefix_of_every_family(common):
    records = [{"id": f"{task}-{i}", "task": task} for task in ("pope", "count") for i in range(3)]
    assert [r["id"] for r in common.first_per_task(records, 2)] == ["count-0", "count-1", "pope-0", "pope-1"]
    assert len(common.first_per_task(records, None)) == 6


def test_every_benchmark_reads_the_model_options_from_one_place_with_vskips_defaults(common):
    parser = argparse.ArgumentParser()
    common.model_arguments(parser)
    assert vars(parser.parse_args([])) == {"model": "vskip-tiny", "dtype": "auto", "batch_size": BATCH_SIZE}
    bare = argparse.ArgumentParser()
    common.model_arguments(bare, dtype=False, batch_size=False)
    assert vars(bare.parse_args([])) == {"model": "vskip-tiny"}


def test_no_benchmark_imports_a_sibling_but_common():
    folder = Path(__file__).parents[1] / "benchmarks"
    scripts = {path.stem for path in folder.glob("*.py")}
    for path in folder.glob("*.py"):
        imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        assert imported & scripts <= {"common"}, path.name
