"""Receipts of three "item price" lines, and the doc questions that read and add their prices."""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .scenes import CELL, SIZE
from .words import ITEMS, Cot, prior_price

LINES = 3
FONT_SIZE = 18
MARGIN = 6
SUM_SHARE = 0.75  # the rest of the questions read a single price


@lru_cache(maxsize=1)
def font() -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font (Pillow >= 10.1 with FreeType): no font file to ship."""
    loaded = ImageFont.load_default(size=FONT_SIZE)
    if not isinstance(loaded, ImageFont.FreeTypeFont):
        raise RuntimeError("vskip-synth documents need Pillow >= 10.1 built with FreeType")
    return loaded


def random_document(rng: random.Random) -> list[dict[str, Any]]:
    """Three distinct items, each at its usual price with the prior's share, else another price 1-9."""
    return [{"item": item, "price": prior_price(rng, item)} for item in rng.sample(ITEMS, LINES)]


def draw_document(document: list[dict[str, Any]]) -> Image.Image:
    """Line L fills the L-th 28 px band, so it spans one row of image tokens; prices are right-aligned."""
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for line, entry in enumerate(document):
        middle = line * CELL + CELL / 2
        draw.text((MARGIN, middle), entry["item"], fill=(0, 0, 0), font=font(), anchor="lm")
        draw.text((SIZE - MARGIN, middle), str(entry["price"]), fill=(0, 0, 0), font=font(), anchor="rm")
    return image


def doc_item(rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read two prices and add them (most questions), or read one price."""
    document = random_document(rng)
    lines = rng.sample(range(LINES), 2 if rng.random() < SUM_SHARE else 1)  # in the order asked
    cot = Cot()
    for line in lines:
        entry = document[line]
        cot.say("The").fact(entry["item"], "object").say("on line").fact(line + 1, "position")
        cot.say("costs").fact(entry["price"], "value").end()
    if len(lines) == 2:
        first, second = (document[line] for line in lines)
        question = f"How much do the {first['item']} and the {second['item']} cost together?"
        answer = first["price"] + second["price"]
        cot.fact(first["price"], "value").say("plus").fact(second["price"], "value").say(f"makes {answer}.")
    else:
        entry = document[lines[0]]
        question = f"How much does the {entry['item']} cost?"
        answer = entry["price"]
    record = {
        "question": question,
        "answer": str(answer),
        "task": "doc",
        "cot": cot.text,
        "visual_words": cot.visual_words,
        "document": document,
    }
    return record, document
