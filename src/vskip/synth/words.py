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

# question phrase -> column step; the CoT says "Left of it is ..."
DIRECTIONS: dict[str, int] = {"left of": -1, "right of": 1}

# Every word a template writes besides the attribute words above (punctuation stripped): the terse
# walk's and questions', then the natural style's dressing (`synth.style`).
TEMPLATE_WORDS = (
    "How many other objects are the same colour as star There is a an at row column That makes no "
    "red squares there What shape colour is left of right Left Right it The "
    "I see and Is yes much do cost together does costs on line plus "
    "To to In in Its its Next next Reading reading Looking Let me So Therefore Thus Now Then Together "
    "Adding after before answer appears asked asks away based by carefully check clearly comes count "
    "determine each examine find for how identify image item items just lines list look names need "
    "neighbour none one order out price prices question receipt show shows them these three total up what will "
    "with work"
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


# The role of each word of a chain of thought (DESIGN §7): an anchor read off the image (a visual
# word), the question restated, scaffolding, or knowledge and arithmetic (counters, sums, comparisons).
ANCHOR, RESTATED, SCAFFOLD, KNOWLEDGE = "A", "R", "S", "K"
ROLES = (ANCHOR, RESTATED, SCAFFOLD, KNOWLEDGE)


class Cot:
    """A chain of thought written word by word; each word carries its role, and facts of the image their type.

    `say("The star is")` adds scaffolding words (or words of another `role`); `fact("red", "colour")`
    adds one visual word (an anchor); `end(".")` glues punctuation to the last word. The natural
    style (`synth.style`) dresses a terse walk at its slots: `slot("count ask")` marks one before the
    next word, `ask(asked=...)` gives the question's phrases its templates restate. `visual_words`
    indexes `text.split()`; `essential` is false for dressing words, true for the walk's own.
    """

    def __init__(self) -> None:
        self.words: list[str] = []
        self.types: list[str | None] = []
        self.roles: list[str] = []
        self.essential: list[bool] = []
        self.slots: list[tuple[int, str]] = []  # (the number of words written before it, slot name)
        self.fields: dict[str, list[tuple[str, str]]] = {}

    def _add(self, word: str, kind: str | None, role: str, essential: bool) -> None:
        self.words.append(word)
        self.types.append(kind)
        self.roles.append(role)
        self.essential.append(essential)

    def say(self, text: str, role: str = SCAFFOLD, *, essential: bool = True) -> Cot:
        for word in text.split():
            self._add(word, None, role, essential)
        return self

    def fact(self, word: object, kind: str) -> Cot:
        self._add(str(word), kind, ANCHOR, True)
        return self

    def take(self, other: Cot, start: int, stop: int) -> Cot:
        """Append words `start:stop` of `other`, with their types, roles and essential flags."""
        for i in range(start, stop):
            self._add(other.words[i], other.types[i], other.roles[i], other.essential[i])
        return self

    def end(self, mark: str = ".") -> Cot:
        self.words[-1] += mark
        return self

    def slot(self, name: str) -> Cot:
        self.slots.append((len(self.words), name))
        return self

    def ask(self, **fields: list[tuple[str, str]]) -> Cot:
        """Give the phrases a dressing template may name (`{asked}`, `{value}`, ...) as (word, role) pairs."""
        self.fields.update(fields)
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


def phrase(text: str, role: str = RESTATED) -> list[tuple[str, str]]:
    """`text`'s words, each with `role`: a field for `Cot.ask` (join several for mixed roles)."""
    return [(word, role) for word in text.split()]


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
