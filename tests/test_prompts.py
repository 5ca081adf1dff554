import pytest

from vskip.errors import BadInput
from vskip.prompts import cot_answer, reference_answers, require_answer


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
