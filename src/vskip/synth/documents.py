"""Receipts of three "item price" lines, and the doc questions that read and add their prices."""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .scenes import CELL, GRID, SIZE
from .words import ITEMS, KNOWLEDGE, SCAFFOLD, Cot, phrase, prior_price

LINES = 3
FONT_SIZE = 18
MARGIN = 6
ITEMS_ASKED = (1, 2, 2, 3, 3, 3)  # how many prices a question reads (one drawn): mostly sums
# What the natural style's templates call a receipt.
PICTURE = phrase("a receipt with three lines", SCAFFOLD)


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


def line_cells(line: int) -> range:
    """The grid cells (merged image tokens) of receipt line `line`, counted from 0: one row of the grid."""
    return range(line * GRID, (line + 1) * GRID)


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
    """Read the receipt line by line, then two or three of its prices added one at a time (most
    questions), or one price.

    'I see tea 2, jam 4 and milk 5.' reads each line in turn, the positional read the scenes' walk
    uses; 'The jam costs 4.' then finds a question's item in that text, not among the image tokens:
    finding an item's line among them ("The jam on line 2 costs 4") was the lookup the teacher got
    wrong (BENCHMARKS.md)."""
    document = random_document(rng)
    asked = [document[line] for line in rng.sample(range(LINES), rng.choice(ITEMS_ASKED))]
    cot = Cot().slot("opener").slot("doc ask").say("I see")
    cot.series(document, lambda c, entry: c.fact(entry["item"], "object").fact(entry["price"], "value")).end()
    cot.slot("prices")
    for entry in asked:
        cot.say("The").fact(entry["item"], "object").say("costs").fact(entry["price"], "value").end()
    total = asked[0]["price"]
    for entry in asked[1:]:
        cot.slot("add")
        if entry is asked[1]:
            cot.fact(total, "value")  # the first sum adds two prices read from the image
        else:
            cot.say(str(total), KNOWLEDGE)  # a later one adds to the running total
        cot.say("plus", KNOWLEDGE).fact(entry["price"], "value").say(f"makes {total + entry['price']}.", KNOWLEDGE)
        total += entry["price"]
    cot.slot("closer")
    names = [f"the {entry['item']}" for entry in asked]
    if len(asked) == 1:
        question = f"How much does {names[0]} cost?"
        indirect, what, items = f"how much {names[0]} costs", "the price of", names[0]
    else:
        items = f"{', '.join(names[:-1])} and {names[-1]}"
        question = f"How much do {items} cost together?"
        indirect, what = f"how much {items} cost together", "the total cost of"
    value = [(str(total), KNOWLEDGE)]
    cot.ask(question=phrase(question), asked=phrase(indirect), picture=PICTURE, items=phrase(items), value=value,
            finding=[*phrase(what, SCAFFOLD), *phrase(items), ("is", SCAFFOLD), *value])
    record = {"question": question, "answer": str(total), "task": "doc", "cot": cot, "document": document}
    return record, document
