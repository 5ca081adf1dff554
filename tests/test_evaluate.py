import json

import pytest

from vskip.errors import BadInput
from vskip.evaluate import EvalSettings, check_baseline, evaluate, ratio_warning, read_baseline
from vskip.records import read_records

KEYS = ("n", "accuracy", "cot_tokens_mean", "act_ratio", "latency_s_mean", "speedup", "varr",
        "hallucination_rate", "pope_f1", "pope_yes_ratio")


def test_results_have_every_figure_overall_and_per_task(tiny_random, image_dataset, tmp_path):
    records = read_records(image_dataset)
    for index, record in enumerate(records):
        record["task"] = ["pope", "count", "doc"][index]
    settings = EvalSettings(batch_size=2, latency_items=2, max_new_tokens=5)
    full = evaluate(tiny_random, records, image_dataset.parent, tmp_path / "full.json", settings=settings,
                    progress=False)
    assert full["adapter"] is None and full["ratio"] == 1.0
    short = evaluate(tiny_random, records, image_dataset.parent, tmp_path / "short.json",
                     settings=EvalSettings(batch_size=3, latency_items=3, max_new_tokens=2), baseline=full,
                     progress=False)
    assert json.loads((tmp_path / "short.json").read_text())["accuracy"] == short["accuracy"]
    for block in [short, *short["tasks"].values()]:
        assert all(key in block for key in KEYS)
    assert set(short["tasks"]) == {"pope", "count", "doc"}
    assert short["n"] == 3 and full["speedup"] == 1.0
    assert full["precision"] == "float32"
    items = [json.loads(line) for line in (tmp_path / "short.json.items.jsonl").read_text().splitlines()]
    assert [item["id"] for item in items] == [record["id"] for record in records]
    assert sum(item["latency_s"] is not None for item in items) == 3
    assert "anls" in items[2] and "anls" not in items[0]
    # ActRatio is Σ tokens / Σ tokens of the uncompressed run on the same items.
    full_tokens = sum(full["cot_tokens_by_id"].values())
    if full_tokens:
        assert abs(short["act_ratio"] - sum(i["cot_tokens"] for i in items) / full_tokens) < 1e-9
    else:
        assert short["act_ratio"] is None
    assert short["speedup"] == full["latency_s_mean"] / short["latency_s_mean"]


def test_a_baseline_must_be_results_of_the_same_items(image_dataset, tmp_path):
    records = read_records(image_dataset)
    results = {"cot_tokens_by_id": {record["id"]: 3 for record in records}}
    assert check_baseline(results, records[:2]) is results  # a subset of the baseline's items is fine
    with pytest.raises(BadInput, match=r"measured on other items \(1 of the 3 ids .* e.g. 'r2'\)"):
        check_baseline({"cot_tokens_by_id": {"r0": 1, "r1": 1}}, records)
    with pytest.raises(BadInput, match="not the results of `vskip evaluate`"):
        check_baseline([1, 2], records)
    files = {"missing.json": None, "broken.json": "{", "records.jsonl": '{"id": "r0"}\n{"id": "r1"}\n',
             "other.json": json.dumps({"accuracy": 1})}
    expected = {"missing.json": "no such file", "broken.json": "not JSON", "records.jsonl": "a JSONL file of records",
                "other.json": "not the results"}
    for name, text in files.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(BadInput, match=expected[name]):
            read_baseline(tmp_path / name, records)
    (tmp_path / "good.json").write_text(json.dumps(results))
    assert read_baseline(tmp_path / "good.json", records) == results


def test_a_ratio_the_model_never_learned_is_warned_of(tmp_path):
    (tmp_path / "vskip_adapter.json").write_text(json.dumps({"ratios": [0.5, 0.7, 1.0]}))
    for model, adapter in (("vskip-tiny", tmp_path), (str(tmp_path), None)):  # an adapter, or a model distilled fully
        assert ratio_warning(model, adapter, 0.5) is None and ratio_warning(model, adapter, None) is None
        assert "trained on γ 0.5, 0.7, 1.0 only" in ratio_warning(model, adapter, 0.6)
    assert "a model that was not distilled" in ratio_warning("vskip-tiny", None, 0.5)
    assert ratio_warning("vskip-tiny", None, 1.0) is None
