"""Evaluation metrics: pure functions over predictions and per-item records (no model, no files).

- ANLS (DocVQA): for one item, max over references r of s(r, p) = 1 − NL(r, p) if NL < τ else 0,
  NL = Levenshtein(r, p) / max(|r|, |p|) on lower-cased, stripped, space-collapsed strings, τ = 0.5.
- POPE: a reply is "no" when it has the word "no" or "not", otherwise "yes" (the POPE / LLaVA rule);
  accuracy, precision, recall and F1 of "yes" as the positive class; yes-ratio = share of "yes" replies.
  A figure that divides by nothing (precision with no "yes" reply, recall with no "yes" label) is None.
- MMMU: the reply's option letter, parsed as MMMU's `parse_multi_choice_response` does.
- ActRatio: CoT tokens over the uncompressed CoT's tokens for the same item; over many items it is
  the ratio of the sums, Σ tokens / Σ full tokens, so long items weigh as much as their tokens.
- Speed-up: median baseline latency over median latency, on the items timed side by side with the
  baseline (`latency.paired_speedup`), with its bootstrap interval and the number of items timed.
- VARR: of the visual words (colour, shape, …) of the reference CoT, the share still present.
- Hallucination rate: false attribute mentions over all attribute mentions.
"""

from __future__ import annotations

import random
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import BadInput
from .latency import paired_speedup
from .prompts import bare_word, normalize_answer, reference_answers

ANLS_THRESHOLD = 0.5
# The families scored by ANLS beside accuracy: vskip-synth's documents and imported DocVQA.
ANLS_TASKS = ("doc", "docvqa")
MMMU_SEED = 42  # the seed of MMMU's own evaluation scripts


def levenshtein(a: str, b: str) -> int:
    """Edit distance: insertions, deletions and substitutions each cost 1."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _anls_form(text: str) -> str:
    return " ".join(text.strip().lower().split())


def anls(prediction: str, references: Iterable[str], threshold: float = ANLS_THRESHOLD) -> float:
    """ANLS of one item: max over references of 1 − NL, set to 0 where NL ≥ `threshold`.

    Follows the DocVQA definition (Biten et al. 2019). lmms-eval differs in two corners: it
    keeps a score of exactly 0.5 (it zeroes only 1 − NL < 0.5) and divides by the lengths of the
    raw, un-normalised strings. No references score 0.
    """
    predicted = _anls_form(prediction)
    best = 0.0
    for reference in references:
        expected = _anls_form(reference)
        longest = max(len(predicted), len(expected))
        distance = levenshtein(predicted, expected) / longest if longest else 0.0
        best = max(best, 1.0 - distance if distance < threshold else 0.0)
    return best


def parse_yes_no(reply: str | None) -> str | None:
    """The reply read as "yes" or "no": "no" if it has the word no or not; None for no reply.

    The rule of POPE's and LLaVA's `eval_pope` (first sentence, commas dropped, word match);
    lmms-eval itself compares the whole lower-cased reply with "yes"/"no".
    """
    if reply is None or not reply.strip():
        return None
    first = reply.strip().split(".")[0] or reply
    words = {bare_word(word) for word in first.split()}
    return "no" if words & {"no", "not"} else "yes"


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def pope_scores(predictions: Sequence[str | None], labels: Sequence[str]) -> dict[str, float | None]:
    """Accuracy, precision, recall, F1 (positive class "yes") and yes-ratio of POPE replies.

    Replies are read by `parse_yes_no`; an empty reply is wrong and not a "yes" (it counts as a
    miss for recall). A figure that divides by nothing is None, not 0 as in lmms-eval: precision
    with no "yes" reply, recall with no "yes" label (a POPE category of negatives only), F1 where
    either is None, everything over no items. F1 = 2·TP / (2·TP + FP + FN): 0, not None, where TP is 0.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    parsed = [parse_yes_no(prediction) for prediction in predictions]
    truth = [label.strip().lower() for label in labels]
    tp = sum(p == "yes" and t == "yes" for p, t in zip(parsed, truth, strict=True))
    fp = sum(p == "yes" and t != "yes" for p, t in zip(parsed, truth, strict=True))
    fn = sum(p != "yes" and t == "yes" for p, t in zip(parsed, truth, strict=True))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "accuracy": _ratio(sum(p == t for p, t in zip(parsed, truth, strict=True)), len(truth)),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn) if precision is not None and recall is not None else None,
        "yes_ratio": _ratio(parsed.count("yes"), len(parsed)),
    }


def option_letters(options: Sequence[str]) -> list[str]:
    return [chr(ord("A") + i) for i in range(len(options))]


def _last(candidates: dict[str, int]) -> str:
    return max(candidates, key=candidates.__getitem__)


def parse_multiple_choice(reply: str | None, options: Sequence[str], seed: int = MMMU_SEED) -> str:
    """The option letter ("A", "B", …) a reply chooses among `options` (the option texts).

    MMMU's rules, in order: a bracketed letter "(B)"; a letter standing alone ("B", "B.", "B:");
    the reply equal to one option's text; an option's text inside a reply of more than five
    words. Where several options match, the one mentioned last wins. Where none does, a letter
    is drawn at random as MMMU does, but from a generator seeded with `seed` and the reply, so
    the same reply always gets the same letter whatever else is evaluated.
    """
    letters = option_letters(options)
    if not letters:
        raise BadInput("a multiple-choice question needs options; this one has none")
    reply = (reply or "").strip().strip(",.!?;:'")
    found = {letter: reply.rfind(f"({letter})") for letter in letters if f"({letter})" in reply}
    if not found:
        for letter in letters:
            matches = list(re.finditer(rf"(?<![\w(]){letter}(?![\w)])", reply))
            if matches:
                found[letter] = matches[-1].start()
    if not found:
        spoken = " ".join(reply.lower().split())
        texts = {
            letter: " ".join(str(option).lower().split())
            for letter, option in zip(letters, options, strict=True)
        }
        found = {letter: 0 for letter, text in texts.items() if text and text == spoken}
        if not found and len(spoken.split()) > 5:
            found = {letter: spoken.rfind(text) for letter, text in texts.items() if text and text in spoken}
    if found:
        return _last(found)
    return random.Random(f"{seed}\x00{reply}").choice(letters)


def act_ratio(cot_tokens: int | Iterable[int], full_cot_tokens: int | Iterable[int]) -> float | None:
    """ActRatio = tokens / tokens of the uncompressed CoT; for many items Σ tokens / Σ full tokens.

    The ratio of sums, not the mean of per-item ratios: a short item whose CoT went from 4 tokens
    to 8 would otherwise weigh as much as a long one. None where the uncompressed CoTs are empty.
    """
    kept = sum(cot_tokens) if isinstance(cot_tokens, Iterable) else cot_tokens
    full = sum(full_cot_tokens) if isinstance(full_cot_tokens, Iterable) else full_cot_tokens
    return kept / full if full else None


def visual_word_retention(
    reference_words: Sequence[Mapping[str, Any]], text: str
) -> dict[str, tuple[int, int]]:
    """{type: (kept, total)} for the reference CoT's visual words still present in `text`.

    `reference_words` are a record's `visual_words` (`{"index", "word", "type"}`). Matching is on
    bare lower-case words (surrounding punctuation stripped), as a multiset: each word of `text`
    keeps at most one reference word, given out in reference order, so a colour said once does
    not count for two.
    """
    available = Counter(bare_word(word) for word in text.split())
    retained: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in sorted(reference_words, key=lambda entry: entry["index"]):
        word, counts = bare_word(str(entry["word"])), retained[entry["type"]]
        counts[1] += 1
        if available[word] > 0:
            available[word] -= 1
            counts[0] += 1
    return {kind: (kept, total) for kind, (kept, total) in retained.items()}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _present(items: list[Mapping[str, Any]], key: str) -> list[Any]:
    return [item[key] for item in items if item.get(key) is not None]


def _pope(items: list[Mapping[str, Any]]) -> dict[str, float | None]:
    return pope_scores(
        [item.get("prediction") for item in items], [str(item.get("answer", "")) for item in items]
    )


def _block(items: list[Mapping[str, Any]]) -> dict[str, Any]:
    paired = [
        item
        for item in items
        if item.get("cot_tokens") is not None and item.get("full_cot_tokens") is not None
    ]
    kept: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for item in items:
        kept.update(item.get("varr_kept") or {})
        total.update(item.get("varr_total") or {})
    mentions = sum(_present(items, "attribute_mentions"))
    pope = [item for item in items if item.get("task") == "pope"]
    scores = _pope(pope) if pope else dict.fromkeys(("accuracy", "f1", "precision", "recall", "yes_ratio"))
    categories = sorted({item["category"] for item in pope if item.get("category") is not None})
    return {
        "n": len(items),
        "accuracy": _mean([float(bool(item.get("correct"))) for item in items]),
        "anls": _mean(_present(items, "anls")),
        "cot_tokens_mean": _mean(_present(items, "cot_tokens")),
        "act_ratio": act_ratio([i["cot_tokens"] for i in paired], [i["full_cot_tokens"] for i in paired]),
        "latency_s_mean": _mean(_present(items, "latency_s")),
        "latency_s_median": statistics.median(_present(items, "latency_s")) if _present(items, "latency_s") else None,
        **paired_speedup(
            {i: item["latency_s_baseline"] for i, item in enumerate(items) if item.get("latency_s_baseline")},
            {i: item["latency_s"] for i, item in enumerate(items) if item.get("latency_s")},
        ),
        "varr": sum(kept.values()) / sum(total.values()) if sum(total.values()) else None,
        "varr_by_type": {kind: kept[kind] / total[kind] for kind in sorted(total) if total[kind]},
        "hallucination_rate": sum(_present(items, "hallucinated")) / mentions if mentions else None,
        **{f"pope_{name}": value for name, value in scores.items()},
        "pope_by_category": {c: _pope([i for i in pope if i.get("category") == c]) for c in categories}
        or None,
    }


def summarize(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{"overall": block, "tasks": {task: block}} over per-item evaluation records.

    A block has `n`, `accuracy` (share of `correct`), `anls`, `cot_tokens_mean`, `act_ratio`
    (Σ cot_tokens / Σ full_cot_tokens over items with both), `latency_s_mean` and `latency_s_median`,
    `speedup` with `speedup_low` and `speedup_high` (`latency.paired_speedup` of `latency_s_baseline` and
    `latency_s`, over the items with both), `varr` (Σ kept /
    Σ total over all types) and `varr_by_type`, `hallucination_rate` (Σ hallucinated / Σ
    attribute_mentions), and `pope_accuracy`, `pope_f1`, `pope_precision`, `pope_recall`,
    `pope_yes_ratio`, `pope_by_category` over the items of task "pope". A figure with no items to
    stand on is None. Items without a task are grouped under "unknown".
    """
    items = list(items)
    by_task: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in items:
        by_task[str(item.get("task") or "unknown")].append(item)
    return {"overall": _block(items), "tasks": {task: _block(by_task[task]) for task in sorted(by_task)}}


def is_correct(prediction: str | None, record: Mapping[str, Any]) -> bool:
    """Whether a reply answers the record, as each benchmark judges it.

    Multiple choice (records with `options`): the parsed option letter equals the answer letter.
    Yes/no questions: the reply read by `parse_yes_no` equals the answer. Otherwise exact match
    after normalisation (`prompts.normalize_answer`) against any reference answer (`answers` or
    `answer`).
    """
    if prediction is None:
        return False
    answers = reference_answers(record)
    if record.get("options"):
        return parse_multiple_choice(prediction, record["options"]) in {a.strip().upper() for a in answers}
    if {normalize_answer(a) for a in answers} <= {"yes", "no"} and answers:
        return parse_yes_no(prediction) == normalize_answer(answers[0])
    return normalize_answer(prediction) in {normalize_answer(a) for a in answers}
