"""The main job: its steps keyed to the settings that made them, and end to end, in its quick form, on the shipped
model."""

import json
import shutil
from contextlib import redirect_stdout
from dataclasses import replace
from io import StringIO

import pytest
from conftest import without_timing

from vskip.cli import main
from vskip.demo import DEFAULT, QUICK, STEPS_FILE, Steps, run_demo, smoke_note
from vskip.distill import DEFAULT_DISTILL
from vskip.models import TINY_DIR

needs_tiny = pytest.mark.skipif(not (TINY_DIR / "model.safetensors").is_file(), reason="vskip-tiny not trained")

KEYS = ("method", "ratio", "n", "accuracy", "cot_tokens_mean", "act_ratio", "latency_s_mean", "speedup", "varr",
        "hallucination_rate", "pope_f1", "pope_yes_ratio")


def pipeline(out, n: int = 1, m: int = 1) -> list[str]:
    """Three tiny steps as the demo chains them: `data/` (a folder) ← n, `a.jsonl` ← data/ and m, `b.jsonl` ← a.jsonl.
    Returns the steps it made."""
    steps, made = Steps(out), []
    if steps.todo("data/", {"n": n}, last="test.jsonl"):
        (out / "data").mkdir(parents=True)
        (out / "data" / "test.jsonl").write_text(f"{n}\n")
        made.append("data/")
    if steps.todo("a.jsonl", {"m": m}, ["data/"]):
        (out / "a.jsonl").write_text((out / "data" / "test.jsonl").read_text() + f"{m}\n")
        made.append("a.jsonl")
    if steps.todo("b.jsonl", {}, ["a.jsonl"]):
        (out / "b.jsonl").write_text((out / "a.jsonl").read_text())
        made.append("b.jsonl")
    return made


def test_each_step_is_made_again_when_a_setting_it_reads_or_an_input_changes(tmp_path, capsys):
    assert pipeline(tmp_path) == ["data/", "a.jsonl", "b.jsonl"]
    assert pipeline(tmp_path) == [] and capsys.readouterr().err == ""
    assert pipeline(tmp_path, m=2) == ["a.jsonl", "b.jsonl"]  # data/ does not read m
    assert capsys.readouterr().err.splitlines() == [
        "demo: a.jsonl was made with other settings (m 1 → 2); making it again",
        "demo: b.jsonl was made from other inputs (a.jsonl); making it again",
    ]
    assert pipeline(tmp_path, n=3, m=2) == ["data/", "a.jsonl", "b.jsonl"]
    said = capsys.readouterr().err.splitlines()
    assert said[0] == "demo: data/ was made with other settings (n 1 → 3); making it again"
    assert (tmp_path / "b.jsonl").read_text() == "3\n2\n"
    assert sorted(json.loads((tmp_path / STEPS_FILE).read_text())) == ["a.jsonl", "b.jsonl", "data/"]


def test_an_output_made_again_with_the_same_settings_makes_its_readers_again(tmp_path, capsys):
    pipeline(tmp_path)
    (tmp_path / "a.jsonl").unlink()
    assert pipeline(tmp_path) == ["a.jsonl", "b.jsonl"]
    assert capsys.readouterr().err == "demo: b.jsonl was made from other inputs (a.jsonl); making it again\n"


def test_an_interrupted_step_keeps_its_journal_and_one_made_otherwise_loses_it(tmp_path, capsys):
    assert Steps(tmp_path).todo("a.jsonl", {"m": 1})
    journal = tmp_path / "a.jsonl.partial"
    journal.write_text("the records done before the kill\n")
    assert Steps(tmp_path).todo("a.jsonl", {"m": 1}) and journal.is_file()  # resumed
    assert Steps(tmp_path).todo("a.jsonl", {"m": 2}) and not journal.exists()  # not mixed into another run
    assert capsys.readouterr().err == "demo: a.jsonl was made with other settings (m 1 → 2); making it again\n"


def test_an_output_with_no_record_is_made_again(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.jsonl").write_text("from an older vskip\n")
    assert pipeline(tmp_path) == ["data/", "a.jsonl", "b.jsonl"]
    assert capsys.readouterr().err == "demo: data/ has no record of the settings that made it; making it again\n"
    assert (tmp_path / "data" / "test.jsonl").read_text() == "1\n"


def test_a_run_whose_students_stop_in_their_warm_up_is_a_smoke_run():
    assert QUICK.distill_steps < DEFAULT_DISTILL.training.warmup_steps
    assert smoke_note(QUICK, DEFAULT_DISTILL, 24) == (
        "Smoke run: 24 training items, 3 steps per student — the figures below show the pipeline works, "
        "not what the method does.")
    assert smoke_note(DEFAULT, DEFAULT_DISTILL, 4000) is None


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """The directory of a `vskip demo --quick` run, and what it printed."""
    out = tmp_path_factory.mktemp("quick") / "demo"
    printed = StringIO()
    with redirect_stdout(printed):
        assert main(["demo", "--out", str(out), "--quick"]) == 0
    return out, printed.getvalue()


@pytest.mark.slow
@needs_tiny
def test_quick_demo_writes_every_artifact_and_resumes(quick_demo):
    out, printed = quick_demo
    assert str(out / "report.html") in printed and "| vskip | 0.5 |" in printed.replace("0.50", "0.5")
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    # Each student at γ 0.5 and asked to choose its own budget.
    students = ("text", "vskip", "vskip+dependency")
    assert [(r["method"], r["ratio"]) for r in rows] == [
        ("full", 1.0), ("direct", 1.0), *((method, ratio) for method in students for ratio in (0.5, "auto"))]
    assert all(key in row for row in rows for key in KEYS)
    # One latency pass timed every run beside `full`: its own speed-up is 1 by construction.
    timed = set(json.loads((out / "eval" / "latency.json").read_text()))
    assert timed == {"full", "direct", *(f"{method}@{ratio}" for method in students for ratio in ("0.5", "auto"))}
    assert rows[0]["speedup"] == 1.0 and all(row["speedup"] is not None for row in rows)
    # Two items timed: every speed-up says it stands on too few, in the results and in the tables.
    assert all(row["speedup_items"] == 2 and row["speedup_too_few"] for row in rows)
    assert (out / "results.md").read_text().count("| 2: too few |") == len(rows)
    for name in ("results.md", "pareto.png", "gamma.png", "latency.png", "report.html", "compressed.jsonl"):
        assert (out / name).stat().st_size > 0
    for method in students:
        assert (out / "adapters" / method / "adapter_model.safetensors").is_file()
    html = (out / "report.html").read_text()
    assert "<s" in html and "http://" not in html and "https://" not in html
    for task in ("count", "doc", "pope", "relate"):  # an example of every family, right or wrong
        assert f'<span class="muted">· {task}</span>' in html
    # Said at the top of every result: the figures of so small a run mean nothing of the method.
    smoke = "Smoke run: 24 training items, 3 steps per student"
    assert list(results)[0] == "smoke_run" and results["smoke_run"].startswith(smoke)
    assert (out / "results.md").read_text().splitlines()[2].startswith(f"**{smoke}")
    assert html.index(smoke) < html.index("<h2>Results</h2>")
    full = next(line for line in (out / "results.md").read_text().splitlines() if line.startswith("| full |"))
    assert full.split(" | ")[4] == "1.000"  # ActRatio of the uncompressed CoT, also on the plot
    # A second run finds every stage done and only rewrites the report.
    before = (out / "eval" / "vskip-0.5.json").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    assert (out / "eval" / "vskip-0.5.json").stat().st_mtime_ns == before


@pytest.mark.slow
@needs_tiny
def test_a_demo_run_over_a_quick_one_gives_what_it_gives_alone(quick_demo, tmp_path, capsys):
    config = replace(QUICK, n_distill=4, n_test=2, distill_steps=2, latency_items=1)
    over = tmp_path / "over"
    shutil.copytree(quick_demo[0], over)
    run_demo(over, config)
    said = capsys.readouterr().err
    made_again = [line.split()[1] for line in said.splitlines() if line.startswith("demo: ")]
    assert made_again == ["data/", "generated.jsonl", "scores.jsonl", "compressed.jsonl", "eval/full.json",
                          "eval/direct.json", "adapters/text/", "eval/text-0.5.json", "eval/text-auto.json",
                          "adapters/vskip/", "eval/vskip-0.5.json", "eval/vskip-auto.json",
                          "adapters/vskip+dependency/", "eval/vskip+dependency-0.5.json",
                          "eval/vskip+dependency-auto.json", "eval/latency.json"]
    assert "demo: data/ was made with other settings (n_distill 6 → 4, n_test 3 → 2); making it again" in said
    run_demo(tmp_path / "alone", config)
    results = [json.loads((tmp_path / run / "results.json").read_text()) for run in ("over", "alone")]
    assert without_timing(results[0]) == without_timing(results[1])
    assert results[0]["smoke_run"].startswith("Smoke run: 16 training items, 2 steps per student")
    over_files, alone_files = (sorted(p.relative_to(tmp_path / run) for p in (tmp_path / run).rglob("*"))
                               for run in ("over", "alone"))
    assert over_files == alone_files  # nothing of the quick run is left


@pytest.mark.slow
@needs_tiny
def test_a_demo_with_rounds_evaluates_the_first_rounds_student_beside_the_last(tmp_path):
    config = replace(QUICK, methods=("vskip",), n_distill=4, n_test=2, distill_steps=2, latency_items=1, rounds=1)
    run_demo(tmp_path / "demo", config)
    rows = json.loads((tmp_path / "demo" / "results.json").read_text())["rows"]
    assert [(row["method"], row["ratio"]) for row in rows] == [
        ("full", 1.0), ("direct", 1.0), ("vskip", 0.5), ("vskip", "auto"), ("vskip-round0", 0.5),
        ("vskip-round0", "auto")]
    student = tmp_path / "demo" / "adapters" / "vskip"
    info = json.loads((student / "vskip_adapter.json").read_text())
    assert info["round"] == 1 and (student / "rounds" / "0" / "adapter_model.safetensors").is_file()
