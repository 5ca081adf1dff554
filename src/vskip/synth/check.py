"""Attribute claims in a chain of thought, checked against the item's ground truth.

Words are `text.split()`, compared as `prompts.bare_word` reads them (lower case, surrounding punctuation
stripped). A claim is:

- scenes: `<colour> <shape>` (shape singular or plural) — true iff that pair is in the scene;
  with a position, `<colour> <shape> [is] at row R column C` or `at row R column C[,] is a
  <colour> <shape>`, true iff that pair sits in that cell; preceded by `no` ("There is no green
  star"), true iff the pair is absent; `<shape> [at row R column C] is <colour>` ("The star at
  row 2 column 1 is red"), true iff such an object exists (there).
- documents: `<item> [on line L] costs N` or the walk's `<item> N` ("I see tea 2, jam 4 and milk
  5"), true iff the receipt has that item at price N (on line L). A walk's order is not read as
  lines: a compressed CoT drops whole entries of it.

Arithmetic ("4 plus 3 makes 7") and counts are reasoning, not attributes, and are not checked.
Nor is what a CoT asks or refers to, as natural CoTs restate the question: words in a
question (a sentence ending in "?", or a clause opened by how, whether, if, what or which, up to
its comma or full stop: "To determine whether there is a green star,"), and a pair after "the"
that no position follows ("the shape left of the blue star"). Every claim a reference CoT of
vskip-synth makes is one of these, so the count is exact there, and a natural reference CoT
makes the same claims as its terse twin.

A reference CoT's walk ends with its conclusion (the count, the sum, the neighbour, the yes or no);
the claims before it are its premises. A natural CoT may restate the conclusion after it, in
sentences that open with "So", "Therefore" or "Thus" (`CONCLUDING`); those are not premises
either. `premises_true` asks whether a CoT got the premises right, which splits a wrong answer
into wrong evidence and a wrong step from right evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..prompts import bare_word
from .words import COLOURS, ITEMS, PLURALS, SHAPES

_SHAPE_OF = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURALS.items()}}
QUESTION_WORDS = frozenset({"how", "whether", "if", "what", "which"})
# The words a sentence that restates a CoT's conclusion opens with (lower case, bare).
CONCLUDING = frozenset({"so", "therefore", "thus"})


@dataclass(frozen=True)
class Mention:
    """One checkable claim: words `start:stop` of `text.split()`, what they claim, and whether it holds."""

    start: int
    stop: int
    claim: str
    true: bool


def _bare(text: str) -> list[str]:
    return [bare_word(word) for word in text.split()]


def _cell(words: list[str], i: int) -> tuple[int, int] | None:
    """(row, col) if words[i:i+5] read 'at row R column C'."""
    part = words[i : i + 5]
    if len(part) == 5 and part[0] == "at" and part[1] == "row" and part[3] == "column":
        if part[2].isdigit() and part[4].isdigit():
            return int(part[2]), int(part[4])
    return None


def attribute_words(record: dict[str, Any], text: str | None = None) -> list[Mention]:
    """Every checkable attribute claim in `text` (default: the record's own CoT), in order."""
    text = record["cot"] if text is None else text
    words = _bare(text)
    if record.get("document") is not None:
        mentions = _document_claims(words, record["document"])
    else:
        mentions = _scene_claims(words, record["scene"])
    asked = _asked(text.split())
    return [mention for mention in mentions if not asked[mention.start]]


def _asked(raw: list[str]) -> list[bool]:
    """Whether each word is in a question: a sentence ending in '?', or a clause opened by a question word."""
    asked, sentence, clause = [False] * len(raw), 0, False
    for i, word in enumerate(raw):
        clause = clause or bare_word(word) in QUESTION_WORDS
        asked[i] = clause
        if word.endswith("?"):
            asked[sentence : i + 1] = [True] * (i + 1 - sentence)
        if word.endswith((".", "?", "!")):
            sentence = i + 1
        if word.endswith((",", ".", "?", "!", ";", ":")):
            clause = False
    return asked


def hallucinated_words(record: dict[str, Any], cot_text: str) -> tuple[int, int]:
    """(attribute claims in `cot_text`, claims false of the image); rules in the module docstring."""
    mentions = attribute_words(record, cot_text)
    return len(mentions), sum(not m.true for m in mentions)


def premises_true(record: dict[str, Any], text: str) -> bool | None:
    """Whether every claim before the concluding sentence of `text` holds; None when it makes none. The
    concluding sentence is the last one that does not open with a `CONCLUDING` word."""
    sentences = text.strip().rstrip(".").split(". ")
    while len(sentences) > 1 and (_bare(sentences[-1]) or [""])[0] in CONCLUDING:
        sentences.pop()
    mentions = attribute_words(record, ". ".join(sentences[:-1]) + ".") if len(sentences) > 1 else []
    return all(m.true for m in mentions) if mentions else None


def _scene_claims(words: list[str], scene: list[dict[str, Any]]) -> list[Mention]:
    objects = {(o["colour"], o["shape"], o["row"], o["col"]) for o in scene}
    present = {(c, s) for c, s, _, _ in objects}
    mentions = []
    for i, word in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        prev = words[i - 1] if i > 0 else ""
        if word in COLOURS and nxt in _SHAPE_OF:
            colour, shape = word, _SHAPE_OF[nxt]
            start, stop = i, i + 2
            after = stop + (words[stop : stop + 1] == ["is"])
            cell = _cell(words, after)
            if cell:
                stop = after + 5
            elif i >= 7 and words[i - 2] == "is" and words[i - 1] in ("a", "an") and _cell(words, i - 7):
                cell, start = _cell(words, i - 7), i - 7
            if prev == "the" and not cell:
                continue  # a reference to what the question names ("the shape left of the blue star")
            if prev == "no":
                mentions.append(Mention(i - 1, stop, f"no {colour} {shape}", (colour, shape) not in present))
            elif cell:
                claim = f"{colour} {shape} at row {cell[0]} column {cell[1]}"
                mentions.append(Mention(start, stop, claim, (colour, shape, *cell) in objects))
            else:
                mentions.append(Mention(start, stop, f"{colour} {shape}", (colour, shape) in present))
        elif word in SHAPES and prev not in COLOURS:
            cell = _cell(words, i + 1)
            j = i + 6 if cell else i + 1
            if words[j : j + 1] == ["is"] and j + 1 < len(words) and words[j + 1] in COLOURS:
                colour = words[j + 1]
                if cell:
                    claim, true = (
                        f"{word} at row {cell[0]} column {cell[1]} is {colour}",
                        (colour, word, *cell) in objects,
                    )
                else:
                    claim, true = f"{word} is {colour}", (colour, word) in present
                mentions.append(Mention(i, j + 2, claim, true))
    return mentions


def _document_claims(words: list[str], document: list[dict[str, Any]]) -> list[Mention]:
    lines = {(entry["item"], line + 1): entry["price"] for line, entry in enumerate(document)}
    prices = {entry["item"]: entry["price"] for entry in document}
    mentions = []
    for i, word in enumerate(words):
        if word not in ITEMS:
            continue
        j, line = i + 1, None
        if j < len(words) and words[j].isdigit():
            price = int(words[j])
            mentions.append(Mention(i, j + 1, f"{word} {price}", prices.get(word) == price))
            continue
        if words[j : j + 2] == ["on", "line"] and j + 2 < len(words) and words[j + 2].isdigit():
            j, line = j + 3, int(words[j + 2])
        if words[j : j + 1] == ["costs"] and j + 1 < len(words) and words[j + 1].isdigit():
            price = int(words[j + 1])
            if line is None:
                claim, true = f"{word} costs {price}", prices.get(word) == price
            else:
                claim, true = f"{word} on line {line} costs {price}", lines.get((word, line)) == price
            mentions.append(Mention(i, j + 2, claim, true))
    return mentions
