import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import without_timing
from PIL import Image

from vskip.errors import BadInput
from vskip.records import iter_jsonl, read_records
from vskip.stage import (
    SETTINGS_KEY,
    check_output,
    partial_path,
    read_journal,
    remove_journals,
    run_stage,
    settings_change,
    side_path,
)

RECORDS = [{"id": f"r{i}", "x": i} for i in range(10)]
# The first line of a journal written by a run with no settings.
HEADER = json.dumps({SETTINGS_KEY: {}}).encode() + b"\n"


class Squares:
    """A stage that squares `x` and remembers which ids it was given."""

    def __init__(self, fail_on: str | None = None):
        self.seen: list[str] = []
        self.fail_on = fail_on

    def __call__(self, batch):
        if any(record["id"] == self.fail_on for record in batch):
            raise RuntimeError("stage failed")
        self.seen += [record["id"] for record in batch]
        return [{**record, "y": record["x"] ** 2} for record in batch]


def expected():
    return [{**record, "y": record["x"] ** 2} for record in RECORDS]


def test_writes_in_input_order_and_removes_the_journal(tmp_path):
    out = tmp_path / "out.jsonl"
    assert run_stage(RECORDS, Squares(), out, batch_size=3, progress=False) == expected()
    assert list(iter_jsonl(out)) == expected()
    assert list(tmp_path.iterdir()) == [out]


def test_a_failed_run_keeps_the_earlier_output_and_the_rerun_does_only_the_rest(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "earlier"}\n')
    with pytest.raises(RuntimeError):
        run_stage(RECORDS, Squares(fail_on="r7"), out, batch_size=3, progress=False)
    assert out.read_text() == '{"id": "earlier"}\n'
    assert [r["id"] for r in read_journal(partial_path(out))] == [f"r{i}" for i in range(6)]
    stage = Squares()
    assert run_stage(RECORDS, stage, out, batch_size=3, progress=False) == expected()
    assert stage.seen == [f"r{i}" for i in range(6, 10)]
    assert not partial_path(out).exists()


@pytest.mark.parametrize("tail", [b'{"id": "r3", "x"', b'{"id": "r3", "x": 3, "y": 9}', b"\xff\xfe", b"\n"])
def test_a_line_cut_short_by_a_kill_is_dropped_and_redone(tmp_path, tail):
    out = tmp_path / "out.jsonl"
    journal = partial_path(out)
    done = b"".join(json.dumps(r).encode() + b"\n" for r in expected()[:3])
    journal.write_bytes(HEADER + done + tail)
    stage = Squares()
    assert run_stage(RECORDS, stage, out, batch_size=4, progress=False) == expected()
    assert stage.seen == [f"r{i}" for i in range(3, 10)]
    lines = out.read_text().splitlines()
    assert len(lines) == len(set(lines)) == len(RECORDS)


def test_journals_of_a_run_with_another_process_count_are_reused(tmp_path):
    out = tmp_path / "out.jsonl"
    for rank in range(2):
        shard = expected()[rank::2][:2]
        partial_path(out, rank, 2).write_bytes(HEADER + "".join(json.dumps(r) + "\n" for r in shard).encode()
                                               + b'{"id": "r9", ')
    stage = Squares()
    assert run_stage(RECORDS, stage, out, batch_size=4, progress=False) == expected()
    assert stage.seen == ["r4", "r5", "r6", "r7", "r8", "r9"]
    assert list(tmp_path.iterdir()) == [out]


def test_a_journal_of_other_settings_is_not_resumed(tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        run_stage(RECORDS, Squares(fail_on="r7"), out, settings={"model": "a", "ratio": 0.5}, batch_size=3,
                  progress=False)
    assert capsys.readouterr().err == ""
    stage = Squares()
    assert run_stage(RECORDS, stage, out, settings={"model": "a", "ratio": 0.7}, batch_size=3,
                     progress=False) == expected()
    assert stage.seen == [record["id"] for record in RECORDS]  # nothing of the γ 0.5 run was reused
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"vskip: {partial_path(out)} comes from a run with other settings (ratio 0.5 → 0.7); "
                   "starting afresh"]
    assert list(tmp_path.iterdir()) == [out]


def test_an_empty_journal_is_written_on_without_a_word(tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    partial_path(out).touch()  # killed after opening its journal, before the first batch reached it
    assert run_stage(RECORDS, Squares(), out, settings={"model": "a"}, batch_size=3, progress=False) == expected()
    assert capsys.readouterr().err == "" and list(tmp_path.iterdir()) == [out]


def test_a_journal_of_the_same_settings_is_resumed_whatever_their_order(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        run_stage(RECORDS, Squares(fail_on="r7"), out, settings={"a": (1, 2), "b": None}, batch_size=3,
                  progress=False)
    stage = Squares()
    run_stage(RECORDS, stage, out, settings={"b": None, "a": [1, 2]}, batch_size=3, progress=False)
    assert stage.seen == ["r6", "r7", "r8", "r9"]


def test_a_kept_journal_holds_the_results_until_the_caller_removes_it(tmp_path):
    out = tmp_path / "out.jsonl"
    assert run_stage(RECORDS, Squares(), out, batch_size=3, progress=False, keep_journal=True) == expected()
    assert list(tmp_path.iterdir()) == [partial_path(out)] and read_journal(partial_path(out)) == expected()
    stage = Squares()  # as the rerun of a command interrupted after the stage: every record is done
    assert run_stage(RECORDS, stage, out, batch_size=3, progress=False, keep_journal=True) == expected()
    assert stage.seen == []
    remove_journals(out)
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_image_roots_that_resolve_from_their_own_directory(tmp_path):
    data = tmp_path / "data"
    records = [{"id": "a", "image": "images/a.png"}, {"id": "b", "image": "images/b.png", "image_root": "sub"},
               {"id": "c"}]
    results = run_stage(records, lambda batch: batch, tmp_path / "runs" / "deep" / "out.jsonl", base_dir=data,
                        progress=False)
    assert [r.get("image_root") for r in results] == ["../../data", "../../data/sub", None]
    assert list(iter_jsonl(tmp_path / "runs" / "deep" / "out.jsonl")) == results


def test_side_files_keep_the_whole_output_name():
    names = {side_path(Path(f"runs/eval/vskip-{ratio}"), ".items.jsonl").name for ratio in ("0.5", "0.7")}
    assert names == {"vskip-0.5.items.jsonl", "vskip-0.7.items.jsonl"}
    assert side_path("runs/full.json", ".items.jsonl") == Path("runs/full.json.items.jsonl")
    assert partial_path(Path("runs/vskip-0.5")) == Path("runs/vskip-0.5.partial")


def test_an_output_that_cannot_be_written_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    assert check_output(tmp_path / "new" / "deeper" / "out.jsonl") == tmp_path / "new" / "deeper" / "out.jsonl"
    assert check_output(tmp_path / "folder", directory=True) == tmp_path / "folder"
    with pytest.raises(BadInput, match="is a directory; --out names a file"):
        check_output(tmp_path / "folder")
    with pytest.raises(BadInput, match="is a file; --out names a directory"):
        check_output(tmp_path / "file", directory=True)
    with pytest.raises(BadInput, match=r"cannot be written \(.*file is not a directory\)"):
        check_output(tmp_path / "file" / "out.jsonl")
    assert not (tmp_path / "new").exists()  # checking touches nothing


def test_a_batch_size_below_one_is_refused(tmp_path):
    with pytest.raises(BadInput, match="batch size 0"):
        run_stage(RECORDS, Squares(), tmp_path / "out.jsonl", batch_size=0, progress=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# The CLI, killed part-way and rerun.


@pytest.fixture(scope="module")
def long_dataset(tmp_path_factory):
    """Enough records for `vskip generate` on the tiny model to take a few seconds."""
    root = tmp_path_factory.mktemp("long")
    (root / "images").mkdir()
    colours = ["red", "blue", "green", "yellow", "white", "black", "purple"]
    records = []
    for i in range(48):
        Image.new("RGB", (112, 112), colours[i % 7]).save(root / "images" / f"{i}.png")
        records.append({"id": f"q{i}", "image": f"images/{i}.png", "question": "Is there a red star?", "answer": "no"})
    path = root / "data.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


@pytest.mark.slow
def test_generate_killed_and_rerun_loses_and_repeats_nothing(tiny_random, saved_tiny, long_dataset, tmp_path):
    from vskip.generate import generate

    settings = dict(batch_size=1, max_new_tokens=24)
    reference = generate(tiny_random, read_records(long_dataset), long_dataset.parent, tmp_path / "reference.jsonl",
                         progress=False, **settings)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for number, signum in enumerate([signal.SIGTERM, signal.SIGINT]):
        out = tmp_path / f"out{number}.jsonl"
        command = [sys.executable, "-m", "vskip.cli", "generate", "--model", str(saved_tiny), "--data",
                   str(long_dataset), "--out", str(out), "--batch-size", "1", "--max-new-tokens", "24"]
        # A job started in the background (`make test &`, nohup) inherits SIGINT ignored, and Python then
        # installs no KeyboardInterrupt handler: give the child the default disposition, as a terminal would.
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
        journal = partial_path(out)
        deadline = time.monotonic() + 120
        while not (journal.is_file() and len(read_journal(journal)) >= 3) and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 128 + signum, err
        assert err.strip().splitlines()[-1] == "vskip: interrupted; rerun the same command to resume"
        done = read_journal(journal)
        assert 3 <= len(done) < len(reference) and not out.exists()
        with journal.open("ab") as handle:  # as if killed in the middle of writing the next line
            handle.write(b'{"id": "q40", "prediction": "ye')
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        final = list(iter_jsonl(out))
        assert without_timing(final) == without_timing(reference)
        assert len({record["id"] for record in final}) == len(final)
        assert not list(Path(tmp_path).glob("*.partial*")) and not list(Path(tmp_path).glob("*.tmp*"))


def test_a_settings_change_names_nested_settings_by_their_path():
    old = {"model": "a", "recipe": {"training": {"steps": 3, "seed": 0}}}
    new = {"model": "a", "recipe": {"training": {"steps": 1500, "seed": 0}}, "dtype": "auto"}
    assert settings_change(old, new) == "dtype None → 'auto', recipe.training.steps 3 → 1500"
