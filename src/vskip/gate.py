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

Score paths. A method ranks by one or more per-word scores, `scores["text"]`, `scores["visual"]`, …, each a
*score path* named in one table, `SCORE_PATHS`: where a scored record keeps it (and the per-token field it was
aggregated from, which later stages drop), and how to get it when a record lacks it. `WordScores.from_record`
reads every path the table names; a method that asks for one a record lacks is refused with the table's hint.
Adding a score path (say a hypothetical `grounding`, a detector's overlap with each word) touches two places:

1. one entry here: `SCORE_PATHS["grounding"] = ScorePath("word_grounding_score", "grounding_score",
   "score with --grounding-model")`;
2. one gate function ranking by it: `@register_method("grounding")` returning `[scores["grounding"]]`;

and, of course, whatever computes it and writes the record's field (`vskip.score`, which aggregates each
path's token scores to words by the table, or a module of its own as `vskip.llmlingua2`). Compression, the
dropping of per-token fields and the checks of lengths and NaN follow from the table.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .errors import BadInput
from .prompts import check_ratio


@dataclass(frozen=True)
class ScorePath:
    """Where a scored record keeps one per-word score, and how one gets it."""

    field: str  # the record's per-word field
    token_field: str | None  # the per-token field it is aggregated from (`score.aggregate_words`), if any
    how: str  # how a record comes to have it: the hint of a method's refusal where one lacks it


# Every per-word score a method can rank by, in the order a scored record holds them (`vskip.score`).
SCORE_PATHS: dict[str, ScorePath] = {
    # surprisal, max over the word's tokens
    "text": ScorePath("word_text_score", "text_score", "score the records (vskip score)"),
    # attention mass to the image, max over the word's tokens
    "visual": ScorePath("word_visual_score", "visual_score", "score the records (vskip score)"),
    # visual information gain: NLL without the image minus NLL with it
    "gain": ScorePath("word_gain_score", "gain_score", "score with blind=True (vskip score --blind)"),
    # attention the answer pays to the word (self-attention models)
    "dependency": ScorePath("word_dependency_score", "dependency_score",
                            "score with a self-attention model (Mllama has no dependency path)"),
    # LLMLingua-2's keep probability (`vskip.llmlingua2`)
    "llmlingua2": ScorePath("word_llmlingua2_score", None, "score with --llmlingua2-model"),
    # the words a step needs, where the data knows them (vskip-synth): true or false
    "essential": ScorePath("essential", None, "the records' `essential` flags (vskip synth --cot-style natural)"),
}
# A scored record's per-token arrays: what later stages drop, keeping the per-word ones.
TOKEN_FIELDS = ("tokens", *(path.token_field for path in SCORE_PATHS.values() if path.token_field))


class _MissingPath(BadInput):
    """A method asked for a score path the record lacks (`select` names the method)."""


@dataclass(frozen=True)
class WordScores:
    """Per-word scores of one chain of thought (see `vskip.score`): the words' token counts, and the score paths
    it has (`SCORE_PATHS`), each one value per word; checked on creation (lengths, NaN)."""

    word_tokens: Sequence[int]  # tokens per word: the budget is counted in tokens
    paths: Mapping[str, Sequence[float]] = field(default_factory=dict)  # path name -> one score per word
    lead_tokens: Sequence[int] | None = None  # tokens per word written first (default: `word_tokens`)

    def __post_init__(self) -> None:
        n = len(self.word_tokens)
        unknown = [name for name in self.paths if name not in SCORE_PATHS]
        if unknown:
            raise BadInput(f"unknown score path(s) {', '.join(unknown)}; valid: {', '.join(SCORE_PATHS)}")
        named = [("lead token", self.lead_tokens), *self.paths.items()]
        for name, values in named:
            if values is not None and len(values) != n:
                raise BadInput(f"{len(values)} {name} scores for {n} words")
            if values is not None and any(math.isnan(v) for v in values):
                raise BadInput(f"{name} scores contain NaN")

    @classmethod
    def of(cls, word_tokens: Sequence[int], lead_tokens: Sequence[int] | None = None, **paths) -> WordScores:
        """`WordScores(word_tokens, {name: scores, …}, lead_tokens)`, the paths by keyword; None means absent."""
        return cls(word_tokens, {name: values for name, values in paths.items() if values is not None}, lead_tokens)

    @classmethod
    def from_record(cls, record: Mapping) -> WordScores:
        """A scored record's word scores: its `word_tokens`, `word_lead_tokens` and every score path it has."""
        return cls.of(record["word_tokens"], record.get("word_lead_tokens"),
                      **{name: record.get(path.field) for name, path in SCORE_PATHS.items()})

    def __getitem__(self, name: str) -> Sequence[float]:
        """The score path `name`, one value per word; `BadInput` saying how to get it where these scores lack it."""
        if name not in self.paths:
            raise _MissingPath(f"needs {name} scores ({SCORE_PATHS[name].field}): {SCORE_PATHS[name].how}")
        return self.paths[name]


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
    return [scores["text"]]


@register_method("visual")
def visual_mass(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Highest attention mass to the image first."""
    return [scores["visual"]]


@register_method("gain")
def visual_gain(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Highest visual information gain first (NLL without the image minus NLL with it)."""
    return [scores["gain"]]


@register_method("llmlingua2")
def keep_probability(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Highest LLMLingua-2 keep probability first: the paper's text-centric baseline (see `vskip.llmlingua2`)."""
    return [scores["llmlingua2"]]


@register_method("vskip")
def union_of_saliencies(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Keep w iff S_text(w) ≥ τ_text OR S_vis(w) ≥ τ_vis; the budget alternates visual, text, visual, …"""
    return [scores["visual"], scores["text"]]


@register_method("dependency")
def answer_attention(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """Highest attention from the answer first: the words the answer is computed from."""
    return [scores["dependency"]]


@register_method("vskip+dependency")
def union_of_three(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """The union of the visual, the text and the dependency path; turns alternate in that order."""
    return [scores["visual"], scores["text"], scores["dependency"]]


@register_method("oracle")
def essential_first(scores: WordScores, rng: random.Random) -> list[Sequence[float]]:
    """The essential words first, then the rest, each by surprisal: the best a gate can keep where the data
    says which words a step needs (vskip-synth's natural CoTs). Below the essential share it drops the
    essential words the model finds most predictable."""
    essential, text = scores["essential"], scores["text"]
    # Lifted by more than the scores' range, every essential word ranks above every other word.
    lift = max(text, default=0.0) - min(text, default=0.0) + 1.0
    return [[score + lift * flag for score, flag in zip(text, essential, strict=True)]]


@dataclass(frozen=True)
class Selection:
    keep: list[bool]
    # Per ranking, the priority of the last word its turns reached (None: it gave no word): every
    # word strictly above it in that ranking is kept.
    thresholds: list[float | None]
    kept_tokens: int
    budget: int


def select(
    method: str, scores: WordScores, ratio: float, *, turns: Sequence[int] | None = None, seed: int = 0
) -> Selection:
    """The words `method` keeps of `scores` at target ratio `ratio`, with the thresholds that selected them;
    `turns`: how many turns in a row each of the method's rankings takes (default one each)."""
    if method not in METHODS:
        raise BadInput(f"unknown method {method!r}; valid: {', '.join(sorted(METHODS))}")
    ratio = check_ratio(ratio)
    word_tokens, lead_tokens, n = scores.word_tokens, scores.lead_tokens, len(scores.word_tokens)
    try:
        rankings = METHODS[method](scores, random.Random(seed))
    except _MissingPath as err:
        raise BadInput(f"method {method!r} {err}") from None
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
    method: str, scores: WordScores, ratio: float, *, turns: Sequence[int] | None = None, seed: int = 0
) -> list[bool]:
    """One bool per CoT word: kept by `method` at target ratio γ = `ratio` (see the module's fill rule)."""
    return select(method, scores, ratio, turns=turns, seed=seed).keep


def compress_text(words: Sequence[str], keep: Sequence[bool]) -> str:
    """The compressed CoT: the kept words, in order, joined by single spaces."""
    return " ".join(word for word, kept in zip(words, keep, strict=True) if kept)
