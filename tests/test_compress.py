import pytest

from vskip.compress import compress_records
from vskip.errors import BadInput

SCORED = {
    "id": "r0",
    "image": "a.png",
    "question": "What colour is the star?",
    "answer": "blue",
    "cot": "The star is blue here.",
    "tokens": ["The", " star", " is", " blue", " here", "."],
    "text_score": [1.0, 2.0, 0.5, 0.2, 3.0, 0.1],
    "visual_score": [0.1, 0.2, 0.1, 0.9, 0.1, 0.1],
    "words": ["The", "star", "is", "blue", "here."],
    "word_tokens": [1, 1, 1, 1, 2],
    "word_text_score": [1.0, 2.0, 0.5, 0.2, 3.0],
    "word_visual_score": [0.1, 0.2, 0.1, 0.9, 0.1],
}


def test_one_record_per_method_and_ratio_without_token_arrays():
    out = compress_records([SCORED], ["text", "vskip", "random"], [0.5, 1.0])
    assert [(r["method"], r["ratio"]) for r in out] == [(m, g) for m in ("text", "vskip", "random") for g in (0.5, 1.0)]
    for record in out:
        assert "text_score" not in record and "tokens" not in record
        assert record["answer"] == "blue" and record["words"] == SCORED["words"]
        assert len(record["keep"]) == len(SCORED["words"])
    by = {(r["method"], r["ratio"]): r for r in out}
    assert by["text", 1.0]["compressed_cot"] == "The star is blue here."
    assert "blue" not in by["text", 0.5]["compressed_cot"]  # predictable in text, pruned
    assert "blue" in by["vskip", 0.5]["compressed_cot"]  # visually salient, kept


def test_random_masks_are_reproducible_per_record():
    first = compress_records([SCORED], ["random"], [0.5], seed=3)
    other = dict(SCORED, id="r1")
    again = compress_records([other, SCORED], ["random"], [0.5], seed=3)
    assert again[1]["keep"] == first[0]["keep"]


def test_bad_methods_ratios_and_records_are_refused():
    with pytest.raises(BadInput, match="valid: gain, random, text, truncate, visual, vskip"):
        compress_records([SCORED], ["tokenskip"], [0.5])
    with pytest.raises(BadInput, match="outside"):
        compress_records([SCORED], ["text"], [1.5])
    with pytest.raises(BadInput, match="record r0: method 'gain' needs gain"):
        compress_records([SCORED], ["gain"], [0.5])
    with pytest.raises(BadInput, match="score the records first"):
        compress_records([{"id": "x", "cot": "a b"}], ["text"], [0.5])
