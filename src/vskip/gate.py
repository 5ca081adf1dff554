"""The gate: word scores and a target ratio γ in, a keep mask over the CoT's words out. Pure.

Every method is one function from the word scores to one or more *rankings* (a priority per word,
higher kept first). The budget is `round(γ · n_tokens)` CoT tokens, filled word by word from the
rankings; with several rankings, turns alternate between them (V-Skip's union of saliencies).

Fill rule. Take the next word of the ranking whose turn it is (skipping words already kept); add
it if it fits the budget, or if it overshoots the budget by less than the budget's remaining
shortfall (so the kept count lands on the nearer side); otherwise stop. Stopping at the first
word that does not fit, rather than looking further down for a shorter one, is what makes each
ranking's kept words a prefix of it: a threshold rule. So the kept share of CoT tokens lies within
half a word (plus rounding) of γ, γ = 1 keeps everything, and kept words keep their order.

Ties in a ranking go to the earlier word. Randomness (the `random` baseline) comes only from the
`seed` argument.

To add a method, write one function and register it:

    @register_method("length")
    def longest_first(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
        return [scores.word_tokens]
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import BadInput
from .records import check_ratio


@dataclass(frozen=True)
class WordScores:
    """Per-word scores of one chain of thought (see `vskip.score`)."""

    text: Sequence[float]  # surprisal, max over the word's tokens
    visual: Sequence[float]  # attention mass to the image, max over the word's tokens
    word_tokens: Sequence[int]  # tokens per word: the budget is counted in tokens
    gain: Sequence[float] | None = None  # visual information gain, when scored with `blind`


Method = Callable[[WordScores, random.Random], list[Sequence[float]]]
METHODS: dict[str, Method] = {}


def register_method(name: str) -> Callable[[Method], Method]:
    """Decorator: make `fn(scores, rng) -> rankings` available as method `name`."""

    def register(fn: Method) -> Method:
        METHODS[name] = fn
        return fn

    return register


@register_method("truncate")
def first_words(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """The first words up to the budget: the CoT cut short."""
    return [[-index for index in range(len(scores.word_tokens))]]


@register_method("random")
def random_words(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    return [[rng.random() for _ in scores.word_tokens]]


@register_method("text")
def surprisal(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Highest surprisal first: the blind text-centric compressors (TokenSkip, LLMLingua)."""
    return [scores.text]


@register_method("visual")
def visual_mass(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Highest attention mass to the image first."""
    return [scores.visual]


@register_method("gain")
def visual_gain(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Highest visual information gain first (NLL without the image minus NLL with it)."""
    if scores.gain is None:
        raise BadInput("method 'gain' needs gain scores: score with blind=True (vskip score --blind)")
    return [scores.gain]


@register_method("vskip")
def union_of_saliencies(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Keep w iff S_text(w) ≥ τ_text OR S_vis(w) ≥ τ_vis; the budget alternates visual, text, visual, …"""
    return [scores.visual, scores.text]


@dataclass(frozen=True)
class Selection:
    keep: list[bool]
    # Per ranking, the priority of the last word its turns reached (None: it gave no word): every
    # word strictly above it in that ranking is kept.
    thresholds: list[float | None]
    kept_tokens: int
    budget: int


def select(
    method: str,
    *,
    text: Sequence[float],
    visual: Sequence[float],
    word_tokens: Sequence[int],
    ratio: float,
    gain: Sequence[float] | None = None,
    seed: int = 0,
) -> Selection:
    """The words `method` keeps at target ratio `ratio`, with the thresholds that selected them."""
    if method not in METHODS:
        raise BadInput(f"unknown method {method!r}; valid: {', '.join(sorted(METHODS))}")
    ratio = check_ratio(ratio)
    n = len(word_tokens)
    for name, values in (("text", text), ("visual", visual), ("gain", gain)):
        if values is not None and len(values) != n:
            raise BadInput(f"{len(values)} {name} scores for {n} words")
        if values is not None and any(math.isnan(v) for v in values):
            raise BadInput(f"{name} scores contain NaN")
    rankings = METHODS[method](WordScores(text, visual, word_tokens, gain), random.Random(seed))
    orders = [sorted(range(n), key=lambda i, p=priority: (-p[i], i)) for priority in rankings]
    budget = round(ratio * sum(word_tokens))
    keep = [False] * n
    kept = 0
    reached = [0] * len(orders)
    turn = 0
    while True:
        # The next unkept word of the ranking whose turn it is, or of the next one with words left.
        for _ in orders:
            order = orders[turn]
            while reached[turn] < n and keep[order[reached[turn]]]:
                reached[turn] += 1
            if reached[turn] < n:
                break
            turn = (turn + 1) % len(orders)
        else:
            break
        word = order[reached[turn]]
        size = word_tokens[word]
        if kept + size > budget and kept + size - budget >= budget - kept:
            break
        keep[word] = True
        kept += size
        reached[turn] += 1
        turn = (turn + 1) % len(orders)
    thresholds = [rankings[k][orders[k][reached[k] - 1]] if reached[k] else None for k in range(len(orders))]
    return Selection(keep, thresholds, kept, budget)


def keep_mask(
    method: str,
    *,
    text: Sequence[float],
    visual: Sequence[float],
    word_tokens: Sequence[int],
    ratio: float,
    gain: Sequence[float] | None = None,
    seed: int = 0,
) -> list[bool]:
    """One bool per CoT word: kept by `method` at target ratio γ = `ratio` (see the module's fill rule)."""
    return select(method, text=text, visual=visual, word_tokens=word_tokens, ratio=ratio, gain=gain, seed=seed).keep


def compress_text(words: Sequence[str], keep: Sequence[bool]) -> str:
    """The compressed CoT: the kept words, in order, joined by single spaces."""
    return " ".join(word for word, kept in zip(words, keep, strict=True) if kept)
