"""The report as files: results.md, the plots and one self-contained HTML page (`write_report`).

The HTML page loads nothing from anywhere: its CSS (report.css, beside this module) is inline and images
are base64 data URIs, so it can be mailed or attached to a CI run as one file.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import BadInput
from .plots import method_colour, plot_gamma, plot_latency, plot_pareto
from .tables import (
    LABELS,
    MISSING,
    REFERENCE_METHODS,
    RESULT_COLUMNS,
    TASK_DEFINITION,
    Row,
    definitions,
    method_rank,
    results_markdown,
    sort_rows,
    table_cells,
    task_table,
    with_reference_act_ratio,
    with_speedup_interval,
)

MAX_IMAGE_SIDE = 512  # larger images are shrunk before embedding, to keep the page small
CSS = resources.files(__package__).joinpath("report.css").read_text(encoding="utf-8")


def _html_table(rows: Iterable[Row], columns: Sequence[str], labels: Mapping[str, str] = LABELS) -> str:
    header, numeric, body = table_cells(rows, columns, labels)
    head = "".join(f"<th>{html.escape(label)}</th>" for label in header)
    lines = []
    for cells in body:
        tds = []
        for column, right, cell in zip(columns, numeric, cells, strict=True):
            text = html.escape(cell)
            if column == "method":
                text = f'<span class="swatch" style="background:{method_colour(cell)}"></span>{text}'
            tds.append(f'<td class="num">{text}</td>' if right else f"<td>{text}</td>")
        lines.append("<tr>" + "".join(tds) + "</tr>")
    # A wide table (many tasks) scrolls inside its own box instead of widening the page.
    return (f'<div class="table-box"><table class="results"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table></div>')


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
                                                     method_rank(m["method"])))  # fmt: skip
    ratio = None
    for run in runs:
        if run["ratio"] != ratio:
            ratio = run["ratio"]
            lines.append(f'<tr class="ratio"><td colspan="6">γ = {ratio:.2f}</td></tr>')
        keep = run["keep"]
        kept_anchors = sum(1 for i in anchors if keep[i])
        colour = method_colour(run["method"])
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
                                         for label, meaning in definitions({row["method"] for row in rows}))
        + "</dl>",
    ]
    parts.append('<div class="plots">')
    parts += [f'<img alt="{html.escape(name)}"{_wide(path)} src="{_png_data_uri(path)}">'
              for name, path in plots.items()]
    parts.append("</div>")
    if per_task:
        parts += ["<h2>Per task</h2>", _html_table(per_task, task_columns, task_labels),
                  f'<p class="muted">{_prose_html(TASK_DEFINITION)}</p>']
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
    # The two plots of one panel first, side by side on a wide page; the two panels against γ below them.
    plots = {"accuracy against ActRatio": paths["pareto.png"], "latency against γ": paths["latency.png"],
             "accuracy and ActRatio against γ": paths["gamma.png"]}
    paths["report.html"].write_text(report_html(rows, examples, plots, title, note), encoding="utf-8")
    return paths
