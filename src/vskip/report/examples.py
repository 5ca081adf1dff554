"""The report's examples: which test items it shows, and each as the page draws it (`page.write_report`).

Plain data in, plain data out: the items come from a run's evaluation (`OUT.items.jsonl`), their word scores
and keep masks from `score` and `compress`, which the caller runs; nothing here loads a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..prompts import cot_answer
from ..records import Record, image_paths


def example_items(test: Sequence[Record], full_items: Mapping[str, Record], per_task: int) -> list[Record]:
    """Up to `per_task` items of every family (tasks in sorted order), as the teacher answered them with its full
    CoT (`full_items`, by id): those it got right first. A CoT with an answer is all scoring needs, so a family
    the teacher always gets wrong still shows one."""
    chosen: list[Record] = []
    for task in sorted({record["task"] for record in test}):
        usable = [full_items[r["id"]] for r in test if r["task"] == task and full_items[r["id"]]["cot"]
                  and cot_answer(full_items[r["id"]]) is not None]  # fmt: skip
        chosen += sorted(usable, key=lambda item: not item["correct"])[:per_task]
    return chosen


def examples(
    scored: Iterable[Record],
    masks: Sequence[Record],
    runs: Mapping[tuple[str, float], Mapping[str, Record]],
    base: str | Path,
) -> list[dict[str, Any]]:
    """Each scored item (images resolving from `base`) with every method's keep mask over the teacher's CoT
    (`masks`, compressed records) and the CoT the method's student wrote (`runs[method, γ]`: its evaluated items
    by id), after the teacher's own (`full`)."""
    shown = []
    for record in scored:
        # Sentence punctuation only, not `prompts.bare_word`: a count's "(2)" is its counter, not an anchor "2".
        lower = [word.strip(".,!?;:").lower() for word in record["words"]]
        anchors = {str(entry["word"]).lower() for entry in record.get("visual_words", [])}
        methods = [{"method": "full", "ratio": 1.0, "keep": [True] * len(record["words"]),
                    "generated_cot": record["cot"], "prediction": record["prediction"],
                    "correct": record["correct"]}]
        for mask in (m for m in masks if m["id"] == record["id"]):
            generated = runs[(mask["method"], mask["ratio"])].get(record["id"], {})
            methods.append({"method": mask["method"], "ratio": mask["ratio"], "keep": mask["keep"],
                            "generated_cot": generated.get("cot"), "prediction": generated.get("prediction"),
                            "correct": generated.get("correct")})
        shown.append({
            "id": record["id"],
            "image_path": str(image_paths(record, base)[0]),
            "question": record["question"],
            "answer": record["answer"],
            "task": record["task"],
            "words": record["words"],
            "word_text_score": record["word_text_score"],
            "word_visual_score": record["word_visual_score"],
            "visual_word_indices": [i for i, word in enumerate(lower) if word in anchors],
            "methods": methods,
        })
    return shown
