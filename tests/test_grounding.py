"""Grounding questions: true of the record's image, and about what the question names."""

import random
import re

import pytest

from vskip.records import read_records
from vskip.synth import build, grounding_question, hallucinated_words


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    paths = build(tmp_path_factory.mktemp("synth"), seed=5, n_train=25, n_val=0, n_test=0, progress=False)
    return read_records(paths["train"])


def test_grounding_questions_are_true_of_the_image(records):
    rng = random.Random(0)
    asked = set()
    for record in records:
        for _ in range(4):
            grounding = grounding_question(record, rng)
            question, cot, answer = grounding["question"], grounding["cot"], grounding["answer"]
            asked.add(question.split()[0])
            assert hallucinated_words(record, cot)[1] == 0, (question, cot)
            if where := re.fullmatch(r"Where is the (\w+) (\w+)\?", question):
                row, col = map(int, re.fullmatch(r"row (\d) column (\d)", answer).groups())
                assert [(o["colour"], o["shape"]) for o in record["scene"] if (o["row"], o["col"]) == (row, col)] \
                    == [where.groups()]
                assert sum((o["colour"], o["shape"]) == where.groups() for o in record["scene"]) == 1  # unique
            elif at := re.fullmatch(r"What is at row (\d) column (\d)\?", question):
                row, col = map(int, at.groups())
                there = [o for o in record["scene"] if (o["row"], o["col"]) == (row, col)]
                assert [f"{o['colour']} {o['shape']}" for o in there] == [answer]
            elif line := re.fullmatch(r"Which line is the (\w+) on\?", question):
                assert record["document"][int(answer) - 1]["item"] == line.group(1)
            else:
                line = int(re.fullmatch(r"What is on line (\d)\?", question).group(1))
                assert record["document"][line - 1]["item"] == answer
            assert answer.split()[-1] in cot  # the chain of thought reaches its answer
    assert asked == {"Where", "What", "Which"}


def test_grounding_questions_follow_the_rng_and_need_ground_truth(records):
    draws = [[grounding_question(r, random.Random(7)) for r in records] for _ in range(2)]
    assert draws[0] == draws[1]
    with pytest.raises(ValueError, match="no ground truth"):
        grounding_question({"id": "x", "question": "q", "answer": "a"}, random.Random(0))
