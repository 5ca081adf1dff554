"""The hooks of a task `vskip data export --format lmms-eval` writes, run inside lmms-eval.

Each is what `vskip evaluate` does for the same item: the images opened as `media.load_image` opens them,
the prompt `prompts.instruction` writes (γ marker included), the reply read by `prompts.split_response` and
scored by `metrics.is_correct`, `metrics.anls` and `metrics.pope_scores`. A row of the task's data file holds the
whole vskip record as JSON (`record`), so the scoring sees every field it would see in vskip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from . import metrics
from .media import load_image
from .prompts import instruction, reference_answers, split_response


def doc_to_visual(doc: Mapping[str, Any], root: str | Path) -> list[Image.Image]:
    """The item's images (paths relative to the task's directory `root`), RGB."""
    return [load_image(Path(root) / path) for path in doc["images"]]


def doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: Mapping[str, Any] | None = None) -> str:
    """The user turn's text: the question and how to reply, at the task's mode and γ."""
    options = lmms_eval_specific_kwargs or {}
    return instruction(doc["question"], options.get("mode", "cot"), options.get("ratio"))


def process_results(doc: Mapping[str, Any], results: Sequence[str]) -> dict[str, Any]:
    """Per-item figures of the reply `results[0]`: `accuracy` (1 or 0) for every item, `anls` for document
    items, and for POPE items the (prediction, label) pair the POPE aggregations read."""
    record = json.loads(doc["record"])
    _, prediction = split_response(results[0])
    item: dict[str, Any] = {"accuracy": float(metrics.is_correct(prediction, record))}
    if record.get("task") in metrics.ANLS_TASKS:
        item["anls"] = metrics.anls(prediction or "", reference_answers(record))
    if record.get("task") == "pope":
        pair = {"prediction": prediction, "label": str(record.get("answer", ""))}
        item.update(pope_accuracy=pair, pope_f1=pair, pope_yes_ratio=pair)
    return item


def _pope(pairs: Sequence[Mapping[str, Any]], figure: str) -> float | None:
    return metrics.pope_scores([p["prediction"] for p in pairs], [p["label"] for p in pairs])[figure]


def pope_accuracy(pairs: Sequence[Mapping[str, Any]]) -> float | None:
    return _pope(pairs, "accuracy")


def pope_f1(pairs: Sequence[Mapping[str, Any]]) -> float | None:
    return _pope(pairs, "f1")


def pope_yes_ratio(pairs: Sequence[Mapping[str, Any]]) -> float | None:
    return _pope(pairs, "yes_ratio")
