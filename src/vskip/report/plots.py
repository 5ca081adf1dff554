"""The report's plots: accuracy against ActRatio (with its Pareto front), accuracy and ActRatio against γ,
latency against γ; PNG files drawn without pyplot."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..latency import MIN_SPEEDUP_ITEMS
from ..prompts import AUTO
from .tables import REFERENCE_METHODS, Row, method_rank

METHOD_COLOURS = {
    "full": "#222222",
    "direct": "#888888",
    "truncate": "#8c564b",
    "random": "#bcbd22",
    "text": "#1f77b4",
    "llmlingua2": "#17becf",
    "visual": "#ff7f0e",
    "gain": "#9467bd",
    "vskip": "#d62728",
    "dependency": "#2ca02c",
    "vskip+dependency": "#e377c2",
    "oracle": "#6b6ecf",
}
SPARE_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39")  # dark, and unlike the greys of `full` and `direct`
# Each compressor its own shape, drawn hollow: two methods at the same point (the same student figures, as at a
# smoke run's size) show as two outlines, one inside the other, instead of one hiding the other.
METHOD_MARKERS = {"truncate": "v", "random": "P", "text": "s", "llmlingua2": "h", "visual": "^", "gain": "p",
                  "vskip": "o", "dependency": "<", "vskip+dependency": "D", "oracle": "d"}  # fmt: skip
SPARE_MARKERS = (">", "8", "H")


def method_colour(method: str) -> str:
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    return SPARE_COLOURS[sum(map(ord, method)) % len(SPARE_COLOURS)]  # stable across runs, unlike hash()


def method_marker(method: str) -> str:
    if method in METHOD_MARKERS:
        return METHOD_MARKERS[method]
    return SPARE_MARKERS[sum(map(ord, method)) % len(SPARE_MARKERS)]


def _plot_method(axes, method: str, xs: Sequence[float], ys: Sequence[float]) -> None:
    """A compressor's points joined by a line, in its colour and hollow marker."""
    axes.plot(xs, ys, marker=method_marker(method), markersize=7, markerfacecolor="none", markeredgewidth=1.6,
              linewidth=1.4, color=method_colour(method), label=method, zorder=2)


def _series(rows: Iterable[Row], x: str, y: str) -> dict[str, list[tuple[float, float]]]:
    """Per method, the (x, y) points of its fixed-γ runs where both are known, sorted by x; methods in report
    order. `auto` runs (no γ) are `_auto_points`."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row.get("ratio") != AUTO and row.get(x) is not None and row.get(y) is not None:
            series.setdefault(row["method"], []).append((float(row[x]), float(row[y])))
    return {method: sorted(series[method]) for method in sorted(series, key=method_rank)}


def _auto_points(rows: Iterable[Row]) -> list[tuple[str, float, float, float]]:
    """(method, ActRatio, accuracy, half-width of accuracy's 90 % interval) of each `auto` run (a normal
    interval over its n items)."""
    return [(row["method"], row["act_ratio"], row["accuracy"],
             1.645 * math.sqrt(row["accuracy"] * (1 - row["accuracy"]) / row["n"]) if row.get("n") else 0.0)
            for row in rows if row.get("ratio") == AUTO and row.get("act_ratio") is not None
            and row.get("accuracy") is not None]  # fmt: skip


def pareto_front(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, accuracy) points no other point beats: none both cheaper-or-equal and more accurate."""
    front: list[tuple[float, float]] = []
    for cost, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((cost, accuracy))
    return front


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)  # attaches itself: no pyplot, no global backend state
    # No Software tag: the bytes then depend only on the data and the fonts.
    figure.savefig(path, dpi=100, metadata={"Software": None})


def _legend(axes, title: str | None = None) -> None:
    # Outside the axes, on the right: curves of many methods leave no corner free reliably.
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title=title,
                title_fontsize=7, alignment="left")


def _gamma_axis(axes, rows: Iterable[Row]) -> None:
    """γ from the lowest asked for to 1 (`full`'s), with a margin: the same span for one γ as for many, where
    matplotlib would zoom into ±0.02 around a single one."""
    ratios = [float(row["ratio"]) for row in rows if row.get("ratio") not in (None, AUTO)]
    low = min([*ratios, 1.0])
    margin = 0.05 + 0.05 * (1 - low)
    axes.set_xlim(low - margin, 1.0 + margin)


def _new_figure(*panels: tuple[str, str, str]):
    """A figure of one panel per (x label, y label, title), side by side; returns it and their axes."""
    figure = Figure(figsize=(0.5 + 6.5 * len(panels), 4.4), layout="constrained")
    all_axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, (xlabel, ylabel, title) in zip(all_axes, panels, strict=True):
        axes.set(xlabel=xlabel, ylabel=ylabel, title=title)
        axes.grid(True, color="#e4e4e4", linewidth=0.8)
        axes.set_axisbelow(True)
    return figure, list(all_axes)


def _new_axes(xlabel: str, ylabel: str, title: str):
    figure, (axes,) = _new_figure((xlabel, ylabel, title))
    return figure, axes


def plot_pareto(rows: Sequence[Row], path: Path) -> None:
    """Accuracy against ActRatio: one line per method, `full` and `direct` as labelled points."""
    figure, axes = _new_axes(
        "ActRatio (CoT tokens / uncompressed CoT)", "accuracy", "Accuracy against ActRatio"
    )
    axes.margins(x=0.08, y=0.1)  # room for the labels of `full` (right edge) and `direct` (left edge)
    series = _series(rows, "act_ratio", "accuracy")
    front = pareto_front(point for points in series.values() for point in points)
    if len(front) > 1:
        axes.step(*zip(*front, strict=True), where="post", color="#bbbbbb", linestyle="--", linewidth=1.2,
                  label="Pareto front", zorder=1)  # fmt: skip
    for method, points in series.items():
        xs, ys = zip(*points, strict=True)
        if method in REFERENCE_METHODS:
            marker = "*" if method == "full" else "X"
            axes.scatter(xs, ys, s=110, marker=marker, color=method_colour(method), label=method, zorder=3)
            for x, y in points:
                axes.annotate(
                    method, (x, y), xytext=(0, 9), textcoords="offset points", fontsize=9, ha="center"
                )
        else:
            _plot_method(axes, method, xs, ys)
    for method, x, y, half in _auto_points(rows):  # larger, with the bar of its 90 % interval: its own budget
        axes.errorbar([x], [y], yerr=[half], marker=method_marker(method), markersize=10, markerfacecolor="none",
                      markeredgewidth=2, capsize=3, elinewidth=1, alpha=0.8, color=method_colour(method),
                      label=f"{method}, auto", zorder=4, linestyle="none")
    if series:
        _legend(axes, title="auto: the student's own budget,\nwith its accuracy's 90 % interval" if any(
            row.get("ratio") == AUTO for row in rows) else None)
    _save(figure, path)


def plot_gamma(rows: Sequence[Row], path: Path) -> None:
    """Accuracy and ActRatio against the γ asked for, one line per method; `full` a star at γ = 1 (its ActRatio
    is 1 by definition), `direct` a dashed accuracy reference, and on the ActRatio panel the dotted diagonal
    ActRatio = γ: where a student that writes the length it is asked for lies."""
    figure, panels = _new_figure(("target ratio γ", "accuracy", "Accuracy against γ"),
                                 ("target ratio γ", "ActRatio (CoT tokens / uncompressed CoT)", "ActRatio against γ"))
    for axes, key in zip(panels, ("accuracy", "act_ratio"), strict=True):
        axes.margins(y=0.1)
        for method, points in _series(rows, "ratio", key).items():
            xs, ys = zip(*points, strict=True)
            if method == "full":
                axes.scatter(xs, ys, s=110, marker="*", color=method_colour(method), label=method, zorder=3)
            elif method == "direct":
                if key == "accuracy":  # no CoT: an accuracy to beat, and no γ
                    axes.axhline(ys[0], color=method_colour(method), linestyle="--", linewidth=1, label=method)
            else:
                _plot_method(axes, method, xs, ys)
        _gamma_axis(axes, rows)
    ratios = [float(row["ratio"]) for row in rows if row.get("ratio") not in (None, AUTO)]
    if ratios:
        low = min(ratios)
        panels[1].plot([low, 1], [low, 1], linestyle=":", color="#999999", linewidth=1, label="ActRatio = γ", zorder=1)
        # One legend for both panels: `direct` is drawn on the left one only.
        handles = {label: handle for axes in panels for handle, label in zip(*axes.get_legend_handles_labels())}
        panels[1].legend(handles.values(), handles.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                         frameon=False)
    _save(figure, path)


def plot_latency(rows: Sequence[Row], path: Path) -> None:
    """Median latency against γ per method, from 0; `full` and `direct` as dashed horizontal references. Timed
    on fewer than `latency.MIN_SPEEDUP_ITEMS` items, the title says so."""
    timed = [row["speedup_items"] for row in rows if row.get("speedup_items")]
    few = f" ({min(timed)} items timed: too few)" if timed and min(timed) < MIN_SPEEDUP_ITEMS else ""
    figure, axes = _new_axes("target ratio γ", "median latency (s), batch 1", f"Latency against γ{few}")
    for method, points in _series(rows, "ratio", "latency_s_median").items():
        xs, ys = zip(*points, strict=True)
        if method in REFERENCE_METHODS:
            axes.axhline(ys[0], color=method_colour(method), linestyle="--", linewidth=1, label=method)
        else:
            _plot_method(axes, method, xs, ys)
    _gamma_axis(axes, rows)
    axes.set_ylim(bottom=0)  # from 0, half the latency is drawn half as high: no gap of 0.01 s made to look wide
    if axes.has_data():
        _legend(axes)
    _save(figure, path)
