from dataclasses import replace

import pytest

from vskip.errors import BadInput
from vskip.rounds import choose, on_policy_pairs, qualifies, retained_words
from vskip.settings import RoundSettings

WORDS = "The star is red . That makes 2 red objects".split()
RECORD = {"id": "a", "task": "count", "words": WORDS, "word_tokens": [1] * len(WORDS),
          # the gate kept "star red 2 red objects"
          "keep": [False, True, False, True, False, False, False, True, True, True]}


def candidate(cot: str, correct: bool = True, answer: str = "2") -> dict:
    return {"id": "a", "cot": cot, "prediction": answer, "correct": correct, "cot_tokens": len(cot.split())}


def test_retained_words_align_in_order_ignoring_case_and_punctuation():
    assert retained_words(WORDS, "star red. makes 2") == [False, True, False, True, False, False, True, True,
                                                           False, False]
    assert retained_words(WORDS, "") == [False] * len(WORDS)


def test_a_candidate_qualifies_when_right_and_within_the_gates_budget():
    # γ 0.5 of 10 tokens: 5, plus the two tokens of slack the gate's fill rule may itself overshoot by.
    assert qualifies(candidate("a b c d e f g"), RECORD, 0.5)
    assert not qualifies(candidate("a b c d e f g h"), RECORD, 0.5)
    assert not qualifies(candidate("star red 2", correct=False), RECORD, 0.5)
    assert not qualifies(candidate(""), RECORD, 0.5)


def test_the_gate_chooses_the_candidate_that_keeps_most_of_its_words_the_shortest_breaks_ties():
    grounded, terse, chatty = candidate("star red 2 red objects"), candidate("makes 2"), candidate("That makes 2")
    assert choose([terse, grounded, chatty], RECORD, 0.5, "gate") is grounded
    assert choose([terse, grounded], RECORD, 0.5, "shortest") is terse
    assert choose([chatty, terse], RECORD, 0.5, "gate") is terse  # one gate word each: the shorter
    assert choose([candidate("star red 2", correct=False)], RECORD, 0.5, "gate") is None


def test_on_policy_pairs_replace_the_gates_targets_where_a_candidate_qualifies():
    other = {**RECORD, "id": "b", "task": "doc"}
    gate_pairs = [(RECORD, 0.5, "gate a\nAnswer: 2"), (other, 0.5, "gate b\nAnswer: 2"),
                  (RECORD, 0.7, "gate a 0.7\nAnswer: 2"), (RECORD, 1.0, "full a\nAnswer: 2"),
                  (RECORD, "auto", "auto a\nAnswer: 2"),
                  (other, "auto", "auto b\nAnswer: 2")]
    written = {("a", 0.5): [candidate("star red 2 red objects"), candidate("red 2")],
               ("b", 0.5): [candidate("star red 2", correct=False)],
               ("a", 0.7): [candidate("That makes 2 red objects")]}
    pairs, yields = on_policy_pairs(gate_pairs, written)
    targets = {(record["id"], ratio): reply for record, ratio, reply in pairs}
    assert targets == {("a", 0.5): "star red 2 red objects\nAnswer: 2", ("b", 0.5): "gate b\nAnswer: 2",
                       ("a", 0.7): "That makes 2 red objects\nAnswer: 2",
                       ("a", 1.0): "full a\nAnswer: 2",
                       ("a", "auto"): "red 2\nAnswer: 2",  # the shortest right one, whatever γ it was asked at
                       ("b", "auto"): "auto b\nAnswer: 2"}
    assert yields == {"count": {"0.5": {"qualified": 1, "items": 1}, "0.7": {"qualified": 1, "items": 1},
                                "auto": {"qualified": 1, "items": 1}},
                      "doc": {"0.5": {"qualified": 0, "items": 1}, "auto": {"qualified": 0, "items": 1}}}
    dropped, _ = on_policy_pairs(gate_pairs, written, fallback="drop")
    assert {(record["id"], ratio) for record, ratio, _ in dropped} == {("a", 0.5), ("a", 0.7), ("a", 1.0),
                                                                       ("a", "auto")}


@pytest.mark.parametrize("change, message", [
    ({"count": -1}, "rounds -1"), ({"samples": 0}, "samples 0"), ({"temperature": 0.0}, "temperature 0.0"),
    ({"selection": "longest"}, "selection 'longest'"), ({"fallback": "skip"}, "fallback 'skip'"),
])
def test_round_settings_out_of_range_are_refused(change, message):
    with pytest.raises(BadInput, match=message):
        replace(RoundSettings(), **change)
