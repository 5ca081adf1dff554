"""The gate: word scores and a target ratio γ in, a keep mask over the CoT's words out. Pure.

Every method is one function from the word scores to one or more *rankings* (a priority per word,
higher kept first). The budget is `round(γ · n_tokens)` CoT tokens, filled word by word from the
rankings; with several rankings, turns alternate between them (V-Skip's union of saliencies).

Tokens are the ones the compressed CoT is written in: a word costs its `word_tokens` (its tokens in
the CoT, the space before it included), except the first kept word, which is written with no space
before it and costs its `lead_tokens` (" 14" is three tokens in Qwen2's tokenizer, "14" two; " tea"
one, "tea" maybe two). So every method, whichever word it starts with, spends the same budget.

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
    lead_tokens: Sequence[int] | None = None  # tokens per word written first (default: `word_tokens`)


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
    lead_tokens: Sequence[int] | None = None,
    seed: int = 0,
) -> Selection:
    """The words `method` keeps at target ratio `ratio`, with the thresholds that selected them."""
    if method not in METHODS:
        raise BadInput(f"unknown method {method!r}; valid: {', '.join(sorted(METHODS))}")
    ratio = check_ratio(ratio)
    n = len(word_tokens)
    for name, values in (("text", text), ("visual", visual), ("gain", gain), ("lead token", lead_tokens)):
        if values is not None and len(values) != n:
            raise BadInput(f"{len(values)} {name} scores for {n} words")
        if values is not None and any(math.isnan(v) for v in values):
            raise BadInput(f"{name} scores contain NaN")
    rankings = METHODS[method](WordScores(text, visual, word_tokens, gain, lead_tokens), random.Random(seed))
    orders = [sorted(range(n), key=lambda i, p=priority: (-p[i], i)) for priority in rankings]
    # The CoT's own first word is written first in the CoT too: its lead is its word tokens.
    lead = [*word_tokens[:1], *(word_tokens if lead_tokens is None else lead_tokens)[1:]]
    budget = round(ratio * sum(word_tokens))
    # γ = 1 keeps every word, even where a word that leads costs more than it does in the CoT.
    limit = math.inf if ratio == 1.0 else budget
    keep = [False] * n
    kept = 0  # tokens of the kept words as written: their word tokens, the first one's lead tokens
    words_total, first = 0, n  # Σ word_tokens of the kept words; the first kept word (n: none yet)
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
        start = min(first, word)
        cost = words_total + word_tokens[word] - word_tokens[start] + lead[start]
        if cost > limit and cost - budget >= budget - kept:
            break
        keep[word] = True
        kept, words_total, first = cost, words_total + word_tokens[word], start
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
    lead_tokens: Sequence[int] | None = None,
    seed: int = 0,
) -> list[bool]:
    """One bool per CoT word: kept by `method` at target ratio γ = `ratio` (see the module's fill rule)."""
    return select(method, text=text, visual=visual, word_tokens=word_tokens, ratio=ratio, gain=gain,
                  lead_tokens=lead_tokens, seed=seed).keep


def compress_text(words: Sequence[str], keep: Sequence[bool]) -> str:
    """The compressed CoT: the kept words, in order, joined by single spaces."""
    return " ".join(word for word, kept in zip(words, keep, strict=True) if kept)
