"""On-policy rounds: a student learns the compressions it writes itself, where they are right. Pure.

A student distilled on the gate's compressions is asked, item by item, to write its own at each γ (greedy,
and sampled; `distill` does the writing). A candidate *qualifies* when it reaches the right answer and keeps
within the γ budget: no more CoT tokens than `round(γ · n)` of the teacher's `n` (the gate's own budget), plus
`SLACK_TOKENS`, the half word the gate's fill rule may itself overshoot by. Among several, the gate chooses
(`selection="gate"`): the candidate that retains most of the words the method's gate kept at that γ, so a
`vskip` student stays grounded where a `text` student stays fluent, each by its own method's ranking; ties go
to the shorter. `selection="shortest"` takes the shortest. An item with no qualifying candidate keeps the
gate's compression (`fallback="keep"`) or is left out at that γ (`"drop"`). The `auto` marker learns the
shortest candidate that answered right, at whatever γ it was asked for.

The next round trains a fresh student on these targets (the uncompressed CoTs at γ = 1 unchanged), as
self-training for concise reasoning does (arXiv 2502.20122): what a student can write, it can learn to write.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence

from .prompts import AUTO, response
from .records import Record
from .settings import Fallback, Selection

# A candidate may exceed round(γ · n) by this many tokens: about the half word the gate's own fill rule allows.
SLACK_TOKENS = 2
# (record, γ or AUTO, reply to learn), as `distill.Pair`.
Pair = tuple[Record, "float | str", str]
_PUNCTUATION = re.compile(r"^[^\w$]+|[^\w%]+$")


def word_key(word: str) -> str:
    return _PUNCTUATION.sub("", word.lower())


def word_alignment(words: Sequence[str], other: Sequence[str]) -> list[int | None]:
    """Per word of `other` (a compression or a rewording of `words`), the index of the word of `words` it matches,
    None where it matches none: the longest matching blocks, in order, compared without case or surrounding
    punctuation."""
    matcher = difflib.SequenceMatcher(None, [word_key(word) for word in words], [word_key(word) for word in other],
                                      autojunk=False)
    aligned: list[int | None] = [None] * len(other)
    for block in matcher.get_matching_blocks():
        aligned[block.b : block.b + block.size] = range(block.a, block.a + block.size)
    return aligned


def retained_words(words: Sequence[str], cot: str) -> list[bool]:
    """Per word of the teacher's CoT, whether `cot` (a compression written from it) still has it
    (`word_alignment`)."""
    kept = [False] * len(words)
    for index in word_alignment(words, cot.split()):
        if index is not None:
            kept[index] = True
    return kept


def qualifies(candidate: Mapping, record: Mapping, ratio: float) -> bool:
    """Whether a written candidate answers right and keeps within γ's budget of the teacher's CoT tokens."""
    budget = round(ratio * sum(record["word_tokens"])) + SLACK_TOKENS
    return bool(candidate.get("correct")) and bool(candidate.get("cot")) and candidate["cot_tokens"] <= budget


def gate_agreement(candidate: Mapping, record: Mapping) -> int:
    """How many of the words the gate kept (`record["keep"]`) the candidate retains."""
    retained = retained_words(record["words"], candidate["cot"])
    return sum(kept and gate for kept, gate in zip(retained, record["keep"], strict=True))


def choose(candidates: Iterable[Mapping], record: Mapping, ratio: float, selection: Selection) -> Mapping | None:
    """The qualifying candidate `selection` prefers (see the module), None when none qualifies."""
    fit = [candidate for candidate in candidates if qualifies(candidate, record, ratio)]
    if not fit:
        return None
    if selection == "shortest":
        return min(fit, key=lambda candidate: candidate["cot_tokens"])
    return max(fit, key=lambda candidate: (gate_agreement(candidate, record), -candidate["cot_tokens"]))


def on_policy_pairs(
    gate_pairs: Sequence[Pair],
    candidates: Mapping[tuple[str, float], Sequence[Mapping]],
    *,
    selection: Selection = "gate",
    fallback: Fallback = "keep",
) -> tuple[list[Pair], dict]:
    """The next round's training pairs from the gate's (`distill.training_pairs`, `auto` pairs included) and the
    candidates the student wrote per (item id, γ); and the round's yield: per family and γ, how many items had a
    qualifying candidate (`auto`: a right one at any γ) out of how many were asked."""
    out: list[Pair] = []
    tally: dict[str, dict[str, list[int]]] = {}
    for record, ratio, reply in gate_pairs:
        if ratio == 1.0:
            out.append((record, ratio, reply))
            continue
        written = candidates.get((record["id"], ratio), ())
        if ratio == AUTO:
            every = [c for (item, _), group in candidates.items() if item == record["id"] for c in group]
            right = [c for c in every if c.get("correct") and c.get("cot")]
            chosen = min(right, key=lambda candidate: candidate["cot_tokens"]) if right else None
        else:
            chosen = choose(written, record, ratio, selection)
        counts = tally.setdefault(str(record.get("task", "all")), {}).setdefault(str(ratio), [0, 0])
        counts[0] += chosen is not None
        counts[1] += 1
        if chosen is not None:
            out.append((record, ratio, response(chosen["cot"], chosen["prediction"])))
        elif fallback == "keep":
            out.append((record, ratio, reply))
    yields = {task: {ratio: {"qualified": n, "items": total} for ratio, (n, total) in by_ratio.items()}
              for task, by_ratio in sorted(tally.items())}
    return out, yields
