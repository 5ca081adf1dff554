"""benchmarks/bench_compression.py: the ablations that choose the visual path run on a validation split only."""

from __future__ import annotations

import json
import sys

import pytest

from vskip.errors import BadInput
from vskip.models import TINY_DIR
from vskip.settings import VISUAL_AGGREGATIONS, VISUAL_ROWS
from vskip.synth import build


@pytest.fixture
def bench(benchmark):
    return benchmark("bench_compression")


def test_the_ablation_varies_one_choice_at_a_time(bench):
    paths = bench.ablation_paths(4)
    layer_sets = [(0,), (1,), (2,), (3,), (0, 1), (2, 3), (0, 1, 2, 3)]
    for row in VISUAL_ROWS:
        assert [path.key_layers for path in paths if path.key_layers and path.row == row] == layer_sets
    assert all(path.aggregation == "layer-mean-head-max" for path in paths if path.key_layers)
    others = [(path.row, path.aggregation) for path in paths if path.key_layers is None]
    assert others == [("own", "head-max-layer-mean"), ("predictor", "head-max-layer-mean")]


@pytest.mark.skipif(not (TINY_DIR / "model.safetensors").is_file(), reason="vskip-tiny not trained")
def test_it_runs_on_val_and_refuses_test(bench, monkeypatch, tmp_path, capsys):
    paths = build(tmp_path / "synth", seed=4, n_train=0, n_val=1, n_test=1, progress=False)
    out = tmp_path / "compression.json"
    monkeypatch.setattr(sys, "argv", ["bench_compression.py", "--data", str(paths["test"]), "--out", str(out)])
    with pytest.raises(SystemExit):
        bench.main()
    assert "is a test split" in capsys.readouterr().err and not out.exists()
    monkeypatch.setattr(sys, "argv", ["bench_compression.py", "--data", str(paths["val"]), "--out", str(out),
                                       "--union-splits", "1:1,2:1"])
    bench.main()
    report = json.loads(out.read_text())
    assert report["default_visual_path"] == {"key_layers": [0, 1, 2, 3], "row": "predictor",
                                            "aggregation": "layer-mean-head-max"}
    # The visual gate and the vskip union at each split, for each path; forced accuracy for the default path's unions.
    assert len(report["ablation"]) == 3 * len(bench.ablation_paths(4))
    forced = [row for row in report["ablation"] if "forced_accuracy" in row]
    assert [row["union_split"] for row in forced] == ["1:1", "2:1"]
    assert all(0 <= row["forced_accuracy"] <= 1 for row in forced + report["quality"])
    read = {(row["row"], row["aggregation"]) for row in report["ablation"]}
    assert read == {(row, aggregation) for row in VISUAL_ROWS for aggregation in VISUAL_AGGREGATIONS}


def test_room_counts_the_tokens_of_anchors_and_of_words_that_are_not_function_words(bench):
    record = {"task": "count", "words": ["I", "see", "a", "red", "star", "(1).", "That", "makes", "1."],
              "word_tokens": [1, 1, 1, 1, 1, 3, 1, 1, 3], "visual_words": [{"index": 3}, {"index": 4}]}
    pope = {**record, "task": "pope", "words": ["There", "is", "no", "red", "star."], "word_tokens": [1, 1, 1, 1, 2]}
    rows = {row["task"]: row for row in bench.room([record, record, pope])}
    # count: "red", "star" (visual) and "(1).", "1." (numbers) are 8 of 13 tokens; pope's "no" is no anchor,
    # but no function word either
    assert rows["count"] == {"task": "count", "anchor_token_share": 8 / 13, "content_token_share": 8 / 13,
                             "cot_tokens": 13}
    assert rows["pope"]["anchor_token_share"] == 3 / 6 and rows["pope"]["content_token_share"] == 4 / 6


def test_quality_counts_the_essential_words_kept(bench):
    record = {"method": "oracle", "ratio": 0.5, "words": ["So", "a", "red", "star."], "word_tokens": [1, 1, 1, 2],
              "visual_words": [{"index": 2, "type": "colour"}], "keep": [False, True, True, False],
              "essential": [False, True, True, True]}
    (row,) = bench.quality([record, {**record, "essential": None}])
    assert row["essential_recall"] == 2 / 3 and row["varr"] == 1.0


def test_varr_from_mask_counts_kept_positions(bench):
    visual_words = [  # reference CoT: "The red star is left of the red circle."
        {"index": 1, "word": "red", "type": "colour"},
        {"index": 2, "word": "star", "type": "shape"},
        {"index": 7, "word": "red", "type": "colour"},
        {"index": 8, "word": "circle", "type": "shape"},
    ]
    keep = [False, True, False, False, False, False, False, True, True]
    assert bench.varr_from_mask(visual_words, keep) == {"colour": (2, 2), "shape": (1, 2)}
    with pytest.raises(BadInput):
        bench.varr_from_mask(visual_words, keep[:5])
