"""The report's tables: results rows formatted as Markdown, the columns and what each means.

Every benchmark prints its figures with `format_table`; `write_report` (`report.page`) builds its results.md
with `results_markdown` and its HTML tables from the same cells (`table_cells`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..latency import MIN_SPEEDUP_ITEMS
from ..prompts import AUTO

Row = Mapping[str, Any]

REFERENCE_METHODS = ("full", "direct")
# What each compressor keeps, from the crudest to V-Skip and the unions beyond it: the method column's definition
# names those of the rows shown (`definitions`).
COMPRESSORS = {
    "truncate": "keeps the CoT's first words",
    "random": "words drawn at random",
    "text": "the most surprising words (the text path alone, as TokenSkip and LLMLingua prune)",
    "llmlingua2": "the words LLMLingua-2's classifier would keep",
    "visual": "the words that attend most to the image",
    "gain": "the words the image makes most predictable (visual information gain)",
    "vskip": "both paths' words in turn (V-Skip)",
    "dependency": "the words the answer attends to most",
    "vskip+dependency": "the visual, the text and the dependency path's words in turn",
    "oracle": "the words a step needs first (the data's `essential` flags), then the most surprising: the best a "
              "gate can keep",
}
# Reference points first, then the compressors.
METHOD_ORDER = (*REFERENCE_METHODS, *COMPRESSORS)
RESULT_COLUMNS = (
    "method", "ratio", "n", "accuracy", "act_ratio", "cot_tokens_mean", "latency_s_median", "speedup",
    "speedup_interval", "speedup_timed", "varr", "hallucination_rate", "pope_f1", "pope_yes_ratio",
)  # fmt: skip
TASK_METRICS = {"accuracy": "acc", "act_ratio": "ActRatio", "varr": "VARR", "hallucination_rate": "halluc."}
LABELS = {
    "ratio": "γ",
    "act_ratio": "ActRatio",
    "cot_tokens_mean": "CoT tokens",
    "latency_s_median": "latency (s)",
    "speedup": "speed-up",
    "speedup_interval": "90 % interval",
    "speedup_timed": "timed",
    "varr": "VARR",
    "hallucination_rate": "hallucination",
    "pope_f1": "POPE F1",
    "pope_yes_ratio": "POPE yes",
}
# What each column of the results table means, shown under it (`definitions`).
COLUMN_DEFINITIONS = {
    "method": "`full` is the teacher with its whole chain of thought (CoT), `direct` the teacher answering with "
              "none; any other is the student distilled on the CoTs that method compressed",
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
    "speedup_timed": f"the items the speed-up stands on; under {MIN_SPEEDUP_ITEMS}, “too few”: a median of so few "
                     "timings moves with each one, so the speed-up is a rough guess at best.",
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


def format_value(column: str, value: Any) -> str:
    """One cell as text: None (or NaN) → "–", floats with the column's format (3 decimals by default)."""
    if value is None or (isinstance(value, numbers.Real) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral) and column not in FORMATS:
        return str(value)
    return FORMATS.get(column, "{:.3f}").format(float(value))


def table_cells(rows: Iterable[Row], columns: Sequence[str], labels: Mapping[str, str]) -> tuple[list, list, list]:
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
    header, numeric, body = table_cells(rows, columns, labels)

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    rule = "|" + "|".join("---:" if right else "---" for right in numeric) + "|"
    return "\n".join([line(header), rule, *(line(cells) for cells in body)]) + "\n"


def _reference_act_ratio(block: Row) -> Row:
    return {**block, "act_ratio": 1.0} if block.get("act_ratio") is None else block


def with_reference_act_ratio(rows: Iterable[Row]) -> list[Row]:
    """The rows with `full`'s ActRatio filled in where its run had no baseline, overall and per task: 1, by
    definition, as the uncompressed CoT is what ActRatio divides by. So `full` is a point on the accuracy–ActRatio
    plot, and reads the same in every table."""
    return [
        {**_reference_act_ratio(row),
         **({"tasks": {task: _reference_act_ratio(block) for task, block in row["tasks"].items()}}
            if row.get("tasks") else {})}
        if row["method"] == "full" else row
        for row in rows
    ]  # fmt: skip


def with_speedup_interval(rows: Iterable[Row]) -> list[Row]:
    """The rows with `speedup_interval`, their speed-up's bootstrap interval as text ("1.62–2.10"), and
    `speedup_timed`, the items it stands on, flagged where they are too few ("2: too few"), where known."""
    return [{**row, **_speedup_spread(row)} for row in rows]


def _speedup_spread(row: Row) -> dict[str, Any]:
    spread: dict[str, Any] = {}
    if row.get("speedup_low") is not None and row.get("speedup_high") is not None:
        spread["speedup_interval"] = f"{row['speedup_low']:.2f}–{row['speedup_high']:.2f}"
    if row.get("speedup") is not None and row.get("speedup_items") is not None:
        items = row["speedup_items"]
        spread["speedup_timed"] = f"{items}: too few" if row.get("speedup_too_few") else items
    return spread


def method_rank(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method), "") if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def sort_rows(rows: Iterable[Row]) -> list[Row]:
    """Reference rows (`full`, `direct`) first, then by ratio from high to low, then `auto` (the students that
    choose their own budget), each by method."""

    def key(row: Row) -> tuple:
        ratio = row.get("ratio")
        auto = ratio == AUTO
        return (row["method"] not in REFERENCE_METHODS, auto, 0.0 if auto else -(ratio if ratio is not None else 1.0),
                method_rank(row["method"]))  # fmt: skip

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


def definitions(methods: Iterable[str]) -> list[tuple[str, str]]:
    """(label, what it means) of each column of the results table, then of the mark of a missing figure; the
    method column's names what each compressor of `methods` (those of the rows shown) keeps."""
    compressors = [f"`{method}` {COMPRESSORS.get(method, 'its own choice of words')}"
                   for method in sorted(set(methods) - set(REFERENCE_METHODS), key=method_rank)]
    kept = ", ".join(compressors[:-1]) + (", and " if len(compressors) > 1 else "") + "".join(compressors[-1:])
    meanings = {**COLUMN_DEFINITIONS, "method": COLUMN_DEFINITIONS["method"] + (f": {kept}." if kept else ".")}
    columns = [(LABELS.get(column, column), meanings[column]) for column in RESULT_COLUMNS]
    return [*columns, (MISSING, MISSING_DEFINITION)]


def results_markdown(rows: Sequence[Row], title: str, note: str | None = None) -> str:
    """The results table and the per-task one, each column defined; `note`, if any, in bold above them."""
    text = f"# {title}\n\n" + (f"**{note}**\n\n" if note else "") + "## Results\n\n"
    text += format_table(sort_rows(rows), RESULT_COLUMNS) + "\n"
    methods = {row["method"] for row in rows}
    text += "".join(f"- **{label}**: {meaning}\n" for label, meaning in definitions(methods))
    per_task, columns, labels = task_table(rows)
    if per_task:
        text += "\n## Per task\n\n" + format_table(per_task, columns, labels=labels) + f"\n{TASK_DEFINITION}\n"
    return text
