"""What the model is asked and how its reply is read; the γ marker writes every γ the project accepts exactly."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vskip import prompts
from vskip.errors import BadInput
from vskip.prompts import check_ratio, cot_answer, reference_answers, require_answer


def test_a_generated_cot_goes_with_the_answer_the_model_reached():
    assert cot_answer({"id": "a", "answer": "7", "prediction": "9"}) == "9"  # a wrong answer is still its answer
    assert cot_answer({"id": "a", "answer": "7"}) == "7"  # a dataset's reference CoT
    assert cot_answer({"id": "a", "answer": 7}) == "7"
    # A model that reached no answer did not write the reference one: no fallback.
    for prediction in (None, "", "  "):
        assert cot_answer({"id": "a", "answer": "7", "prediction": prediction}) is None
    with pytest.raises(BadInput, match="record a: the chain of thought has no answer"):
        require_answer({"id": "a", "answer": "7", "prediction": None})


def test_reference_answers_are_all_the_accepted_ones():
    assert reference_answers({"answer": "4.50", "answers": ["$4.50", "4.50"]}) == ["$4.50", "4.50"]
    assert reference_answers({"answer": 3}) == ["3"]
    assert reference_answers({}) == []


MARKER = re.compile(r"Compress the reasoning to ratio (\d+(?:\.\d+)?)\.$")


def marker_ratio(ratio: float) -> float:
    """γ as a reader of the prompt finds it."""
    return float(MARKER.search(prompts.instruction("How many?", "cot", ratio)).group(1))


def test_every_hundredth_round_trips_through_the_prompt():
    for hundredths in range(1, 100):
        ratio = check_ratio(hundredths / 100)
        assert marker_ratio(ratio) == ratio == hundredths / 100
    assert prompts.ratio_text(0.25) == "0.25" and prompts.ratio_text(0.5) == "0.5"  # 0.25 is not "0.2"
    assert "ratio" not in prompts.instruction("How many?", "cot", check_ratio(1.0))  # γ = 1 has no marker


@given(st.one_of(st.floats(), st.floats(0, 1), st.integers(-2, 102).map(lambda k: k / 100)))
def test_a_ratio_is_accepted_only_if_the_marker_gives_it_back(ratio):
    try:
        accepted = check_ratio(ratio)
    except BadInput as err:
        assert "\n" not in str(err) and str(err).startswith(f"ratio {ratio!r} ")
        return
    assert abs(accepted - ratio) <= prompts.RATIO_TOLERANCE and 0 < accepted <= 1
    if accepted < 1:
        assert marker_ratio(accepted) == accepted


@pytest.mark.parametrize("ratio", [0.123, 0.255, 0.001, 1 / 3])
def test_a_ratio_the_marker_cannot_write_is_refused_in_one_line(ratio):
    with pytest.raises(BadInput, match=r"more than 2 decimals, which the γ marker cannot write; .* 0\.25$"):
        check_ratio(ratio)
    with pytest.raises(BadInput, match="γ marker"):
        prompts.instruction("How many?", "cot", ratio)


def test_float_noise_reads_as_the_ratio_it_stands_for():
    assert check_ratio(0.1 + 0.2) == 0.3 and check_ratio(1e-12 + 0.05) == 0.05


def test_a_student_asked_for_auto_chooses_its_own_budget():
    from vskip.prompts import AUTO, instruction

    assert instruction("Q?", "cot", AUTO).endswith("Compress the reasoning as far as it stays correct.")


@pytest.mark.parametrize("ratio", [0, -0.5, 1.0001, float("nan"), float("inf"), "0.5"])
def test_ratios_outside_the_unit_interval_are_refused(ratio):
    with pytest.raises(BadInput, match=r"outside \(0, 1\]"):
        check_ratio(ratio)
    assert check_ratio(1) == 1.0 and check_ratio(0.01) == 0.01
    with pytest.raises(BadInput, match=r"outside \(0, 1\]"):
        check_ratio(1e-12)  # reads back as 0
