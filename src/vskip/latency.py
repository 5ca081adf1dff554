"""Latency measured side by side: speed-ups from paired timings taken in one run.

A speed-up divides two latencies, and on a shared machine a latency drifts by more than the effect
measured (`full` timed minutes before a student once gave a "speed-up" of 0.27×). So every model is
timed on every sampled item back to back with the others, the order rotated from one item to the
next (two runners alternate which goes first), and only the generation itself is timed: each runner
prepares its inputs (images, prompt, tokens, device) before the clock starts. The speed-up of a
candidate is the ratio of medians, `median(baseline) / median(candidate)`, over the items both were
timed on, with a percentile bootstrap interval (items resampled in pairs, seeded).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from tqdm.auto import tqdm

# A runner prepares one item, untimed, and returns the call to time: runner(item)().
Runner = Callable[[Any], Callable[[], object]]

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.9
# A speed-up from fewer timed items than this is flagged wherever it is shown: a median over a handful of timings
# moves with each one (2 items once gave 15.17×, 0.92–32.58).
MIN_SPEEDUP_ITEMS = 20


def paired_latency(
    runners: Mapping[str, Runner],
    items: Sequence[Any],
    *,
    key: Callable[[Any], Hashable] = lambda item: item["id"],
    warmup: bool = True,
    clock: Callable[[], float] = time.perf_counter,
    progress: bool = False,
) -> dict[str, dict[Hashable, float]]:
    """Seconds of each runner's timed call on each item: {runner name: {item key: seconds}}.

    For item i the runners run one after the other in their given order rotated by i, each item's
    inputs prepared for every runner before any is timed. With `warmup`, every runner first runs the
    first item once, untimed (the first call of a model pays for lazy initialisation). With `progress`,
    a bar counts the items timed.
    """
    names = list(runners)
    times: dict[str, dict[Hashable, float]] = {name: {} for name in names}
    # The bar opens before the warm-up, which takes a generation per model: the pass is never silent.
    with tqdm(total=len(items), desc=f"latency at batch 1, {len(names)} model(s)", unit="item",
              disable=not progress) as bar:
        if warmup and items:
            for name in names:
                runners[name](items[0])()
        for index, item in enumerate(items):
            calls = {name: runners[name](item) for name in names}
            shift = index % len(names) if names else 0
            for name in names[shift:] + names[:shift]:
                start = clock()
                calls[name]()
                times[name][key(item)] = clock() - start
            bar.update()
    return times


def paired_speedup(
    baseline: Mapping[Hashable, float],
    candidate: Mapping[Hashable, float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    center: Callable[[Iterable[float]], float] = statistics.median,
) -> dict[str, float | None]:
    """`speedup` = median(baseline) / median(candidate) over the items timed in both (2.0: twice as fast; `center`
    another statistic, such as the mean where the total time is what counts),
    and `speedup_low`, `speedup_high`: the central `confidence` interval of that ratio over `resamples`
    bootstrap resamples of the items. None where no item (or, for the interval, only one) was timed in both.
    `speedup_items`: how many items were timed in both; `speedup_too_few`: whether that is under
    MIN_SPEEDUP_ITEMS (None where there is no speed-up). Times are wall times, so positive.
    """
    paired = [(baseline[item], candidate[item]) for item in baseline if item in candidate]
    if not paired:
        return {"speedup": None, "speedup_low": None, "speedup_high": None, "speedup_items": 0,
                "speedup_too_few": None}

    def ratio(pairs: Sequence[tuple[float, float]]) -> float:
        return center([b for b, _ in pairs]) / center([c for _, c in pairs])

    low = high = None
    if len(paired) > 1:
        rng = random.Random(seed)
        ratios = sorted(ratio(rng.choices(paired, k=len(paired))) for _ in range(resamples))
        tail = (1 - confidence) / 2
        low, high = ratios[int(tail * (resamples - 1))], ratios[round((1 - tail) * (resamples - 1))]
    return {"speedup": ratio(paired), "speedup_low": low, "speedup_high": high, "speedup_items": len(paired),
            "speedup_too_few": len(paired) < MIN_SPEEDUP_ITEMS}


def speedup_text(figures: Mapping[str, Any]) -> str | None:
    """The speed-up of `paired_speedup`'s `figures` with its interval and the items it stands on, flagged where
    they are too few: "15.17× (0.92–32.58; 2 items: too few)"; None where there is none. Results from before
    `speedup_items` give the interval alone."""
    if figures.get("speedup") is None:
        return None
    parts = []
    if figures.get("speedup_low") is not None and figures.get("speedup_high") is not None:
        parts.append(f"{figures['speedup_low']:.2f}–{figures['speedup_high']:.2f}")
    items = figures.get("speedup_items")
    if items is not None:
        flag = ": too few" if figures.get("speedup_too_few") else ""
        parts.append(f"{items} item{'s' if items != 1 else ''}{flag}")
    return f"{figures['speedup']:.2f}×" + (f" ({'; '.join(parts)})" if parts else "")
