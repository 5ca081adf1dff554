"""The few facts about `accelerate launch` the stages need, and nothing when run plainly."""

from __future__ import annotations

from functools import cache


@cache
def _state():
    from accelerate import PartialState

    return PartialState()


def process_index() -> int:
    return _state().process_index


def process_count() -> int:
    return _state().num_processes


def barrier() -> None:
    if process_count() > 1:
        _state().wait_for_everyone()
