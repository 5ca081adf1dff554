"""The gate: word scores and a target ratio γ in, a keep mask over the CoT's words out. Pure.

Every method is one function from the word scores to one or more *rankings* (a priority per word,
higher kept first). The budget is `round(γ · n_tokens)` CoT tokens, filled word by word from the
rankings; with several rankings, turns alternate between them (V-Skip's union of saliencies), each
ranking taking as many turns in a row as `turns` gives it (one each by default: `turns=(2, 1)` splits
the union's budget two to one between the visual and the text ranking).

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
from .prompts import check_ratio


@dataclass(frozen=True)
class WordScores:
    """Per-word scores of one chain of thought (see `vskip.score`)."""

    text: Sequence[float]  # surprisal, max over the word's tokens
    visual: Sequence[float]  # attention mass to the image, max over the word's tokens
    word_tokens: Sequence[int]  # tokens per word: the budget is counted in tokens
    gain: Sequence[float] | None = None  # visual information gain, when scored with `blind`
    lead_tokens: Sequence[int] | None = None  # tokens per word written first (default: `word_tokens`)
    essential: Sequence[bool] | None = None  # the words a step needs, where the data knows them (vskip-synth)
    dependency: Sequence[float] | None = None  # attention the answer pays to the word (self-attention models)
    llmlingua2: Sequence[float] | None = None  # LLMLingua-2's keep probability, when scored with its classifier


Method = Callable[[WordScores, random.Random], list[Sequence[float]]]
# Turns of the visual and the text ranking in each cycle of the `vskip` union: one each, the paper's union.
UNION_SPLIT = (1, 1)
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


@register_method("llmlingua2")
def keep_probability(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Highest LLMLingua-2 keep probability first: the paper's text-centric baseline (see `vskip.llmlingua2`)."""
    if scores.llmlingua2 is None:
        raise BadInput("method 'llmlingua2' needs word_llmlingua2_score: score with --llmlingua2-model")
    return [scores.llmlingua2]


@register_method("vskip")
def union_of_saliencies(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Keep w iff S_text(w) ≥ τ_text OR S_vis(w) ≥ τ_vis; the budget alternates visual, text, visual, …"""
    return [scores.visual, scores.text]


@register_method("dependency")
def answer_attention(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Highest attention from the answer first: the words the answer is computed from."""
    return [_needs_dependency(scores)]


@register_method("vskip+dependency")
def union_of_three(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """The union of the visual, the text and the dependency path; turns alternate in that order."""
    return [scores.visual, scores.text, _needs_dependency(scores)]


def _needs_dependency(scores: WordScores) -> Sequence[float]:
    if scores.dependency is None:
        raise BadInput("the dependency path needs dependency scores: score with a self-attention model "
                       "(Mllama has no dependency path)")
    return scores.dependency


@register_method("oracle")
def essential_first(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """The essential words first, then the rest, each by surprisal: the best a gate can keep where the data
    says which words a step needs (vskip-synth's natural CoTs). Below the essential share it drops the
    essential words the model finds most predictable."""
    if scores.essential is None:
        raise BadInput("method 'oracle' needs the records' `essential` flags (vskip synth --cot-style natural)")
    # Lifted by more than the scores' range, every essential word ranks above every other word.
    lift = max(scores.text, default=0.0) - min(scores.text, default=0.0) + 1.0
    return [[text + lift * essential for text, essential in zip(scores.text, scores.essential, strict=True)]]


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
    essential: Sequence[bool] | None = None,
    dependency: Sequence[float] | None = None,
    llmlingua2: Sequence[float] | None = None,
    turns: Sequence[int] | None = None,
    seed: int = 0,
) -> Selection:
    """The words `method` keeps at target ratio `ratio`, with the thresholds that selected them; `turns`: how
    many turns in a row each of the method's rankings takes (default one each)."""
    if method not in METHODS:
        raise BadInput(f"unknown method {method!r}; valid: {', '.join(sorted(METHODS))}")
    ratio = check_ratio(ratio)
    n = len(word_tokens)
    named = (("text", text), ("visual", visual), ("gain", gain), ("lead token", lead_tokens), ("essential", essential),
             ("dependency", dependency), ("llmlingua2", llmlingua2))
    for name, values in named:
        if values is not None and len(values) != n:
            raise BadInput(f"{len(values)} {name} scores for {n} words")
        if values is not None and any(math.isnan(v) for v in values):
            raise BadInput(f"{name} scores contain NaN")
    given = WordScores(text, visual, word_tokens, gain, lead_tokens, essential, dependency, llmlingua2)
    rankings = METHODS[method](given, random.Random(seed))
    turns = [1] * len(rankings) if turns is None else list(turns)
    if len(turns) != len(rankings) or min(turns) < 1:
        raise BadInput(f"turns {turns}: method {method!r} has {len(rankings)} ranking(s), each takes one turn or more")
    # One cycle of turns: ranking k appears turns[k] times in a row.
    schedule = [k for k, times in enumerate(turns) for _ in range(times)]
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
    step = 0  # position in the schedule
    while True:
        # The next unkept word of the ranking whose turn it is, or of the next one with words left.
        for _ in schedule:
            turn = schedule[step]
            order = orders[turn]
            while reached[turn] < n and keep[order[reached[turn]]]:
                reached[turn] += 1
            if reached[turn] < n:
                break
            step = (step + 1) % len(schedule)
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
        step = (step + 1) % len(schedule)
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
    essential: Sequence[bool] | None = None,
    dependency: Sequence[float] | None = None,
    llmlingua2: Sequence[float] | None = None,
    turns: Sequence[int] | None = None,
    seed: int = 0,
) -> list[bool]:
    """One bool per CoT word: kept by `method` at target ratio γ = `ratio` (see the module's fill rule)."""
    return select(method, text=text, visual=visual, word_tokens=word_tokens, ratio=ratio, gain=gain,
                  lead_tokens=lead_tokens, essential=essential, dependency=dependency, llmlingua2=llmlingua2,
                  turns=turns, seed=seed).keep


def compress_text(words: Sequence[str], keep: Sequence[bool]) -> str:
    """The compressed CoT: the kept words, in order, joined by single spaces."""
    return " ".join(word for word, kept in zip(words, keep, strict=True) if kept)
