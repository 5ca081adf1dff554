import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vskip.errors import BadInput
from vskip.gate import (
    METHODS,
    SCORE_PATHS,
    TOKEN_FIELDS,
    ScorePath,
    WordScores,
    compress_text,
    keep_mask,
    register_method,
    select,
)

score = st.floats(min_value=-5, max_value=20, allow_nan=False)


@st.composite
def chains(draw):
    n = draw(st.integers(min_value=1, max_value=30))
    return dict(
        text=draw(st.lists(score, min_size=n, max_size=n)),
        visual=draw(st.lists(score, min_size=n, max_size=n)),
        gain=draw(st.lists(score, min_size=n, max_size=n)),
        word_tokens=draw(st.lists(st.integers(min_value=1, max_value=4), min_size=n, max_size=n)),
        lead_tokens=draw(st.none() | st.lists(st.integers(min_value=1, max_value=5), min_size=n, max_size=n)),
        essential=draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        dependency=draw(st.lists(score, min_size=n, max_size=n)),
        llmlingua2=draw(st.lists(st.floats(min_value=0, max_value=1), min_size=n, max_size=n)),
    )


def written_tokens(chain: dict, keep: list[bool]) -> int:
    """Tokens of the compressed CoT as written: each kept word's tokens, the first one's as it leads."""
    kept = [i for i, k in enumerate(keep) if k]
    lead = chain["lead_tokens"] or chain["word_tokens"]
    if not kept:
        return 0
    first = kept[0]
    return sum(chain["word_tokens"][i] for i in kept[1:]) + (lead[first] if first else chain["word_tokens"][0])


ratios = st.integers(5, 100).map(lambda hundredths: hundredths / 100)  # what check_ratio accepts
methods = st.sampled_from(sorted(METHODS))


@settings(max_examples=200, deadline=None)
@given(chain=chains(), ratio=ratios, method=methods, seed=st.integers(0, 3))
def test_kept_share_is_within_one_word_of_the_ratio(chain, ratio, method, seed):
    selection = select(method, WordScores.of(**chain), ratio, seed=seed)
    kept = written_tokens(chain, selection.keep)
    assert selection.kept_tokens == kept
    lead_gap = max(abs(a - b) for a, b in zip(chain["lead_tokens"] or chain["word_tokens"], chain["word_tokens"]))
    assert abs(kept - ratio * sum(chain["word_tokens"])) <= max(chain["word_tokens"]) + lead_gap


@settings(max_examples=200, deadline=None)
@given(chain=chains(), ratios=st.tuples(ratios, ratios), method=methods, seed=st.integers(0, 3))
def test_a_larger_ratio_keeps_a_superset_of_the_words(chain, ratios, method, seed):
    smaller, larger = (keep_mask(method, WordScores.of(**chain), ratio, seed=seed) for ratio in sorted(ratios))
    assert all(big for small, big in zip(smaller, larger, strict=True) if small)


def test_the_first_kept_word_costs_what_it_costs_written_first():
    # "I see 14. items": " 14." is 4 tokens in the CoT (" ", "1", "4", "."), 3 when it leads.
    chain = dict(text=[0, 9, 5], visual=[0, 0, 0], word_tokens=[1, 4, 1])
    # counted as 4 tokens, written as 3
    assert select("text", WordScores.of(**chain), 0.67).keep == [False, True, False]
    led = select("text", WordScores.of(**chain, lead_tokens=[1, 3, 1]), 0.67)
    assert led.keep == [False, True, True] and led.kept_tokens == 4 == led.budget
    # word 0 leads the CoT
    assert select("truncate", WordScores.of(**chain, lead_tokens=[9, 9, 9]), 0.67).kept_tokens == 5


@settings(max_examples=50, deadline=None)
@given(chain=chains(), method=methods)
def test_ratio_one_keeps_everything(chain, method):
    assert all(keep_mask(method, WordScores.of(**chain), 1.0))


@settings(max_examples=200, deadline=None)
@given(chain=chains(), ratio=ratios)
def test_vskip_keeps_a_word_salient_on_either_path(chain, ratio):
    selection = select("vskip", WordScores.of(**chain), ratio)
    tau_vis, tau_text = (float("inf") if t is None else t for t in selection.thresholds)
    for text, visual, kept in zip(chain["text"], chain["visual"], selection.keep, strict=True):
        if visual > tau_vis or text > tau_text:  # above a threshold: kept whatever the other score
            assert kept
        if kept:  # and nothing else is: the union of the two saliencies
            assert visual >= tau_vis or text >= tau_text


@settings(max_examples=50, deadline=None)
@given(chain=chains(), ratio=ratios, method=methods)
def test_compressed_text_keeps_the_words_in_order(chain, ratio, method):
    words = [f"w{i}" for i in range(len(chain["word_tokens"]))]
    keep = keep_mask(method, WordScores.of(**chain), ratio)
    compressed = compress_text(words, keep).split()
    assert compressed == [w for w, k in zip(words, keep, strict=True) if k]
    assert compressed == sorted(compressed, key=words.index)


def test_methods_rank_by_their_own_score():
    chain = dict(text=[9, 1, 1, 1], visual=[1, 1, 9, 1], gain=[1, 9, 1, 1], word_tokens=[1, 1, 1, 1],
                 llmlingua2=[0.1, 0.2, 0.3, 0.9])
    assert keep_mask("text", WordScores.of(**chain), 0.25) == [True, False, False, False]
    assert keep_mask("visual", WordScores.of(**chain), 0.25) == [False, False, True, False]
    assert keep_mask("gain", WordScores.of(**chain), 0.25) == [False, True, False, False]
    assert keep_mask("llmlingua2", WordScores.of(**chain), 0.25) == [False, False, False, True]
    assert keep_mask("truncate", WordScores.of(**chain), 0.5) == [True, True, False, False]
    assert keep_mask("dependency", WordScores.of(**chain, dependency=[1, 1, 1, 9]), 0.25) == [False, False, False, True]
    # The three-way union: visual, text, dependency, in turn.
    three = keep_mask("vskip+dependency", WordScores.of(**chain, dependency=[1, 1, 1, 9]), 0.75)
    assert three == [True, False, True, True]
    # The text ranking prunes the visually grounded word; V-Skip keeps both salient words.
    assert keep_mask("vskip", WordScores.of(**chain), 0.5) == [True, False, True, False]


@settings(max_examples=100, deadline=None)
@given(chain=chains(), ratio=ratios)
def test_oracle_keeps_every_essential_word_before_any_other(chain, ratio):
    keep = keep_mask("oracle", WordScores.of(**chain), ratio)
    kept_essential = [k for k, e in zip(keep, chain["essential"], strict=True) if e]
    if any(k for k, e in zip(keep, chain["essential"], strict=True) if not e):
        assert all(kept_essential)


def test_oracle_drops_the_most_predictable_essential_words_first_and_needs_the_flags():
    chain = dict(text=[5, 1, 9, 0], visual=[0, 9, 0, 0], word_tokens=[1, 1, 1, 1], essential=[True, True, True, False])
    assert keep_mask("oracle", WordScores.of(**chain), 0.5) == [True, False, True, False]
    assert keep_mask("oracle", WordScores.of(**chain), 0.75) == [True, True, True, False]
    with pytest.raises(BadInput, match="essential"):
        keep_mask("oracle", WordScores.of([1], text=[1.0], visual=[1.0]), 0.5)


def test_turns_split_the_union_budget_between_its_rankings():
    chain = dict(text=[9, 8, 7, 0, 0, 0], visual=[0, 0, 0, 9, 8, 7], word_tokens=[1] * 6)
    # Visual first: turns (1, 1) take visual, text, visual; (1, 2) visual, text, text; (2, 1) visual, visual, text.
    assert keep_mask("vskip", WordScores.of(**chain), 0.5) == [True, False, False, True, True, False]
    assert keep_mask("vskip", WordScores.of(**chain), 0.5, turns=(1, 2)) == [True, True, False, True, False, False]
    assert keep_mask("vskip", WordScores.of(**chain), 0.67, turns=(2, 1)) == [True, False, False, True, True, True]
    with pytest.raises(BadInput, match="has 1 ranking"):
        keep_mask("text", WordScores.of(**chain), 0.5, turns=(2, 1))
    with pytest.raises(BadInput, match="one turn or more"):
        keep_mask("vskip", WordScores.of(**chain), 0.5, turns=(0, 1))


def test_random_depends_on_the_seed_only():
    chain = dict(text=[0.0] * 40, visual=[0.0] * 40, word_tokens=[1] * 40)
    masks = {seed: keep_mask("random", WordScores.of(**chain), 0.5, seed=seed) for seed in range(3)}
    assert masks[0] == keep_mask("random", WordScores.of(**chain), 0.5, seed=0)
    assert len({tuple(mask) for mask in masks.values()}) == 3


def test_a_method_is_one_registered_function():
    @register_method("longest")
    def longest(scores: WordScores, rng: random.Random):
        return [scores.word_tokens]

    try:
        assert keep_mask("longest", WordScores.of([1, 3], text=[0, 0], visual=[0, 0]), 0.75) == [
            False,
            True,
        ]
    finally:
        del METHODS["longest"]


VALID_METHODS = "valid: dependency, gain, llmlingua2, oracle, random, text, truncate, visual, vskip"


def test_bad_requests_are_refused():
    chain = dict(text=[1.0], visual=[1.0], word_tokens=[1])
    with pytest.raises(BadInput, match=VALID_METHODS):
        keep_mask("llmlingua", WordScores.of(**chain), 0.5)
    with pytest.raises(BadInput, match="outside"):
        keep_mask("text", WordScores.of(**chain), 0.0)
    with pytest.raises(BadInput, match="blind"):
        keep_mask("gain", WordScores.of(**chain), 0.5)
    with pytest.raises(BadInput, match="dependency scores"):
        keep_mask("vskip+dependency", WordScores.of(**chain), 0.5)
    with pytest.raises(BadInput, match="--llmlingua2-model"):
        keep_mask("llmlingua2", WordScores.of(**chain), 0.5)
    with pytest.raises(BadInput, match="2 text scores for 1 words"):
        keep_mask("text", WordScores.of([1], text=[1.0, 2.0], visual=[1.0]), 0.5)


def test_word_scores_come_from_a_record_by_the_table_of_score_paths():
    record = {"word_tokens": [1, 2], "word_lead_tokens": [1, 1], "word_text_score": [1.0, 2.0],
              "word_visual_score": [0.5, 0.1], "word_gain_score": None, "essential": [True, False], "other": [1, 2]}
    scores = WordScores.from_record(record)
    assert scores == WordScores([1, 2], {"text": [1.0, 2.0], "visual": [0.5, 0.1], "essential": [True, False]}, [1, 1])
    assert TOKEN_FIELDS == ("tokens", "text_score", "visual_score", "gain_score", "dependency_score")
    with pytest.raises(BadInput, match="unknown score path"):
        WordScores([1], {"texts": [1.0]})
    with pytest.raises(BadInput, match="visual scores contain NaN"):
        WordScores.of([1], text=[1.0], visual=[float("nan")])


def test_a_score_path_is_one_table_entry_and_one_gate_function():
    # The two places gate.py's docstring names: an entry in SCORE_PATHS, a registered method.
    SCORE_PATHS["grounding"] = ScorePath("word_grounding_score", "grounding_score", "score with --grounding-model")

    @register_method("grounding")
    def grounded(scores: WordScores, rng: random.Random):
        return [scores["grounding"]]

    try:
        record = {"word_tokens": [1, 1, 1], "word_text_score": [0, 0, 0], "word_visual_score": [0, 0, 0],
                  "word_grounding_score": [0.1, 0.9, 0.2]}
        assert keep_mask("grounding", WordScores.from_record(record), 0.34) == [False, True, False]
        with pytest.raises(BadInput, match=r"method 'grounding' needs grounding scores \(word_grounding_score\): "
                                           "score with --grounding-model"):
            keep_mask("grounding", WordScores.of([1], text=[0.0]), 0.5)
    finally:
        del METHODS["grounding"], SCORE_PATHS["grounding"]
