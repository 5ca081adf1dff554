"""benchmarks/bench_writing.py: where a student's written CoT first leaves its target, and students side by side."""

from __future__ import annotations

import pytest

REFERENCE = {
    "cot": "The egg costs 3. The bun costs 3. Adding them, 3 plus 3 makes 6.",
    "roles": "SASASASASSKKKKK",
    "essential": [False, True, False, True, False, True, False, True, False, False, True, True, True, True, True],
    "visual_words": [{"index": 1, "word": "egg", "type": "object"}, {"index": 3, "word": "3.", "type": "value"}],
}


@pytest.fixture
def bench(benchmark):
    return benchmark("bench_writing")


def test_the_first_departure_names_the_targets_word_there_by_role_and_kind(bench):
    target = "The egg 3. The bun 3. Adding them, 3 plus 3 makes 6."
    assert bench.first_departure(target, target, REFERENCE) == "same"
    # The student dropped "plus": the target's word there is essential knowledge, not a value.
    assert bench.first_departure(target, "The egg 3. The bun 3. Adding them, 3 3 makes 7.", REFERENCE) == "K* other"
    assert bench.first_departure(target, "The bun 3.", REFERENCE) == "A* object"  # a wrong item, an anchor
    assert bench.first_departure(target, "The egg 3. The", REFERENCE) == "stopped"
    assert bench.first_departure("The egg 3.", "The egg 3. The bun", REFERENCE) == "went on"
    # A number the reference does not have at all.
    assert bench.first_departure("The egg 4.", "The egg 3.", REFERENCE) == "? number"


def test_students_side_by_side_weigh_each_family_by_its_items(bench):
    rows = [{"split": "val", "ratio": 0.5, "task": "count", "n": 10, "written": 0.5, "forced": 1.0},
            {"split": "val", "ratio": 0.5, "task": "doc", "n": 30, "written": 0.1, "forced": 0.5}]
    (line,) = bench.overall(rows)
    assert line["n"] == 40 and line["written"] == pytest.approx(0.2) and line["forced"] == pytest.approx(0.625)
    assert line["written ÷ forced"] == pytest.approx(0.32) and line["written doc"] == 0.1
    table = bench.comparison({"r0": {"rows": rows}, "r1": {"rows": rows}})
    assert table.splitlines()[0].startswith("| student | split | γ | n | written |") and "| r1 | val |" in table
