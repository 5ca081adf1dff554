"""The report: a Markdown results table, three plots and one self-contained HTML page.

`write_report` takes plain data — one row of metrics per (method, ratio) and a few examples with
their word scores and keep masks — so it knows nothing of models or files beyond the example
images it embeds. The HTML page loads nothing from anywhere: CSS is inline and images are base64
data URIs, so it can be mailed or attached to a CI run as one file.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError

from .errors import BadInput
from .prompts import AUTO

Row = Mapping[str, Any]

# Reference points first, then the compressors from the crudest to V-Skip.
METHOD_ORDER = ("full", "direct", "truncate", "random", "text", "visual", "gain", "vskip")
REFERENCE_METHODS = ("full", "direct")
METHOD_COLOURS = {
    "full": "#222222",
    "direct": "#888888",
    "truncate": "#8c564b",
    "random": "#bcbd22",
    "text": "#1f77b4",
    "visual": "#ff7f0e",
    "gain": "#9467bd",
    "vskip": "#d62728",
}
SPARE_COLOURS = ("#2ca02c", "#e377c2", "#17becf", "#7f7f7f")

RESULT_COLUMNS = (
    "method", "ratio", "n", "accuracy", "act_ratio", "cot_tokens_mean", "latency_s_median", "speedup",
    "speedup_interval", "varr", "hallucination_rate", "pope_f1", "pope_yes_ratio",
)  # fmt: skip
TASK_METRICS = {"accuracy": "acc", "act_ratio": "ActRatio", "varr": "VARR", "hallucination_rate": "halluc."}
LABELS = {
    "ratio": "γ",
    "act_ratio": "ActRatio",
    "cot_tokens_mean": "CoT tokens",
    "latency_s_median": "latency (s)",
    "speedup": "speed-up",
    "speedup_interval": "90 % interval",
    "varr": "VARR",
    "hallucination_rate": "hallucination",
    "pope_f1": "POPE F1",
    "pope_yes_ratio": "POPE yes",
}
# What each column of the results table means, shown under it (`definitions`).
COLUMN_DEFINITIONS = {
    "method": "`full` is the teacher with its whole chain of thought (CoT), `direct` the teacher answering with "
              "none; any other is the student distilled on the CoTs that method compressed: `truncate` keeps the "
              "CoT's first words, `random` words drawn at random, `text` the most surprising words (the text path "
              "alone, as TokenSkip and LLMLingua prune), `visual` the words that attend most to the image, and "
              "`vskip` both paths' words in turn (V-Skip).",
    "ratio": "the target ratio: the share of the teacher's CoT tokens the student is asked to keep (1 for `full` "
             "and `direct`); `auto`: the student is asked to compress as far as the reasoning stays correct, and "
             "chooses its own budget.",
    "n": "test items.",
    "accuracy": "share of test items answered right (the answer matched after normalisation; a yes/no reply read "
                "as POPE reads it).",
    "act_ratio": "the CoT tokens written over those of the teacher's full CoT on the same items (sum over sum): the "
                 "share of the CoT actually written, to set against γ. 1 for `full`, 0 for `direct`.",
    "cot_tokens_mean": "mean length of the CoT written, in tokens.",
    "latency_s_median": "median seconds to answer one item at batch 1 (greedy, with a KV cache), on a seeded sample "
                        "of test items, the same for every run.",
    "speedup": "`full`'s median latency over this run's, on the same items timed side by side (2.00× is twice "
               "as fast).",
    "speedup_interval": "the speed-up's 90 % bootstrap interval over the timed items.",
    "varr": "visual-anchor retention rate: of the visual words (colours, shapes, objects) of the item's reference "
            "CoT, the share the CoT written still has.",
    "hallucination_rate": "false claims: of the claims the CoT makes about the image (a colour and shape, an "
                          "object in a cell, an item's price), the share that are false of it.",
    "pope_f1": "F1 on the POPE questions (is there a … in the image?), “yes” the positive class.",
    "pope_yes_ratio": "share of the POPE questions answered “yes”; half of them are yes, so above 0.5 a run leans "
                      "to yes (it claims objects that are not there).",
}
# Under the per-task table, and for a cell with no figure.
TASK_DEFINITION = ("acc, ActRatio, VARR and halluc. are accuracy, ActRatio, VARR and hallucination over each "
                   "family's items alone (an `auto` student's ActRatio per family is the budget it chose there).")
MISSING_DEFINITION = ("no figure: nothing to measure it on (no POPE questions, visual words or claims about the "
                      "image), or nothing timed.")
FORMATS = {"ratio": "{:.2f}", "cot_tokens_mean": "{:.1f}", "latency_s_median": "{:.3f}", "speedup": "{:.2f}×"}
MISSING = "–"
MAX_IMAGE_SIDE = 512  # larger images are shrunk before embedding, to keep the page small


# ---------------------------------------------------------------------------------------------- tables


def format_value(column: str, value: Any) -> str:
    """One cell as text: None (or NaN) → "–", floats with the column's format (3 decimals by default)."""
    if value is None or (isinstance(value, numbers.Real) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral) and column not in FORMATS:
        return str(value)
    return FORMATS.get(column, "{:.3f}").format(float(value))


def _cells(rows: Iterable[Row], columns: Sequence[str], labels: Mapping[str, str]) -> tuple[list, list, list]:
    """Header labels, right-alignment flags (numeric columns) and the formatted cells of each row."""
    rows = list(rows)
    header = [labels.get(column, column) for column in columns]
    numeric = [
        any(isinstance(row.get(c), numbers.Real) and not isinstance(row.get(c), bool) for row in rows)
        for c in columns
    ]
    body = [[format_value(column, row.get(column)) for column in columns] for row in rows]
    return header, numeric, body


def format_table(rows: Iterable[Row], columns: Sequence[str], *, labels: Mapping[str, str] = LABELS) -> str:
    """A Markdown table of `rows` (dicts) over `columns` (keys); numeric columns are right-aligned."""
    header, numeric, body = _cells(rows, columns, labels)

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    rule = "|" + "|".join("---:" if right else "---" for right in numeric) + "|"
    return "\n".join([line(header), rule, *(line(cells) for cells in body)]) + "\n"


def _html_table(rows: Iterable[Row], columns: Sequence[str], labels: Mapping[str, str] = LABELS) -> str:
    header, numeric, body = _cells(rows, columns, labels)
    head = "".join(f"<th>{html.escape(label)}</th>" for label in header)
    lines = []
    for cells in body:
        tds = []
        for column, right, cell in zip(columns, numeric, cells, strict=True):
            text = html.escape(cell)
            if column == "method":
                text = f'<span class="swatch" style="background:{_colour(cell)}"></span>{text}'
            tds.append(f'<td class="num">{text}</td>' if right else f"<td>{text}</td>")
        lines.append("<tr>" + "".join(tds) + "</tr>")
    # A wide table (many tasks) scrolls inside its own box instead of widening the page.
    return (f'<div class="table-box"><table class="results"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table></div>')


def with_reference_act_ratio(rows: Iterable[Row]) -> list[Row]:
    """The rows with `full`'s ActRatio filled in where its run had no baseline: 1, by definition, as the
    uncompressed CoT is what ActRatio divides by. So `full` is a point on the accuracy–ActRatio plot."""
    return [
        {**row, "act_ratio": 1.0} if row["method"] == "full" and row.get("act_ratio") is None else row for row in rows
    ]


def with_speedup_interval(rows: Iterable[Row]) -> list[Row]:
    """The rows with `speedup_interval`, their speed-up's bootstrap interval as text ("1.62–2.10"), where known."""
    return [
        {**row, "speedup_interval": f"{row['speedup_low']:.2f}–{row['speedup_high']:.2f}"}
        if row.get("speedup_low") is not None and row.get("speedup_high") is not None else row
        for row in rows
    ]


def _method_rank(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method), "") if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def sort_rows(rows: Iterable[Row]) -> list[Row]:
    """Reference rows (`full`, `direct`) first, then by ratio from high to low, then `auto` (the students that
    choose their own budget), each by method."""

    def key(row: Row) -> tuple:
        ratio = row.get("ratio")
        auto = ratio == AUTO
        return (row["method"] not in REFERENCE_METHODS, auto, 0.0 if auto else -(ratio if ratio is not None else 1.0),
                _method_rank(row["method"]))  # fmt: skip

    return sorted(rows, key=key)


def task_table(rows: Iterable[Row]) -> tuple[list[Row], list[str], dict[str, str]]:
    """The per-task breakdown as one wide table: a row per (method, ratio), per task its TASK_METRICS.

    Returns the rows, their columns and the column labels; no rows when no row has `tasks`.
    """
    rows = sort_rows(rows)
    tasks = sorted({task for row in rows for task in row.get("tasks") or {}})
    if not tasks:
        return [], [], {}
    labels = dict(LABELS)
    columns = ["method", "ratio"]
    for task in tasks:
        for metric, short in TASK_METRICS.items():
            columns.append(f"{task}:{metric}")
            labels[f"{task}:{metric}"] = f"{task} {short}"
    wide = [
        {"method": row["method"], "ratio": row.get("ratio"),
         **{f"{task}:{metric}": (row.get("tasks") or {}).get(task, {}).get(metric)
            for task in tasks for metric in TASK_METRICS}}
        for row in rows
    ]  # fmt: skip
    return wide, columns, labels


def definitions() -> list[tuple[str, str]]:
    """(label, what it means) of each column of the results table, then of the mark of a missing figure."""
    columns = [(LABELS.get(column, column), COLUMN_DEFINITIONS[column]) for column in RESULT_COLUMNS]
    return [*columns, (MISSING, MISSING_DEFINITION)]


def results_markdown(rows: Sequence[Row], title: str, note: str | None = None) -> str:
    """The results table and the per-task one, each column defined; `note`, if any, in bold above them."""
    text = f"# {title}\n\n" + (f"**{note}**\n\n" if note else "") + "## Results\n\n"
    text += format_table(sort_rows(rows), RESULT_COLUMNS) + "\n"
    text += "".join(f"- **{label}**: {meaning}\n" for label, meaning in definitions())
    per_task, columns, labels = task_table(rows)
    if per_task:
        text += "\n## Per task\n\n" + format_table(per_task, columns, labels=labels) + f"\n{TASK_DEFINITION}\n"
    return text


# ---------------------------------------------------------------------------------------------- plots


def _colour(method: str) -> str:
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    return SPARE_COLOURS[sum(map(ord, method)) % len(SPARE_COLOURS)]  # stable across runs, unlike hash()


def _series(rows: Iterable[Row], x: str, y: str) -> dict[str, list[tuple[float, float]]]:
    """Per method, the (x, y) points of its fixed-γ runs where both are known, sorted by x; methods in report
    order. `auto` runs (no γ) are `_auto_points`."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row.get("ratio") != AUTO and row.get(x) is not None and row.get(y) is not None:
            series.setdefault(row["method"], []).append((float(row[x]), float(row[y])))
    return {method: sorted(series[method]) for method in sorted(series, key=_method_rank)}


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


def _legend(axes) -> None:
    # Outside the axes, on the right: curves of many methods leave no corner free reliably.
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


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
            axes.scatter(xs, ys, s=110, marker=marker, color=_colour(method), label=method, zorder=3)
            for x, y in points:
                axes.annotate(
                    method, (x, y), xytext=(0, 9), textcoords="offset points", fontsize=9, ha="center"
                )
        else:
            axes.plot(xs, ys, marker="o", markersize=4, color=_colour(method), label=method, zorder=2)
    for method, x, y, half in _auto_points(rows):
        axes.errorbar([x], [y], yerr=[half], marker="D", markersize=7, capsize=3, color=_colour(method),
                      label=f"{method}, auto (90 % interval)", zorder=4, linestyle="none")
    if series:
        _legend(axes)
    _save(figure, path)


def plot_gamma(rows: Sequence[Row], path: Path) -> None:
    """Accuracy and ActRatio against the γ asked for, one line per method; `full` a star at γ = 1 (its ActRatio
    is 1 by definition), `direct` a dashed accuracy reference, and on the ActRatio panel the dotted diagonal
    ActRatio = γ: where a student that writes the length it is asked for lies."""
    figure, panels = _new_figure(("target ratio γ", "accuracy", "Accuracy against γ"),
                                 ("target ratio γ", "ActRatio (CoT tokens / uncompressed CoT)", "ActRatio against γ"))
    for axes, key in zip(panels, ("accuracy", "act_ratio"), strict=True):
        axes.margins(x=0.08, y=0.1)
        for method, points in _series(rows, "ratio", key).items():
            xs, ys = zip(*points, strict=True)
            if method == "full":
                axes.scatter(xs, ys, s=110, marker="*", color=_colour(method), label=method, zorder=3)
            elif method == "direct":
                if key == "accuracy":  # no CoT: an accuracy to beat, and no γ
                    axes.axhline(ys[0], color=_colour(method), linestyle="--", linewidth=1, label=method)
            else:
                axes.plot(xs, ys, marker="o", markersize=4, color=_colour(method), label=method, zorder=2)
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
    """Median latency against γ per method; `full` and `direct` as dashed horizontal references."""
    figure, axes = _new_axes("target ratio γ", "median latency (s), batch 1", "Latency against γ")
    for method, points in _series(rows, "ratio", "latency_s_median").items():
        xs, ys = zip(*points, strict=True)
        if method in REFERENCE_METHODS:
            axes.axhline(ys[0], color=_colour(method), linestyle="--", linewidth=1, label=method)
        else:
            axes.plot(xs, ys, marker="o", markersize=4, color=_colour(method), label=method)
    if axes.has_data():
        _legend(axes)
    _save(figure, path)


# ---------------------------------------------------------------------------------------------- HTML

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1d1d1f; background: #fafafa; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 20px 40px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 28px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 0 0 6px; }
.muted { color: #777; }
.table-box { max-width: 100%; overflow-x: auto; margin-bottom: 12px; }
table.results { border-collapse: collapse; font-size: 13px; background: #fff; }
table.results th, table.results td { border-bottom: 1px solid #e6e6e6; padding: 3px 9px; text-align: left;
       white-space: nowrap; }
table.results th { background: #f0f0f0; }
table.results td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots img { width: 560px; max-width: 100%; background: #fff; border: 1px solid #e0e0e0; }
.plots img.wide { width: 1132px; }
.legend { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; padding: 8px 12px;
          font-size: 13px; }
.legend span.item { margin-right: 18px; }
.example { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 14px 16px;
           margin: 16px 0; }
.example .top { display: flex; gap: 16px; align-items: flex-start; margin-bottom: 8px; }
.example .top img { width: 168px; height: auto; image-rendering: pixelated; border: 1px solid #ccc; }
.example dl { margin: 0; display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; }
.example dt { color: #777; } .example dd { margin: 0; }
table.cots { border-collapse: collapse; width: 100%; font-size: 13px; }
table.cots td { padding: 3px 6px; vertical-align: top; border-top: 1px solid #f0f0f0; }
table.cots tr.ratio td { background: #f3f3f7; font-weight: 600; border-top: 1px solid #ddd; }
td.method { width: 64px; white-space: nowrap; font-weight: 600; }
td.stat { width: 64px; white-space: nowrap; color: #555; text-align: right;
          font-variant-numeric: tabular-nums; }
td.pred { width: 92px; white-space: nowrap; }
td.cot, td.student { line-height: 1.75; width: 50%; }
td.student { color: #333; border-left: 1px solid #eee; }
.w, .h { padding: 0 1px; border-radius: 2px; cursor: help; }
tr.heat td.method { font-weight: 400; color: #555; font-size: 12px; }
s.w { color: #b0b0b0; text-decoration-color: #999; }
.anchor { text-decoration: underline; text-decoration-color: #e08a00; text-decoration-thickness: 2px;
          text-underline-offset: 3px; }
.w.anchor { background: #fff3d6; }
s.w.anchor { text-decoration: line-through; text-decoration-color: #c62828; text-decoration-thickness: 2px;
             background: #fde4e4; color: #c08080; }
.ok { color: #1b8a3a; font-weight: 600; } .bad { color: #c62828; font-weight: 600; }
.note { background: #fff3cd; border: 1px solid #e0b000; border-radius: 6px; padding: 8px 12px; font-weight: 600; }
dl.columns { display: grid; grid-template-columns: max-content 1fr; gap: 3px 12px; font-size: 13px; }
dl.columns dt { font-weight: 600; } dl.columns dd { margin: 0; }
"""


def _image_data_uri(path: str | Path) -> str:
    """The image as a data URI; PNG and JPEG up to MAX_IMAGE_SIDE are embedded byte for byte."""
    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            if image_format not in ("PNG", "JPEG") or max(image.size) > MAX_IMAGE_SIDE:
                image_format = "JPEG" if image_format == "JPEG" else "PNG"
                image = image.convert("RGB" if image_format == "JPEG" else "RGBA")
                image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
                buffer = io.BytesIO()
                image.save(buffer, format=image_format)
                data = buffer.getvalue()
    except (OSError, UnidentifiedImageError) as err:
        raise BadInput(f"{path}: cannot embed the example image ({err})") from None
    return f"data:image/{image_format.lower()};base64,{base64.b64encode(data).decode('ascii')}"


def _wide(path: Path) -> str:
    """The class of a plot of several panels side by side (twice as wide as high or more): shown at double width."""
    with Image.open(path) as image:
        width, height = image.size
    return ' class="wide"' if width >= 2 * height else ""


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _check_example(example: Mapping[str, Any]) -> None:
    n = len(example["words"])
    lengths = {"word_text_score": len(example["word_text_score"]),
               "word_visual_score": len(example["word_visual_score"])}  # fmt: skip
    lengths.update({f"keep of {m['method']}@{m['ratio']}": len(m["keep"]) for m in example["methods"]})
    wrong = {name: length for name, length in lengths.items() if length != n}
    if wrong:
        raise BadInput(f"example {example['id']}: {n} words but {wrong}")
    if any(not 0 <= i < n for i in example.get("visual_word_indices", ())):
        raise BadInput(f"example {example['id']}: a visual word index is outside its {n} words")


def _tooltip(text_score: float, visual_score: float, anchor: bool) -> str:
    return f"text {text_score:.2f} · visual {visual_score:.2f}" + (" · visual anchor" if anchor else "")


def _word_columns(example: Mapping[str, Any]) -> Iterable[tuple[str, float, float, bool]]:
    """Per word: the word, its text score, its visual score and whether it is a visual anchor."""
    anchors = set(example.get("visual_word_indices", ()))
    columns = (example["words"], example["word_text_score"], example["word_visual_score"])
    for i, (word, text, visual) in enumerate(zip(*columns, strict=True)):
        yield word, text, visual, i in anchors


def _cot_html(example: Mapping[str, Any], keep: Sequence[bool]) -> str:
    """The CoT word by word: kept words in <span>, pruned ones struck through in <s>."""
    words = []
    for (word, text, visual, anchor), kept in zip(_word_columns(example), keep, strict=True):
        tag = "span" if kept else "s"
        classes = "w anchor" if anchor else "w"
        words.append(
            f'<{tag} class="{classes}" title="{_tooltip(text, visual, anchor)}">{html.escape(word)}</{tag}>'
        )
    return " ".join(words)


def _heat_html(example: Mapping[str, Any], visual_path: bool) -> str:
    """The CoT shaded by one path's score (darker = higher, relative to the example's maximum)."""
    scores = example["word_visual_score" if visual_path else "word_text_score"]
    top = max((score for score in scores if math.isfinite(score)), default=0.0) or 1.0
    rgb = "255,127,14" if visual_path else "31,119,180"
    words = []
    for word, text, visual, anchor in _word_columns(example):
        score = visual if visual_path else text
        alpha = max(0.0, min(1.0, score / top)) if math.isfinite(score) else 0.0
        classes = "h anchor" if anchor else "h"
        words.append(
            f'<span class="{classes}" style="background:rgba({rgb},{0.75 * alpha:.2f})" '
            f'title="{_tooltip(text, visual, anchor)}">{html.escape(word)}</span>'
        )
    return " ".join(words)


def _prediction_html(run: Mapping[str, Any]) -> str:
    prediction = run.get("prediction")
    text = html.escape(prediction) if prediction is not None else MISSING
    marks = {True: ' <span class="ok">✓</span>', False: ' <span class="bad">✗</span>'}
    mark = marks.get(run.get("correct"), "")
    return text + mark


def _student_html(run: Mapping[str, Any]) -> str:
    """What the model wrote at this γ: the distilled student's own CoT, or the teacher's for `full`."""
    generated = run.get("generated_cot")
    if run["method"] == "full":
        return '<span class="muted">the teacher\'s own CoT, as on the left</span>'
    return html.escape(generated) if generated else f'<span class="muted">{MISSING}</span>'


def _example_html(example: Mapping[str, Any]) -> str:
    _check_example(example)
    anchors = set(example.get("visual_word_indices", ()))
    n = len(example["words"])
    lines = [
        f'<tr class="heat"><td class="method">{label}</td><td class="cot heat">'
        f'{_heat_html(example, visual_path)}</td><td colspan="4"></td></tr>'
        for label, visual_path in (("text score", False), ("visual score", True))
    ]
    runs = sorted(example["methods"], key=lambda m: (m["method"] not in REFERENCE_METHODS, -m["ratio"],
                                                     _method_rank(m["method"])))  # fmt: skip
    ratio = None
    for run in runs:
        if run["ratio"] != ratio:
            ratio = run["ratio"]
            lines.append(f'<tr class="ratio"><td colspan="6">γ = {ratio:.2f}</td></tr>')
        keep = run["keep"]
        kept_anchors = sum(1 for i in anchors if keep[i])
        colour = _colour(run["method"])
        lines.append(
            f'<tr><td class="method" style="color:{colour}">{html.escape(run["method"])}</td>'
            f'<td class="cot">{_cot_html(example, keep)}</td>'
            f'<td class="student">{_student_html(run)}</td>'
            f'<td class="stat" title="kept words / words">{sum(map(bool, keep))}/{n}</td>'
            f'<td class="stat" title="visual anchors kept">⚓ {kept_anchors}/{len(anchors)}</td>'
            f'<td class="pred">{_prediction_html(run)}</td></tr>'
        )
    image = example.get("image_path")
    image_html = f'<img alt="example image" src="{_image_data_uri(image)}">' if image else ""
    name, task = html.escape(str(example["id"])), html.escape(str(example.get("task", "")))
    return (
        f'<section class="example" id="ex-{name}"><h3>{name} <span class="muted">· {task}</span></h3>'
        f'<div class="top">{image_html}<dl>'
        f"<dt>question</dt><dd>{html.escape(example['question'])}</dd>"
        f"<dt>answer</dt><dd><b>{html.escape(str(example['answer']))}</b></dd>"
        f"<dt>teacher's CoT</dt><dd>{n} words, {len(anchors)} visual anchors</dd></dl></div>"
        f'<table class="cots"><tr><td class="method"></td>'
        f'<td class="cot muted">learned from: the method\'s keep mask over the teacher\'s CoT</td>'
        f'<td class="student muted">the student\'s own CoT at this γ</td>'
        f'<td class="stat muted">words</td><td class="stat muted">anchors</td>'
        f'<td class="pred muted">prediction</td></tr>{"".join(lines)}</table></section>'
    )


LEGEND = (
    '<div class="legend"><span class="item"><span class="w">kept word</span></span>'
    '<span class="item"><s class="w">pruned word</s></span>'
    '<span class="item"><span class="w anchor">visual anchor kept</span></span>'
    '<span class="item"><s class="w anchor">visual anchor pruned</s></span>'
    '<p class="muted">Each card is one test item. The two score rows shade the teacher\'s CoT by each word\'s '
    "text score (surprisal, blue) and visual score (attention mass to the image, orange), darker = higher; hover "
    "a word for both. Then, per γ (the target share of CoT tokens kept) and method, the left column is what the "
    "method's student learned from: the method's keep mask over the teacher's CoT on this item. The right column "
    "is what that student, distilled on such masks, wrote itself when asked for γ (ActRatio, in the results, is "
    "the length of such CoTs over the teacher's). <b>words</b> counts the kept words of the mask, <b>⚓</b> the visual "
    "anchors (colour, shape and object words of the image) it kept, and <b>prediction</b> is the student's answer, "
    "✓ right or ✗ wrong. <b>full</b> is the teacher itself with its whole CoT.</p></div>"
)


def _prose_html(text: str) -> str:
    """Text with `code` spans, as HTML."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def report_html(rows: Sequence[Row], examples: Sequence[Mapping[str, Any]], plots: Mapping[str, Path],
                title: str, note: str | None = None) -> str:  # fmt: skip
    """The whole page as one string; `plots` maps a caption to a PNG file to embed; `note`, if any, stands out
    under the title."""
    per_task, task_columns, task_labels = task_table(rows)
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{CSS}</style></head><body><main><h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(note)}</p>' if note else "",
        f'<p class="muted">{len(rows)} result rows · {len(examples)} examples.</p>',
        "<h2>Results</h2>",
        _html_table(sort_rows(rows), RESULT_COLUMNS),
        '<dl class="columns">' + "".join(f"<dt>{html.escape(label)}</dt><dd>{_prose_html(meaning)}</dd>"
                                         for label, meaning in definitions()) + "</dl>",
    ]
    parts.append('<div class="plots">')
    parts += [f'<img alt="{html.escape(name)}"{_wide(path)} src="{_png_data_uri(path)}">'
              for name, path in plots.items()]
    parts.append("</div>")
    if per_task:
        parts += ["<h2>Per task</h2>", _html_table(per_task, task_columns, task_labels),
                  f'<p class="muted">{html.escape(TASK_DEFINITION)}</p>']
    parts += ["<h2>Examples</h2>", LEGEND]
    parts += [_example_html(example) for example in examples] or ['<p class="muted">No examples.</p>']
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def write_report(
    out_dir: str | Path,
    rows: Sequence[Row],
    examples: Sequence[Mapping[str, Any]],
    *,
    title: str = "vskip report",
    note: str | None = None,
) -> dict[str, Path]:
    """Write results.md, pareto.png, gamma.png, latency.png and report.html into `out_dir`; return their paths.
    `note`, a line such as a smoke run's warning, heads results.md and the page.

    `rows`: one dict of metrics per (method, ratio), optionally with `tasks` = {task: metrics}.
    `examples`: dicts with the CoT's `words`, their `word_text_score` / `word_visual_score`,
    `visual_word_indices`, an `image_path`, and per (method, ratio) a `keep` mask in `methods`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = with_speedup_interval(with_reference_act_ratio(rows))
    paths = {name: out / name for name in ("results.md", "pareto.png", "gamma.png", "latency.png", "report.html")}
    paths["results.md"].write_text(results_markdown(rows, title, note), encoding="utf-8")
    plot_pareto(rows, paths["pareto.png"])
    plot_gamma(rows, paths["gamma.png"])
    plot_latency(rows, paths["latency.png"])
    plots = {"accuracy against ActRatio": paths["pareto.png"],
             "accuracy and ActRatio against γ": paths["gamma.png"], "latency against γ": paths["latency.png"]}
    paths["report.html"].write_text(report_html(rows, examples, plots, title, note), encoding="utf-8")
    return paths
