"""What the model is asked and how its reply is read: one place for every stage.

A reply is `"{cot}\\nAnswer: {answer}"` in `cot` mode and `"Answer: {answer}"` in `direct` mode.
A distilled model is asked for a compressed chain of thought by a γ marker in the instruction,
`"Compress the reasoning to ratio {γ:.1f}."`, as TokenSkip writes the ratio into the prompt.
"""

from __future__ import annotations

import re
from typing import Literal

from .errors import BadInput

Mode = Literal["cot", "direct"]
MODES: tuple[Mode, ...] = ("cot", "direct")

ANSWER_PREFIX = "Answer:"
_ANSWER = re.compile(r"Answer:\s*(.*)", re.DOTALL)


def instruction(question: str, mode: Mode, ratio: float | None = None) -> str:
    """The user turn's text: the question, then how to reply."""
    if mode == "direct":
        return f"{question}\nAnswer directly."
    if ratio is None or ratio >= 1.0:
        return f"{question}\nThink step by step, then answer."
    return f"{question}\nThink step by step, then answer. Compress the reasoning to ratio {ratio:.1f}."


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


def require_answer(record_id: str, cot: str, answer: str | None) -> str:
    if answer is None or not str(answer).strip():
        raise BadInput(f"record {record_id}: the chain of thought has no answer; generate it again or drop it")
    return str(answer)


def normalize_answer(text: str) -> str:
    """Exact-match form: lower case, no surrounding punctuation or spaces."""
    return re.sub(r"\s+", " ", text.strip().lower().strip(" .,!?;:\"'"))
