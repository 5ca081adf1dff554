"""benchmarks/onekey_cots.py: vskip-synth's CoTs rewritten as one-key lookups, the same items otherwise."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

from vskip.records import read_records
from vskip.synth import build

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def rewritten(tmp_path_factory):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        bench = importlib.import_module("onekey_cots")
    finally:
        sys.path.remove(str(BENCHMARKS))
    tmp = tmp_path_factory.mktemp("onekey")
    build(tmp / "synth", seed=4, n_train=0, n_val=40, n_test=0, progress=False)
    argv = sys.argv
    sys.argv = ["onekey_cots.py", "--data", str(tmp / "synth"), "--out", str(tmp / "onekey")]
    try:
        bench.main()
    finally:
        sys.argv = argv
    return read_records(tmp / "synth" / "val.jsonl"), read_records(tmp / "onekey" / "val.jsonl"), tmp / "onekey"


def items(text: str) -> list[str]:
    return re.split(r", | and ", text)


def test_same_items_and_images(rewritten):
    before, after, out = rewritten
    assert (out / "images").is_dir()
    assert [(r["id"], r["question"], r["answer"], r["image"]) for r in before] == [
        (r["id"], r["question"], r["answer"], r["image"]) for r in after]
    for old, new in zip(before, after):
        if old["task"] in ("relate", "doc"):
            assert new == old
        else:
            assert new["cot"] != old["cot"] and new.get("scene") == old.get("scene")


def test_visual_words_index_the_new_cots(rewritten):
    for record in rewritten[1]:
        words = record["cot"].split()
        for visual in record["visual_words"]:
            assert words[visual["index"]].strip(".,?!") == visual["word"]


def test_pope_adds_the_colours_of_the_asked_shape(rewritten):
    before, after, _ = rewritten
    for old, new in zip(before, after):
        if old["task"] != "pope":
            continue
        listing, decision = old["cot"].split(". ", 1)
        shape = old["question"].rstrip("?").split()[-1]
        colours = [o["colour"] for o in old["scene"] if o["shape"] == shape]
        assert new["cot"].startswith(listing + ". ") and new["cot"].endswith(" " + decision)
        step = new["cot"][len(listing) + 2 : -len(decision) - 1]
        if colours:
            assert items(re.sub(r"^The \w+ (is|are) ", "", step.rstrip("."))) == colours
        else:
            assert step.startswith("There are no")


def test_count_cots_state_the_answer_from_one_key_lists(rewritten):
    _, after, _ = rewritten
    counts = [r for r in after if r["task"] == "count"]
    assert {r["question"].startswith("How many other") for r in counts} == {True, False}
    for record in counts:
        first, rest = record["cot"].split(". ", 1)
        assert rest.endswith(f"makes {record['answer']}.")
        if record["question"].startswith("How many other"):
            shapes = items(re.sub(r"^The \w+ objects are ", "", rest.split(". ")[0]))
            assert "a star" in shapes and len(shapes) - 1 == int(record["answer"])
        elif not first.startswith("There are no"):
            colour = record["question"].split()[2]
            assert items(re.sub(r"^The \w+ (is|are) ", "", first)).count(colour) == int(record["answer"])
