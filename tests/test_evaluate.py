import importlib
import json
import re
import shutil
import statistics

import pytest
from conftest import without_timing

from vskip.cli import main
from vskip.errors import BadInput
from vskip.evaluate import (
    EvalSettings,
    attach_latency,
    check_baseline,
    evaluate,
    ratio_warning,
    read_baseline,
    summary_line,
)
from vskip.models import load_model
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
                     baseline_model=tiny_random, progress=False)
    assert json.loads((tmp_path / "short.json").read_text())["accuracy"] == short["accuracy"]
    for block in [short, *short["tasks"].values()]:
        assert all(key in block for key in KEYS)
    assert set(short["tasks"]) == {"pope", "count", "doc"}
    assert short["n"] == 3 and full["speedup"] is None  # timed alone: no speed-up
    assert full["precision"] == "float32"
    items = [json.loads(line) for line in (tmp_path / "short.json.items.jsonl").read_text().splitlines()]
    assert [item["id"] for item in items] == [record["id"] for record in records]
    assert sum(item["latency_s"] is not None for item in items) == 3
    assert all(item["latency_s_baseline"] is not None for item in items)  # the baseline timed beside each
    assert "anls" in items[2] and "anls" not in items[0]
    # ActRatio is Σ tokens / Σ tokens of the uncompressed run on the same items.
    full_tokens = sum(full["cot_tokens_by_id"].values())
    if full_tokens:
        assert abs(short["act_ratio"] - sum(i["cot_tokens"] for i in items) / full_tokens) < 1e-9
    else:
        assert short["act_ratio"] is None
    # The baseline (5 new tokens) timed beside this run (2), on the same items.
    baseline_times = [item["latency_s_baseline"] for item in items]
    assert short["speedup"] == pytest.approx(statistics.median(baseline_times) / short["latency_s_median"])
    assert short["speedup_low"] <= short["speedup"] <= short["speedup_high"]
    assert all(block["speedup"] is not None for block in short["tasks"].values())  # each family by its own items
    assert short["max_new_tokens"] == 2 and full["max_new_tokens"] == 5


def test_latencies_timed_elsewhere_are_attached_to_a_run(tiny_random, image_dataset, tmp_path):
    records = read_records(image_dataset)
    settings = EvalSettings(batch_size=3, latency_items=0, max_new_tokens=3)
    untimed = evaluate(tiny_random, records, image_dataset.parent, tmp_path / "run.json", settings=settings,
                       progress=False)
    assert untimed["latency_s_mean"] is None and untimed["speedup"] is None
    timed = attach_latency(tmp_path / "run.json", {"r0": 1.0, "r1": 3.0}, {"r0": 4.0, "r1": 6.0})
    assert timed["speedup"] == 2.5 and timed["latency_s_median"] == 2.0
    assert json.loads((tmp_path / "run.json").read_text()) == timed
    assert {key: timed[key] for key in ("accuracy", "model", "throughput_items_per_s")} == {
        key: untimed[key] for key in ("accuracy", "model", "throughput_items_per_s")}
    items = [json.loads(line) for line in (tmp_path / "run.json.items.jsonl").read_text().splitlines()]
    assert [item["latency_s"] for item in items] == [1.0, 3.0, None]


def test_the_summary_line_names_every_headline_figure_measured_or_not():
    results = {"accuracy": 0.5, "cot_tokens_mean": 21.04, "act_ratio": 0.512, "latency_s_median": 0.3012,
               "speedup": 15.17, "speedup_low": 0.92, "speedup_high": 32.58, "speedup_items": 2,
               "speedup_too_few": True}
    assert summary_line(results) == ("accuracy 0.500, CoT tokens 21.0, ActRatio 0.512, latency 0.301 s, "
                                     "speed-up 15.17× (0.92–32.58; 2 items: too few)")
    alone = {**results, "act_ratio": None, "speedup": None, "latency_s_median": None}
    assert summary_line(alone) == "accuracy 0.500, CoT tokens 21.0, ActRatio –, latency –, speed-up –"


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


def test_the_cli_times_the_baseline_s_own_model_beside_the_run(saved_tiny, image_dataset, tmp_path, capsys):
    data = ["--model", str(saved_tiny), "--data", str(image_dataset), "--max-new-tokens", "3", "--latency-items", "2"]
    assert main(["evaluate", *data, "--out", str(tmp_path / "full.json")]) == 0
    assert main(["evaluate", *data, "--mode", "direct", "--baseline", str(tmp_path / "full.json"),
                 "--out", str(tmp_path / "direct.json")]) == 0
    printed = capsys.readouterr()
    assert "no speed-up" not in printed.err
    assert json.loads((tmp_path / "direct.json").read_text())["speedup"] is not None
    # The summary line names every headline figure, the speed-up with the (too few) items it stands on.
    assert re.search(r"^accuracy \d\.\d{3}, CoT tokens \d+\.\d, ActRatio (\d\.\d{3}|–), latency \d\.\d{3} s, "
                     r"speed-up \d+\.\d\d× \(\d+\.\d\d–\d+\.\d\d; 2 items: too few\); wrote .*direct\.json$",
                     printed.out, re.MULTILINE)
    moved = {**json.loads((tmp_path / "full.json").read_text()), "model": str(tmp_path / "gone")}
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    assert main(["evaluate", *data, "--mode", "direct", "--baseline", str(tmp_path / "moved.json"),
                 "--latency-items", "0", "--out", str(tmp_path / "alone.json")]) == 0  # untimed: its lengths suffice
    alone = json.loads((tmp_path / "alone.json").read_text())
    assert alone["speedup"] is None and alone["latency_s_median"] is None and alone["n"] == 3


def test_results_recorded_elsewhere_are_a_baseline_from_anywhere(saved_tiny, image_dataset, tmp_path, monkeypatch,
                                                                 capsys):
    """The results record their model and adapter relative to themselves: read from another directory, the
    baseline's own model and adapter load and are timed beside the run."""
    from vskip.distill import DEFAULT_DISTILL, lora_model

    lora_model(load_model(str(saved_tiny)), DEFAULT_DISTILL.lora).save_pretrained(tmp_path / "adapter")
    shutil.copytree(saved_tiny, tmp_path / "model")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    data = ["--data", str(image_dataset), "--max-new-tokens", "3", "--latency-items", "2"]
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--model", "model", "--adapter", "adapter", *data, "--out", "a/full.json"]) == 0
    full = json.loads((tmp_path / "a" / "full.json").read_text())
    assert (full["model"], full["adapter"]) == ("../model", "../adapter")
    monkeypatch.chdir(tmp_path / "b")
    assert main(["evaluate", "--model", str(saved_tiny), *data, "--mode", "direct", "--baseline", "../a/full.json",
                 "--out", "direct.json"]) == 0
    assert "no speed-up" not in capsys.readouterr().err
    assert json.loads((tmp_path / "b" / "direct.json").read_text())["speedup"] is not None
    # A baseline to time whose model or adapter is gone: one line, exit 2, before any work.
    for gone in ("model", "adapter"):
        shutil.move(tmp_path / gone, tmp_path / "away")
        assert main(["evaluate", "--model", str(saved_tiny), *data, "--baseline", "../a/full.json",
                     "--out", "late.json"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vskip: error: ../a/full.json: its model cannot be timed")
        assert f"../a/../{gone}" in lines[0] and not (tmp_path / "b" / "late.json").exists()
        shutil.move(tmp_path / "away", tmp_path / gone)


def test_an_evaluation_stopped_in_its_latency_pass_resumes_with_its_items_done(tiny_random, image_dataset, tmp_path,
                                                                                monkeypatch):
    module = importlib.import_module("vskip.evaluate")
    records, base, runs = read_records(image_dataset), image_dataset.parent, tmp_path / "runs"
    settings = EvalSettings(batch_size=2, latency_items=2, max_new_tokens=5)
    reference = evaluate(tiny_random, records, base, runs / "reference.json", settings=settings, progress=False)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "timed_generation", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(tiny_random, records, base, runs / "out.json", settings=settings, progress=False)
    assert sorted(path.name for path in runs.iterdir()) == [
        "out.json.items.jsonl.partial", "reference.json", "reference.json.items.jsonl"]
    monkeypatch.undo()

    def generated_again(batch):
        raise AssertionError(f"generated again: {[record['id'] for record in batch]}")

    monkeypatch.setattr(module, "batch_generator", lambda *args, **kwargs: generated_again)
    resumed = evaluate(tiny_random, records, base, runs / "out.json", settings=settings, progress=False)
    assert without_timing(resumed) == without_timing(reference)
    assert sorted(path.name for path in runs.iterdir()) == [
        "out.json", "out.json.items.jsonl", "reference.json", "reference.json.items.jsonl"]


def test_auto_asked_of_a_student_never_taught_it_is_warned_of(tmp_path):
    (tmp_path / "vskip_adapter.json").write_text(json.dumps({"ratios": [0.5, 1.0]}))
    assert "trained on γ 0.5, 1.0 only" in ratio_warning("vskip-tiny", tmp_path, "auto")
    (tmp_path / "vskip_adapter.json").write_text(json.dumps({"ratios": [0.5, "auto", 1.0]}))
    assert ratio_warning("vskip-tiny", tmp_path, "auto") is None and ratio_warning("vskip-tiny", tmp_path, 0.5) is None
