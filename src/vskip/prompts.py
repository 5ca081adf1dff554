"""What the model is asked and how its reply is read: one place for every stage.

A reply is `"{cot}\\nAnswer: {answer}"` in `cot` mode and `"Answer: {answer}"` in `direct` mode.
A distilled model is asked for a compressed chain of thought by a γ marker in the instruction,
`"Compress the reasoning to ratio 0.25."`, as TokenSkip writes the ratio into the prompt. The marker is
lossless: γ is written with the fewest decimals that give it back exactly, at most `RATIO_DECIMALS`, so
γ must be a multiple of 0.01 (`ratio_text`; `check_ratio` refuses any other γ). A student can
also be asked to choose its own budget, γ = `AUTO`: "Compress the reasoning as far as it stays
correct." (`vskip distill` teaches it, from the smallest γ at which the teacher still answered right).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from typing import Any, Literal

from .errors import BadInput

Mode = Literal["cot", "direct"]
MODES: tuple[Mode, ...] = ("cot", "direct")
# The budget a student is asked for: a γ, or AUTO, as far as the reasoning stays correct.
AUTO = "auto"
Budget = float | Literal["auto"]

ANSWER_PREFIX = "Answer:"
# The γ marker writes at most this many decimals: a short marker is learned as a few tokens, and two
# decimals cover every γ a user asks for (0.25, 0.05) without a model having to tell 0.333 from 0.334.
RATIO_DECIMALS = 2
# How far from a multiple of 0.01 a float may be and still be read as it (0.1 + 0.2 is 0.3).
RATIO_TOLERANCE = 1e-9
_ANSWER = re.compile(r"Answer:\s*(.*)", re.DOTALL)
# What `bare_word` strips from a word's ends: ASCII punctuation and typographic quotes.
PUNCTUATION = string.punctuation + "“”‘’"


def instruction(question: str, mode: Mode, ratio: Budget | None = None) -> str:
    """The user turn's text: the question, then how to reply."""
    if mode == "direct":
        return f"{question}\nAnswer directly."
    if ratio == AUTO:
        return f"{question}\nThink step by step, then answer. Compress the reasoning as far as it stays correct."
    if ratio is None or ratio >= 1.0:
        return f"{question}\nThink step by step, then answer."
    return f"{question}\nThink step by step, then answer. Compress the reasoning to ratio {ratio_text(ratio)}."


def ratio_text(ratio: float) -> str:
    """γ as the marker writes it: the fewest decimals (at most `RATIO_DECIMALS`) that read back as γ,
    "0.5", "0.25", "0.05"; `BadInput` for a γ that no such text gives back (0.123)."""
    text = f"{ratio:.{RATIO_DECIMALS}f}".rstrip("0").rstrip(".")
    if not abs(float(text) - ratio) <= RATIO_TOLERANCE:
        raise BadInput(
            f"ratio {ratio!r} has more than {RATIO_DECIMALS} decimals, which the γ marker cannot write; "
            "pass a multiple of 0.01 such as 0.25"
        )
    return text


def check_ratio(ratio: float) -> float:
    """γ, the kept share of CoT tokens: in (0, 1] and a multiple of 0.01, so that the γ marker writes it
    exactly (`prompts.ratio_text`). Returns γ as the marker reads back (0.1 + 0.2 gives 0.3)."""
    number = isinstance(ratio, (int, float)) and not isinstance(ratio, bool)
    # A γ within rounding of 0 reads back as 0: outside (0, 1] too.
    if not number or math.isnan(ratio) or not 0 < ratio <= 1 or float(ratio_text(ratio)) == 0:
        raise BadInput(f"ratio {ratio!r} is outside (0, 1]; pass a kept share such as 0.5")
    return float(ratio_text(ratio))


def response(cot: str, answer: str) -> str:
    """The assistant turn the model is trained on: chain of thought, then the answer line."""
    cot = cot.strip()
    return f"{cot}\n{ANSWER_PREFIX} {answer}" if cot else f"{ANSWER_PREFIX} {answer}"


def split_response(text: str) -> tuple[str, str | None]:
    """(chain of thought, answer) of a reply; the answer is None when the reply never gives one."""
    found = list(_ANSWER.finditer(text))
    if not found:
        return text.strip(), None
    last = found[-1]
    return text[: last.start()].strip(), last.group(1).strip().splitlines()[0].strip() if last.group(1).strip() else ""


def cot_answer(record: Mapping[str, Any]) -> str | None:
    """The answer that ends a record's chain of thought, None when it has none.

    A generated record's CoT goes with the answer the model reached (`prediction`, right or wrong, even
    when empty): pairing it with the reference `answer` would teach or score a reply no model wrote.
    A record without `prediction` (a dataset's reference CoT) goes with its `answer`.
    """
    answer = record["prediction"] if "prediction" in record else record.get("answer")
    return str(answer) if answer is not None and str(answer).strip() else None


def require_answer(record: Mapping[str, Any]) -> str:
    """`cot_answer`, or `BadInput` naming the record when there is none."""
    answer = cot_answer(record)
    if answer is None:
        raise BadInput(f"record {record['id']}: the chain of thought has no answer; generate it again or drop it")
    return answer


def reference_answers(record: Mapping[str, Any]) -> list[str]:
    """Every accepted answer of a record: `answers` (several references) where given, else `answer`."""
    return [str(a) for a in (record.get("answers") or [record.get("answer")]) if a is not None]


def normalize_answer(text: str) -> str:
    """Exact-match form: lower case, no surrounding punctuation or spaces."""
    return re.sub(r"\s+", " ", text.strip().lower().strip(" .,!?;:\"'"))


def bare_word(word: str) -> str:
    """A word as comparisons of words read it (VARR, POPE's yes/no, synth's claims, the benchmarks' word roles):
    lower case, surrounding `PUNCTUATION` stripped ("Red," and "red" are one word; "$45" is "45").

    Two comparisons read words otherwise, on purpose. `rounds.word_key` aligns a compression with the CoT it came
    from: it keeps a leading "$" and a trailing "%" (a price is not a percentage) and strips every other non-word
    character, Unicode dashes and ellipses too. The report's examples find a CoT's anchors by their text and strip
    sentence punctuation alone (".,!?;:"): a count's running "(2)" is not its anchor "2". Either written as this
    one would mark or align other words. (`normalize_answer` reads a whole answer, not a word.)
    """
    return word.strip(PUNCTUATION).lower()
