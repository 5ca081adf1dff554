"""Paired timing on stub generators and a fake clock: the speed-up comes out right and the order alternates."""

from __future__ import annotations

import inspect
import statistics
import time

import pytest

from vskip.latency import MIN_SPEEDUP_ITEMS, paired_latency, paired_speedup, speedup_text

ITEMS = [{"id": f"r{i}"} for i in range(8)]


class Clock:
    """A clock that moves only when a stub generator runs, each call `drift` × the calls so far slower."""

    def __init__(self, drift: float = 0.0):
        self.now, self.calls, self.drift = 0.0, 0, drift

    def __call__(self) -> float:
        return self.now

    def run(self, seconds: float) -> None:
        self.now += seconds * (1 + self.drift * self.calls)
        self.calls += 1


def stub(name: str, seconds: float, clock: Clock, log: list):
    """A runner whose generation takes `seconds` on `clock`, logging what it prepares and runs."""

    def prepare(item):
        log.append(("prepare", name, item["id"]))
        return lambda: (log.append(("run", name, item["id"])), clock.run(seconds))

    return prepare


def test_two_runners_alternate_and_the_ratio_of_medians_is_exact():
    clock, log = Clock(), []
    runners = {"full": stub("full", 0.3, clock, log), "student": stub("student", 0.1, clock, log)}
    times = paired_latency(runners, ITEMS, clock=clock)
    assert times["full"] == pytest.approx({item["id"]: 0.3 for item in ITEMS})
    assert times["student"] == pytest.approx({item["id"]: 0.1 for item in ITEMS})
    runs = [(name, item) for kind, name, item in log if kind == "run"]
    assert runs[:2] == [("full", "r0"), ("student", "r0")]  # the untimed warm-up
    firsts = [runs[2 + 2 * i][0] for i in range(len(ITEMS))]
    assert firsts == ["full", "student"] * (len(ITEMS) // 2)  # who goes first alternates
    # Every item is prepared for both runners before either is timed on it.
    for item in ITEMS[1:]:
        events = [(kind, name) for kind, name, seen in log if seen == item["id"]]
        assert [kind for kind, _ in events] == ["prepare", "prepare", "run", "run"]
    speedup = paired_speedup(times["full"], times["student"])
    assert speedup == pytest.approx({"speedup": 3.0, "speedup_low": 3.0, "speedup_high": 3.0, "speedup_items": 8,
                                     "speedup_too_few": True})


def test_the_pass_shows_a_bar_of_the_items_when_asked(capsys):
    clock = Clock()
    runners = {"full": stub("full", 0.3, clock, []), "student": stub("student", 0.1, clock, [])}
    paired_latency(runners, ITEMS, clock=clock)
    assert capsys.readouterr().err == ""
    paired_latency(runners, ITEMS, clock=clock, progress=True)
    err = capsys.readouterr().err
    assert "latency at batch 1, 2 model(s)" in err and "8/8" in err


def test_many_runners_take_turns_going_first():
    clock, log = Clock(), []
    names = ("full", "text", "vskip")
    times = paired_latency({name: stub(name, 0.1, clock, log) for name in names}, ITEMS[:6], clock=clock,
                           warmup=False)
    runs = [name for kind, name, _ in log if kind == "run"]
    assert [runs[3 * i] for i in range(6)] == ["full", "text", "vskip"] * 2
    assert all(len(times[name]) == 6 for name in names)


def test_pairing_cancels_a_machine_that_slows_down():
    items = [{"id": f"r{i}"} for i in range(40)]
    clock = Clock(drift=0.05)  # each call 5 % slower than the first one more
    times = paired_latency({"full": stub("full", 0.2, clock, []), "student": stub("student", 0.1, clock, [])},
                           items, clock=clock)
    speedup = paired_speedup(times["full"], times["student"])
    assert speedup["speedup"] == pytest.approx(2.0, rel=0.03)
    assert speedup["speedup_low"] < 2.0 < speedup["speedup_high"]
    # Timed one model after the other, the same drift hides the two-fold speed-up.
    clock = Clock(drift=0.05)
    apart = {name: paired_latency({name: stub(name, seconds, clock, [])}, items, clock=clock)[name]
             for name, seconds in (("full", 0.2), ("student", 0.1))}
    assert paired_speedup(apart["full"], apart["student"])["speedup"] < 1.2


def test_real_runs_are_timed_on_the_monotonic_wall_clock():
    # The stubs above run on their own clock; timing real sleeps instead would be slow, and flaky on a busy machine.
    assert inspect.signature(paired_latency).parameters["clock"].default is time.perf_counter


def test_only_items_timed_in_both_count():
    assert paired_speedup({"a": 2.0, "b": 4.0}, {"b": 1.0, "c": 9.0}) == {
        "speedup": 4.0, "speedup_low": None, "speedup_high": None, "speedup_items": 1, "speedup_too_few": True}
    assert paired_speedup({"a": 2.0}, {}) == {"speedup": None, "speedup_low": None, "speedup_high": None,
                                              "speedup_items": 0, "speedup_too_few": None}


def test_a_speedup_of_means_counts_every_item_where_the_median_does_not():
    baseline, candidate = {"a": 1.0, "b": 1.0, "c": 10.0}, {"a": 1.0, "b": 1.0, "c": 1.0}
    assert paired_speedup(baseline, candidate)["speedup"] == 1.0
    assert paired_speedup(baseline, candidate, center=statistics.fmean)["speedup"] == 4.0


def test_a_speedup_says_what_it_stands_on_and_flags_too_few_items():
    timed = range(MIN_SPEEDUP_ITEMS)
    many = paired_speedup({i: 2.0 + i % 3 for i in timed}, {i: 1.0 for i in timed})
    assert many["speedup_items"] == MIN_SPEEDUP_ITEMS and many["speedup_too_few"] is False
    assert speedup_text(many) == f"3.00× ({many['speedup_low']:.2f}–{many['speedup_high']:.2f}; 20 items)"
    two = {"speedup": 15.17, "speedup_low": 0.92, "speedup_high": 32.58, "speedup_items": 2, "speedup_too_few": True}
    assert speedup_text(two) == "15.17× (0.92–32.58; 2 items: too few)"
    assert speedup_text(paired_speedup({"a": 2.0}, {"a": 1.0})) == "2.00× (1 item: too few)"
    older = {"speedup": 2.0, "speedup_low": 1.5, "speedup_high": 2.5}  # results from before speedup_items
    assert speedup_text(older) == "2.00× (1.50–2.50)"
    assert speedup_text(paired_speedup({}, {})) is None
