"""Grounding questions asked of an item's own image: where a thing is, and what is at a place.

Chains of thought name positions ("the star at row 2 column 1"; receipts did, "the tea on line 3",
before they were walked line by line), and a model that reads *what* an image holds but not
*where* writes those wrong. Teacher-forced, vskip-tiny trained on the benchmark's questions alone
got the line of a receipt item right at about chance, though its image tokens carry their row
plainly: the skill is learned from too few, too entangled examples. These questions ask it
alone, drawn from the ground truth of any training record, the way LLaVA's first stage aligns a
tower with its captions. They are training data only: the benchmark's families stay as they are.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from .words import Cot


def grounding_question(record: dict[str, Any], rng: random.Random) -> dict[str, str]:
    """A question about `record`'s image with its chain of thought and answer (`question`, `cot`, `answer`)."""
    if record.get("document"):
        return _document_question(record["document"], rng)
    if record.get("scene"):
        return _scene_question(record["scene"], rng)
    raise ValueError(f"record {record.get('id')!r} has no ground truth (scene or document) to ask about")


def _scene_question(scene: list[dict[str, Any]], rng: random.Random) -> dict[str, str]:
    seen = Counter((o["colour"], o["shape"]) for o in scene)
    unique = [o for o in scene if seen[o["colour"], o["shape"]] == 1]
    obj = rng.choice(scene)
    if unique and rng.random() < 0.5:
        obj = rng.choice(unique)
        question = f"Where is the {obj['colour']} {obj['shape']}?"
        cot = Cot().say("The").fact(obj["colour"], "colour").fact(obj["shape"], "shape").say("is at")
        cot.position(obj["row"], obj["col"]).end()
        return _question(question, cot, f"row {obj['row']} column {obj['col']}")
    question = f"What is at row {obj['row']} column {obj['col']}?"
    cot = Cot().say("At").position(obj["row"], obj["col"]).say("there is").thing(obj["colour"], obj["shape"]).end()
    return _question(question, cot, f"{obj['colour']} {obj['shape']}")


def _document_question(document: list[dict[str, Any]], rng: random.Random) -> dict[str, str]:
    line = rng.randrange(len(document))
    entry = document[line]
    if rng.random() < 0.5:
        question = f"Which line is the {entry['item']} on?"
        cot = Cot().say("The").fact(entry["item"], "object").say("is on line").fact(line + 1, "position").end()
        return _question(question, cot, str(line + 1))
    question = f"What is on line {line + 1}?"
    cot = Cot().say("On line").fact(line + 1, "position").say("the").fact(entry["item"], "object")
    cot.say("costs").fact(entry["price"], "value").end()
    return _question(question, cot, entry["item"])


def _question(question: str, cot: Cot, answer: str) -> dict[str, str]:
    return {"question": question, "cot": cot.text, "answer": answer}
