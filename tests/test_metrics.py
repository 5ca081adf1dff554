from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vskip.errors import BadInput
from vskip.metrics import (
    act_ratio,
    anls,
    levenshtein,
    parse_multiple_choice,
    parse_yes_no,
    pope_scores,
    summarize,
    visual_word_retention,
)


def test_levenshtein_counts_single_edits():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == levenshtein("abc", "") == 3
    assert levenshtein("same", "same") == 0


def test_anls_is_one_minus_normalised_distance():
    assert anls("helo", ["hello"]) == pytest.approx(0.8)  # 1 edit over 5 characters
    assert anls("  Hello   WORLD ", ["hello world"]) == 1.0  # case and spaces do not count


def test_anls_threshold_zeroes_distances_of_half_and_more():
    reference = "abcdefghij"
    assert anls("abcdWXYZij", [reference]) == pytest.approx(0.6)  # NL 0.4 < 0.5: kept
    assert anls("abcVWXYZij", [reference]) == 0.0  # NL 0.5, exactly the threshold: zeroed
    assert anls("abcdefghi", ["abcdWXYZi"]) == pytest.approx(5 / 9)  # NL 4/9, just under
    assert anls("abcdefghi", ["abcVWXYZi"]) == 0.0  # NL 5/9, just over
    assert anls("abcdWXYZij", [reference], threshold=0.3) == 0.0


def test_anls_takes_the_best_reference():
    # "$4.50": 1 edit / 5 = 0.8; "4.5": 1 edit / 4 = 0.75; "four fifty": far
    assert anls("4.50", ["four fifty", "$4.50", "4.5"]) == pytest.approx(0.8)
    assert anls("anything", []) == 0.0


@given(st.text(max_size=30), st.lists(st.text(max_size=30), max_size=4))
def test_anls_lies_in_unit_interval(prediction, references):
    assert 0.0 <= anls(prediction, references) <= 1.0


@given(st.text(max_size=30), st.lists(st.text(max_size=30), max_size=3))
def test_anls_is_one_for_an_exact_match_and_grows_with_references(answer, others):
    assert anls(answer, [answer]) == 1.0
    assert anls(answer, [*others, answer]) == 1.0
    if others:
        assert anls(answer, others) >= anls(answer, others[:1])


def test_yes_no_parsing_follows_the_pope_rule():
    assert parse_yes_no("Yes, there is a dog.") == "yes"
    assert parse_yes_no("No.") == "no"
    assert parse_yes_no("There is not a dog in the image") == "no"
    assert parse_yes_no("Yes. There is no cat, but a dog.") == "yes"  # first sentence only
    assert parse_yes_no("I see a dog") == "yes"
    assert parse_yes_no("") is None and parse_yes_no(None) is None


def test_a_pope_category_of_negatives_only_has_no_recall_or_f1():
    # A category with no "yes" label: recall and F1 divide by nothing, and are None rather than 0.
    assert pope_scores(["no", "No."], ["no", "no"]) == {
        "accuracy": 1.0, "precision": None, "recall": None, "f1": None, "yes_ratio": 0.0}
    # A "yes" reply there is a false positive: precision is 0 of 1, defined; recall and F1 still are not.
    assert pope_scores(["yes", "no"], ["no", "no"]) == {
        "accuracy": 0.5, "precision": 0.0, "recall": None, "f1": None, "yes_ratio": 0.5}
    # Both defined and no hit: F1 is 0, not undefined.
    assert pope_scores(["yes", "no"], ["no", "yes"])["f1"] == 0.0
    summary = summarize([{"task": "pope", "prediction": "no", "answer": "no", "category": "adversarial",
                          "correct": True}])["overall"]
    assert summary["pope_by_category"]["adversarial"]["f1"] is None and summary["pope_f1"] is None


def test_pope_scores_on_a_hand_worked_confusion_matrix():
    # TP 3, FN 1, FP 2, TN 4
    labels = ["yes"] * 4 + ["no"] * 6
    predictions = ["Yes", "yes.", "Yes, there is.", "No.", "yes", "Yes", "no", "No", "There is not.", "no"]
    scores = pope_scores(predictions, labels)
    assert scores["accuracy"] == pytest.approx(0.7)
    assert scores["precision"] == pytest.approx(3 / 5)
    assert scores["recall"] == pytest.approx(3 / 4)
    assert scores["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert scores["yes_ratio"] == pytest.approx(0.5)


def test_pope_scores_survive_zero_divisions_and_missing_replies():
    # No "yes" reply: precision divides by nothing; recall is 0 of 1, F1 stays undefined with precision.
    scores = pope_scores(["no", None], ["yes", "no"])
    assert scores == {"accuracy": 0.0, "precision": None, "recall": 0.0, "f1": None, "yes_ratio": 0.0}
    assert pope_scores([], []) == dict.fromkeys(("accuracy", "precision", "recall", "f1", "yes_ratio"))
    with pytest.raises(ValueError):
        pope_scores(["yes"], [])


OPTIONS = ["red", "blue", "green", "yellow"]


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("(B)", "B"),
        ("The answer is (C).", "C"),
        ("B.", "B"),
        ("D", "D"),
        ("A: red", "A"),
        ("I first thought B, but it is (C)", "C"),  # a bracketed letter beats a bare one
        ("A or rather C", "C"),  # several: the last one mentioned
        ("blue", "B"),  # the reply is an option's text
        ("The ball on the left is clearly green here", "C"),  # option text in a long reply
        ("The DNA helix is drawn in yellow ink", "D"),  # the A inside DNA is not a letter
    ],
)
def test_parse_multiple_choice(reply, letter):
    assert parse_multiple_choice(reply, OPTIONS) == letter


def test_parse_multiple_choice_falls_back_to_a_seeded_choice():
    first = parse_multiple_choice("purple", OPTIONS)
    assert first in "ABCD"
    assert all(parse_multiple_choice("purple", OPTIONS) == first for _ in range(5))
    assert parse_multiple_choice(None, OPTIONS) in "ABCD"
    with pytest.raises(BadInput):
        parse_multiple_choice("A", [])


def test_act_ratio_is_a_ratio_of_sums():
    assert act_ratio(30, 60) == 0.5
    assert act_ratio([4, 30], [2, 60]) == pytest.approx(34 / 62)  # not the mean of 2.0 and 0.5
    assert act_ratio([], []) is None and act_ratio(3, 0) is None


VISUAL_WORDS = [  # reference CoT: "The red star is left of the red circle."
    {"index": 1, "word": "red", "type": "colour"},
    {"index": 2, "word": "star", "type": "shape"},
    {"index": 7, "word": "red", "type": "colour"},
    {"index": 8, "word": "circle", "type": "shape"},
]


def test_visual_word_retention_matches_bare_words_as_a_multiset():
    assert visual_word_retention(VISUAL_WORDS, "A RED star, left.") == {"colour": (1, 2), "shape": (1, 2)}
    assert visual_word_retention(VISUAL_WORDS, "red star red circle.") == {"colour": (2, 2), "shape": (2, 2)}
    assert visual_word_retention(VISUAL_WORDS, "") == {"colour": (0, 2), "shape": (0, 2)}
    assert visual_word_retention([], "red") == {}


ITEMS = [
    {
        "task": "docvqa",
        "correct": True,
        "anls": 1.0,
        "cot_tokens": 10,
        "full_cot_tokens": 20,
        "latency_s": 1.0,
        "latency_s_baseline": 4.0,
    },
    {
        "task": "docvqa",
        "correct": False,
        "anls": 0.6,
        "cot_tokens": 30,
        "full_cot_tokens": 40,
        "latency_s": None,
    },
    {
        "task": "pope",
        "correct": True,
        "prediction": "Yes",
        "answer": "yes",
        "category": "random",
        "cot_tokens": 5,
        "latency_s": 2.0,
        "latency_s_baseline": 3.0,
        "varr_kept": {"colour": 1, "shape": 2},
        "varr_total": {"colour": 2, "shape": 2},
        "attribute_mentions": 4,
        "hallucinated": 1,
    },
    {
        "task": "pope",
        "correct": False,
        "prediction": "yes",
        "answer": "no",
        "category": "adversarial",
        "cot_tokens": 7,
        "latency_s": 3.0,
        "latency_s_baseline": 6.0,
        "varr_kept": {"colour": 0},
        "varr_total": {"colour": 2},
        "attribute_mentions": 0,
        "hallucinated": 0,
    },
]


def test_summarize_overall_and_per_task():
    summary = summarize(ITEMS)
    overall, doc, pope = summary["overall"], summary["tasks"]["docvqa"], summary["tasks"]["pope"]
    assert set(summary["tasks"]) == {"docvqa", "pope"}
    assert overall["n"] == 4 and overall["accuracy"] == 0.5
    assert overall["anls"] == pytest.approx(0.8)
    assert overall["cot_tokens_mean"] == pytest.approx(13.0)
    assert overall["act_ratio"] == pytest.approx(40 / 60)  # only items with both counts
    assert overall["latency_s_mean"] == pytest.approx(2.0)  # 1, 2, 3; the unmeasured item left out
    assert overall["latency_s_median"] == 2.0
    # Speed-ups pair each item with its own baseline timing, each family over its own items.
    assert overall["speedup"] == pytest.approx(4.0 / 2.0)  # medians of (4, 3, 6) and (1, 2, 3)
    assert doc["speedup"] == 4.0 and doc["speedup_low"] is None  # one pair: no interval
    assert (overall["speedup_items"], doc["speedup_items"], pope["speedup_items"]) == (3, 1, 2)
    assert overall["speedup_too_few"] is True
    assert pope["speedup"] == pytest.approx(4.5 / 2.5)
    assert pope["speedup_low"] <= pope["speedup"] <= pope["speedup_high"]
    assert overall["varr"] == pytest.approx(3 / 6)
    assert overall["varr_by_type"] == {"colour": pytest.approx(0.25), "shape": 1.0}
    assert overall["hallucination_rate"] == pytest.approx(0.25)
    # pope: TP 1, FP 1 -> precision 0.5, recall 1, f1 2/3, every reply a yes
    assert pope["pope_precision"] == 0.5 and pope["pope_recall"] == 1.0
    assert pope["pope_f1"] == pytest.approx(2 / 3) and pope["pope_yes_ratio"] == 1.0
    assert pope["pope_by_category"]["adversarial"]["accuracy"] == 0.0
    assert overall["pope_f1"] == pope["pope_f1"]
    assert doc["pope_f1"] is None and doc["pope_by_category"] is None
    assert doc["varr"] is None and doc["hallucination_rate"] is None and pope["anls"] is None
    assert doc["act_ratio"] == pytest.approx(40 / 60) and pope["act_ratio"] is None


def test_summarize_of_nothing_and_of_untagged_items():
    empty = summarize([])
    assert empty["overall"]["n"] == 0 and empty["overall"]["accuracy"] is None and empty["tasks"] == {}
    assert set(summarize([{"correct": True}])["tasks"]) == {"unknown"}
