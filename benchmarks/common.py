"""Helpers the benchmarks share and vskip itself does not need."""

from __future__ import annotations

from collections.abc import Iterable

from vskip.records import Record


def first_per_task(records: Iterable[Record], n: int | None) -> list[Record]:
    """The first `n` records of each task (all of them when `n` is None), tasks in sorted order:
    a split's families come in blocks, so a plain prefix would sample one family only."""
    by_task: dict[str, list[Record]] = {}
    for record in records:
        by_task.setdefault(record["task"], []).append(record)
    return [record for task in sorted(by_task) for record in by_task[task][:n]]
