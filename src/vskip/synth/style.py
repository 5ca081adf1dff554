"""The natural style: the terse walk dressed as real models write (DESIGN §7), every walk word kept in order.

A terse chain of thought marks its slots (`Cot.slot`); `dress` fills each with one variant of that
slot's pool, drawn with the frequencies real models' templates have (the top variant ~30 %, the
top three ~60 %). The slots, by family:

- count: the question restated before the walk ("To determine how many red squares there are,");
- relate: the same, and a rule before "Left of it is ..." ("Its neighbour comes just before it.");
- doc: an opener ("The image shows a receipt with three lines."), the question restated before the
  walk, a sentence before the prices are looked up, a connective before each sum ("Adding them,"),
  a closer ("So the total cost of the tea and the jam is 6.");
- pope: a closer ("So no, there is none.").

How much each family gets is set by the shares of words real models spend on anchors, restating,
scaffolding and knowledge (`REAL_SHARES`): the walk's own words fix the anchors, so a family whose
real CoTs are mostly anchors (pope, count) has room for few dressing words.

Learnable by a small model trained from scratch: a variant is a whole sentence, or a phrase ending
in a comma before a walk sentence that opens with "I" or a number, so no walk word changes; and each
slot precedes one kind of walk sentence, so dressing never makes the next step ambiguous (DESIGN
§8: a model that could follow "So," with several different sentences wrote "So, The bun costs 3.").
Only closers open with a concluding word (`check.CONCLUDING`), which lets the claim checker tell a
restated conclusion from the walk's own.

Templates name the question's phrases in braces (`{asked}`: "how many red squares there are"), which
the item gives with their roles (`Cot.ask`); a template's own words are scaffolding, or knowledge in
the pools that state a rule of the task (`KNOWLEDGE_POOLS`).
"""

from __future__ import annotations

import random
import re
from typing import Any, Literal

from .words import KNOWLEDGE, SCAFFOLD, Cot

CotStyle = Literal["natural", "terse"]
COT_STYLES: tuple[CotStyle, ...] = ("natural", "terse")

# Real VLM CoTs' words by role, % (DESIGN §7: mean of per-CoT shares), for the question types of each family.
REAL_SHARES: dict[str, dict[str, int]] = {
    "count": {"A": 37, "R": 19, "S": 30, "K": 14},
    "relate": {"A": 30, "R": 20, "S": 31, "K": 19},
    "doc": {"A": 22, "R": 26, "S": 45, "K": 8},
    "pope": {"A": 40, "R": 7, "S": 49, "K": 4},
}
# Every pool lists its variants most frequent first; the i-th is drawn with weight SKEW[i].
SKEW = (30, 17, 13, 10, 8, 7, 6, 4, 3, 2)

POOLS: dict[str, tuple[str, ...]] = {
    # The start of a doc CoT: "The image shows", "I will examine", the question, or nothing.
    "opener": (
        "The image shows {picture}.",
        "",
        "Let me look at the image.",
        "{question}",
        "I will examine the image.",
        "The image appears to show {picture}.",
        "Let me look at the image carefully.",
        "I will look at the image.",
        "The question asks {asked}.",
        "The image clearly shows {picture}.",
    ),
    # Before a count CoT's "I see ...": the question restated, mostly in a purpose clause.
    "count ask": (
        "{question}",
        "To determine {asked},",
        "To find {asked},",
        "To count {asked},",
        "To answer {asked},",
        "To check {asked},",
        "To work out {asked},",
        "To find out {asked},",
    ),
    # Before a relate CoT's "I see ...".
    "relate ask": (
        "To find {topic},",
        "To determine {asked},",
        "To identify {topic},",
        "{question}",
        "Looking for {topic},",
        "To find {asked},",
        "To answer {asked},",
        "The question asks {asked}.",
        "To check {asked},",
        "To determine {topic},",
    ),
    # Before a doc CoT's "I see ...".
    "doc ask": (
        "To determine {asked},",
        "To find {asked},",
        "To answer {asked},",
        "Reading the receipt line by line,",
        "The question asks {asked}.",
        "To work out {asked},",
        "To check {asked},",
        "Reading the lines in order,",
        "To find {asked}, reading each line,",
        "Looking at each line,",
    ),
    # Before "Left of it is ..." / "Right of it is ...": where the neighbour is in the walk.
    "neighbour": (
        "Its neighbour comes just {before} it in the row.",
        "Its neighbour is just {before} it.",
        "The neighbour comes just {before} it.",
        "Its neighbour is the shape just {before} it.",
        "In the same row, its neighbour is {before} it.",
        "Its neighbour is one column away.",
        "Its neighbour comes {before} it in the row.",
        "The neighbour is next to it in the row.",
        "Next to it is its neighbour.",
        "The shape {before} it is its neighbour.",
    ),
    # Before the first "The tea costs 2." (doc).
    "prices": (
        "Now I find the prices of {items}.",
        "Next, I look up {items}.",
        "The question names {items}.",
        "Now I find {items} in the list.",
        "I need the price of each item asked.",
        "Next, I find the prices.",
        "Now I look up {items}.",
        "The items asked are {items}.",
        "I look up each item asked.",
        "Next, I find {items} on the receipt.",
    ),
    # Before each "N plus M makes S." (doc).
    "add": (
        "",
        "Adding them,",
        "Adding the prices,",
        "Now,",
        "In total,",
        "Then,",
        "Adding them up,",
        "Together,",
        "Next,",
        "Adding these,",
    ),
    # After the walk's conclusion (doc, pope): often none (a plain last observation), else a formula
    # or the finding.
    "closer": (
        "",
        "So {finding}.",
        "Therefore, the answer is {value}.",
        "So the answer is {value}.",
        "Thus, {finding}.",
        "Therefore, {finding}.",
        "Thus, the answer is {value}.",
        "Thus, based on the image, {finding}.",
        "So, based on the image, {finding}.",
        "Therefore, based on the image, {finding}.",
    ),
}
# Pools whose own words state a rule of the task (knowledge), not scaffolding.
KNOWLEDGE_POOLS = frozenset({"neighbour"})

_FIELD = re.compile(r"^(\W*)\{(\w+)\}(\W*)$")


def variant(slot: str, rng: random.Random) -> str:
    """One variant of `slot`'s pool, drawn with the `SKEW` weights (one `rng.random()` call)."""
    pool = POOLS[slot]
    return rng.choices(pool, weights=SKEW[: len(pool)])[0]


def fill(template: str, fields: dict[str, list[tuple[str, str]]], role: str = SCAFFOLD) -> list[tuple[str, str]]:
    """`template`'s words with their roles: its own words get `role`, a `{field}` the field's words
    and roles, with the punctuation around the braces glued to the field's first and last word."""
    out: list[tuple[str, str]] = []
    for token in template.split():
        match = _FIELD.match(token)
        if match is None:
            out.append((token, role))
            continue
        before, name, after = match.groups()
        words = list(fields[name])
        words[0] = (before + words[0][0], words[0][1])
        words[-1] = (words[-1][0] + after, words[-1][1])
        out += words
    return out


def draws(cot: Cot, rng: random.Random) -> list[tuple[int, str, str]]:
    """(position, slot, variant) for each slot of a terse `cot`, each variant drawn from `rng` in turn."""
    return [(at, slot, variant(slot, rng)) for at, slot in cot.slots]


def dress(cot: Cot, drawn: list[tuple[int, str, str]]) -> Cot:
    """The natural twin of a terse `cot`: its words, types and roles in order, with the `drawn` variants
    filled in at their slots (`essential` false for those words)."""
    out, copied = Cot(), 0
    for at, slot, template in drawn:
        out.take(cot, copied, at)
        copied = at
        role = KNOWLEDGE if slot in KNOWLEDGE_POOLS else SCAFFOLD
        for word, word_role in fill(template, cot.fields, role):
            out.say(word, word_role, essential=False)
    return out.take(cot, copied, len(cot.words))


def cot_fields(cot: Cot, style: CotStyle, rng: random.Random) -> dict[str, Any]:
    """A record's CoT fields in `style`: `cot` and `visual_words`, and for the natural style `roles`
    (one of A, R, S, K per word) and `essential` (true for the terse twin's words)."""
    if style == "terse":
        return {"cot": cot.text, "visual_words": cot.visual_words}
    natural = dress(cot, draws(cot, rng))
    return {"cot": natural.text, "visual_words": natural.visual_words, "roles": "".join(natural.roles),
            "essential": natural.essential}


def essential_cot(record: dict[str, Any]) -> str:
    """The record's CoT cut to its essential words: its terse twin's CoT (a terse record's whole CoT)."""
    words = record["cot"].split()
    essential = record.get("essential") or [True] * len(words)
    return " ".join(word for word, keep in zip(words, essential, strict=True) if keep)
