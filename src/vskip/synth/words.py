"""The words of vskip-synth: attributes, their priors, and a builder that tags CoT words as it writes them."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "blue": (30, 80, 230),
    "green": (20, 160, 50),
    "yellow": (245, 215, 0),
    "purple": (140, 40, 190),
    "orange": (255, 135, 0),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
PLURALS: dict[str, str] = {shape: shape + ("es" if shape.endswith("s") else "s") for shape in SHAPES}
# The language prior the image can contradict: the usual colour of a shape and how often it is used.
USUAL_COLOUR: dict[str, tuple[str, float]] = {"star": ("yellow", 0.65), "circle": ("red", 0.55)}

ITEMS: tuple[str, ...] = ("tea", "bun", "jam", "egg", "pie", "milk")
USUAL_PRICE: dict[str, int] = {"tea": 2, "bun": 3, "jam": 4, "egg": 1, "pie": 6, "milk": 5}
USUAL_PRICE_SHARE = 0.6
PRICES: tuple[int, ...] = tuple(range(1, 10))

DIRECTIONS: dict[str, tuple[int, str]] = {
    # question phrase -> (column step, CoT phrase)
    "left of": (-1, "Left of it is"),
    "right of": (1, "Right of it is"),
}

# Every word a template writes besides the attribute words above (punctuation stripped).
TEMPLATE_WORDS = (
    "How many other objects are the same colour as star There is a an at row column That makes no "
    "red squares there What shape colour is left of right Left Right it The "
    "I see and Is yes much do cost together does costs on line plus"
).split()


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def prior_colour(rng: random.Random, shape: str) -> str:
    """A colour for `shape`: its usual colour with the prior's share, else uniform over the other colours."""
    colours = list(COLOURS)
    if shape in USUAL_COLOUR:
        usual, share = USUAL_COLOUR[shape]
        if rng.random() < share:
            return usual
        return rng.choice([c for c in colours if c != usual])
    return rng.choice(colours)


def contradicts_prior(record: dict) -> bool:
    """Whether the item's image breaks a language prior: a star or circle not of its usual colour, or a
    receipt line not at its item's usual price. There the answer cannot come from the prior."""
    unusual_colour = any(obj["shape"] in USUAL_COLOUR and obj["colour"] != USUAL_COLOUR[obj["shape"]][0]
                         for obj in record.get("scene") or [])
    unusual_price = any(int(line["price"]) != USUAL_PRICE[line["item"]] for line in record.get("document") or [])
    return unusual_colour or unusual_price


def prior_price(rng: random.Random, item: str) -> int:
    usual = USUAL_PRICE[item]
    if rng.random() < USUAL_PRICE_SHARE:
        return usual
    return rng.choice([p for p in PRICES if p != usual])


class Cot:
    """A chain of thought written word by word; words that are facts of the image carry their type.

    `say("The star is")` adds plain words; `fact("red", "colour")` adds one visual word; `end(".")`
    glues punctuation to the last word. `visual_words` indexes `text.split()`.
    """

    def __init__(self) -> None:
        self.words: list[str] = []
        self.types: list[str | None] = []

    def say(self, text: str) -> Cot:
        for word in text.split():
            self.words.append(word)
            self.types.append(None)
        return self

    def fact(self, word: object, kind: str) -> Cot:
        self.words.append(str(word))
        self.types.append(kind)
        return self

    def end(self, mark: str = ".") -> Cot:
        self.words[-1] += mark
        return self

    def position(self, row: int, col: int) -> Cot:
        return self.say("row").fact(row, "position").say("column").fact(col, "position")

    def series(self, items: Iterable[T], write: Callable[[Cot, T], object]) -> Cot:
        """'x, y and z': `write(self, item)` writes each item, with the commas and the 'and' between."""
        items = list(items)
        for i, item in enumerate(items):
            if i:
                self.say("and") if i == len(items) - 1 else self.end(",")
            write(self, item)
        return self

    def thing(self, colour: str, shape: str) -> Cot:
        """'a red circle' with both attribute words tagged."""
        return self.say(article(colour)).fact(colour, "colour").fact(shape, "shape")

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def visual_words(self) -> list[dict[str, Any]]:
        return [
            {"index": i, "word": word.strip(".,?!"), "type": kind}
            for i, (word, kind) in enumerate(zip(self.words, self.types, strict=True))
            if kind is not None
        ]


VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        set(TEMPLATE_WORDS)
        | set(COLOURS)
        | set(SHAPES)
        | set(PLURALS.values())
        | set(ITEMS)
        | {str(n) for n in range(0, 3 * max(PRICES) + 1)}
    )
)
