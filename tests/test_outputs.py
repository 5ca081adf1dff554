"""An output never replaces an input or another run's work: each command as a user types it, in a workspace of
outputs the real commands made (tiny sizes, a tiny random model), with every byte checked unchanged after a
refusal."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import shutil
from pathlib import Path

import pytest

from vskip.cli import build_parser, main
from vskip.outputs import made_path, maker, refusal
from vskip.records import read_records
from vskip.stage import read_journal

AGAIN = "choose another --out, or pass --overwrite to replace it"


def digest(root: Path) -> dict[str, str]:
    """Every file under `root` (or `root` itself), by its path: the hash of its bytes."""
    files = [root] if root.is_file() else sorted(path for path in root.rglob("*") if path.is_file())
    return {str(path.relative_to(root.parent)): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def run(argv: list[str], capsys) -> tuple[int, list[str]]:
    code = main(argv)
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]


def refused(argv: list[str], workspace: Path, capsys, expected: str) -> str:
    """Run `argv`: exit code 2, one line with `expected`, not a byte of `workspace` changed, nothing added."""
    before = digest(workspace)
    code, lines = run(argv, capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("vskip: error: "), lines
    assert expected in lines[0], lines[0]
    assert digest(workspace) == before
    return lines[0]


@pytest.fixture(scope="module")
def made(saved_tiny, tmp_path_factory):
    """A workspace where the README's pipeline ran, each command as typed there (tiny sizes, the tiny random model
    as the teacher): data/synth, runs/generated.jsonl, runs/scores.jsonl (of synth's reference CoTs: a random
    model's CoTs have no answer), runs/compressed.jsonl, runs/adapters/vskip, runs/merged/vskip, runs/eval/full.json.
    Tests that only see refusals share it; the others work in a copy of it."""
    root = tmp_path_factory.mktemp("workspace")
    model = ["--model", str(saved_tiny)]
    commands = [
        ["synth", "--out", "data/synth", "--n-train", "1", "--n-val", "0", "--n-test", "1"],
        ["generate", *model, "--data", "data/synth/train.jsonl", "--out", "runs/generated.jsonl",
         "--max-new-tokens", "4"],
        ["score", *model, "--data", "data/synth/train.jsonl", "--out", "runs/scores.jsonl"],
        ["compress", "--data", "runs/scores.jsonl", "--methods", "vskip,text", "--ratios", "0.5",
         "--out", "runs/compressed.jsonl"],
        ["distill", *model, "--data", "runs/compressed.jsonl", "--method", "vskip", "--out", "runs/adapters/vskip",
         "--steps", "1", "--no-auto"],
        ["merge", "runs/adapters/vskip", "--out", "runs/merged/vskip"],
        ["evaluate", *model, "--data", "data/synth/test.jsonl", "--out", "runs/eval/full.json", "--latency-items", "0",
         "--max-new-tokens", "4"],
    ]
    with contextlib.chdir(root):
        for argv in commands:
            assert main(argv) == 0, argv
    return root


@pytest.fixture
def workspace(made, tmp_path, monkeypatch):
    """`made`, read-only by intent, as the current directory."""
    monkeypatch.chdir(made)
    return made


@pytest.fixture
def own(made, tmp_path, monkeypatch):
    """A copy of `made` to change, as the current directory. The records name absolute paths of `made`'s data, so
    the copy's outputs read as made from other data until a test makes them again."""
    shutil.copytree(made, tmp_path / "ws")
    monkeypatch.chdir(tmp_path / "ws")
    return tmp_path / "ws"


# (argv, expected): an --out that is one of the command's inputs, or (a directory) holds one.
INPUTS = [
    (["evaluate", "--data", "data/synth/test.jsonl", "--out", "data/synth/test.jsonl", "--latency-items", "0"],
     "data/synth/test.jsonl: is an input of this command (its data)"),
    (["score", "--data", "runs/generated.jsonl", "--out", "runs/generated.jsonl"],
     "runs/generated.jsonl: is an input of this command (its data)"),
    (["generate", "--data", "runs/generated.jsonl", "--out", "runs/generated.jsonl"], "is an input"),
    (["compress", "--data", "runs/scores.jsonl", "--out", "runs/scores.jsonl"], "is an input"),
    (["evaluate", "--data", "data/synth/test.jsonl", "--baseline", "runs/eval/full.json", "--out",
      "runs/eval/full.json"], "runs/eval/full.json: is an input of this command (its baseline)"),
    (["evaluate", "--data", "runs/eval/full.json.items.jsonl", "--out", "runs/eval/full.json"],
     "runs/eval/full.json: would rewrite"),
    (["distill", "--data", "runs/compressed.jsonl", "--out", "runs"], "runs: holds"),
    (["distill", "--data", "runs/compressed.jsonl", "--model", "runs/merged/vskip", "--out", "runs/merged/vskip"],
     "is an input of this command (its model)"),
    (["tiny", "train", "--data", "data/synth", "--out", "data"], "data: holds"),
    (["tiny", "train", "--data", "data/synth", "--init", "runs/merged/vskip", "--out", "runs/merged"],
     "runs/merged: holds"),
    (["merge", "runs/adapters/vskip", "--out", "runs/adapters/vskip"], "is an input of this command (its adapter)"),
    (["merge", "runs/adapters/vskip", "--out", "runs/adapters"], "runs/adapters: holds"),
    (["demo", "--model", "runs/merged/vskip", "--out", "runs"], "runs: holds"),
]


@pytest.mark.parametrize(("argv", "expected"), INPUTS, ids=[" ".join(case[0][:2]) for case in INPUTS])
def test_an_output_that_is_an_input_is_refused_even_with_overwrite(argv, expected, workspace, capsys):
    refused(argv, workspace, capsys, expected)
    refused([*argv, "--overwrite"], workspace, capsys, expected)


# (argv, expected) run in `made`: an output that another command, or this one with other settings, made.
MADE_OTHERWISE = [
    (["generate", "--model", "{model}", "--data", "data/synth/test.jsonl", "--out", "runs/generated.jsonl",
      "--max-new-tokens", "4"],
     "runs/generated.jsonl: made by `vskip generate` with other settings (data '{root}/data/synth/train.jsonl' → "
     "'{root}/data/synth/test.jsonl')"),
    (["score", "--data", "runs/generated.jsonl", "--out", "runs/compressed.jsonl"],
     "runs/compressed.jsonl: made by `vskip compress`, not by `vskip score`"),
    (["compress", "--data", "runs/scores.jsonl", "--methods", "vskip,text", "--ratios", "0.7", "--out",
      "runs/compressed.jsonl"], "made by `vskip compress` with other settings (ratios [0.5] → [0.7])"),
    (["distill", "--model", "{model}", "--data", "runs/compressed.jsonl", "--method", "text", "--out",
      "runs/adapters/vskip", "--steps", "1", "--no-auto"],
     "runs/adapters/vskip: made by `vskip distill` with other settings (method 'vskip' → 'text')"),
    (["merge", "runs/adapters/vskip", "--out", "runs/merged/vskip", "--dtype", "bfloat16"],
     "made by `vskip merge` with other settings (dtype 'auto' → 'bfloat16')"),
    (["evaluate", "--model", "{model}", "--data", "data/synth/test.jsonl", "--mode", "direct", "--out",
      "runs/eval/full.json", "--latency-items", "0", "--max-new-tokens", "4"],
     "runs/eval/full.json: made by `vskip evaluate` with other settings (mode 'cot' → 'direct')"),
    (["synth", "--out", "data/synth", "--n-train", "1", "--n-val", "0", "--n-test", "1", "--seed", "1"],
     "data/synth: made by `vskip synth` with other settings (seed 0 → 1)"),
    (["tiny", "train", "--data", "data/synth", "--out", "runs/adapters/vskip"],
     "runs/adapters/vskip: made by `vskip distill`, not by `vskip tiny train`"),
    (["demo", "--out", "runs", "--quick"], "runs: holds files that no `vskip demo` made (no demo_steps.json)"),
]


@pytest.mark.parametrize(("argv", "expected"), MADE_OTHERWISE, ids=[case[0][0] for case in MADE_OTHERWISE])
def test_an_output_made_otherwise_is_refused_naming_what_made_it(argv, expected, workspace, saved_tiny, capsys):
    fill = {"root": str(workspace), "model": str(saved_tiny)}
    argv = [part.format(**fill) for part in argv]
    message = refused(argv, workspace, capsys, expected.format(**fill))
    if "demo" not in argv:
        assert message.endswith(AGAIN)


def test_a_file_no_vskip_command_made_is_refused(workspace, tmp_path, capsys):
    mine = tmp_path / "notes.jsonl"
    mine.write_text('{"id": "mine"}\n')
    refused(["compress", "--data", "runs/scores.jsonl", "--out", str(mine)], tmp_path, capsys,
            f"{mine}: exists, with no record that vskip made it (no notes.jsonl.made.json); {AGAIN}")
    (tmp_path / "adapter").mkdir()
    shutil.copy(workspace / "runs" / "adapters" / "vskip" / "vskip_adapter.json", tmp_path / "adapter")
    refused(["distill", "--data", "runs/compressed.jsonl", "--out", str(tmp_path / "adapter")], tmp_path, capsys,
            "adapter: holds a student of method 'vskip' (its vskip_adapter.json), with no record that vskip made it")


def test_the_same_command_redoes_its_output_and_overwrite_replaces_another(own, saved_tiny, capsys):
    generate = ["generate", "--model", str(saved_tiny), "--out", "runs/generated.jsonl", "--max-new-tokens", "4"]
    train = [*generate, "--data", "data/synth/train.jsonl"]
    test = [*generate, "--data", "data/synth/test.jsonl"]
    # The copy's output reads as made from `made`'s data: another run's, replaced only when asked.
    refused(train, own, capsys, "made by `vskip generate` with other settings (data ")
    assert run([*train, "--overwrite"], capsys)[0] == 0
    assert run([*train, "--batch-size", "1"], capsys)[0] == 0  # the same settings, paced otherwise
    refused(test, own, capsys, "data/synth/train.jsonl' → ")
    assert run([*test, "--overwrite"], capsys)[0] == 0
    assert [r["id"] for r in read_records("runs/generated.jsonl")] == [r["id"] for r in read_records(
        "data/synth/test.jsonl")]
    assert json.loads(made_path("runs/generated.jsonl").read_text())["settings"]["data"] == str(
        own / "data" / "synth" / "test.jsonl")


def test_an_interrupted_run_s_journal_is_claimed_and_resumed(own, saved_tiny, capsys, monkeypatch):
    argv = ["generate", "--model", str(saved_tiny), "--data", "data/synth/test.jsonl", "--out", "runs/new.jsonl",
            "--max-new-tokens", "4", "--batch-size", "1"]
    module = importlib.import_module("vskip.generate")  # `vskip.generate` is the function the package exports
    batch = module.generate_batch
    calls, stop_at = [], [2]

    def interrupted(*args, **kwargs):  # Ctrl-C in the second batch
        calls.append(1)
        if len(calls) == stop_at[0]:
            raise KeyboardInterrupt
        return batch(*args, **kwargs)

    monkeypatch.setattr(module, "generate_batch", interrupted)
    assert main(argv) == 130 and not Path("runs/new.jsonl").exists()
    assert capsys.readouterr().err.endswith("vskip: interrupted; rerun the same command to resume\n")
    assert len(read_journal(Path("runs/new.jsonl.partial"))) == 1
    refused([*argv[:-2], "--mode", "direct"], own, capsys,
            f"runs/new.jsonl: made by `vskip generate` with other settings (mode 'cot' → 'direct'); {AGAIN}")
    calls.clear()
    stop_at[0] = 0
    assert main(argv) == 0 and len(calls) == 3  # the four records: one from the journal, three generated
    assert len(read_records("runs/new.jsonl")) == 4


def test_a_refused_command_leaves_the_record_as_it_found_it(own, capsys):
    refused(["compress", "--data", "runs/none.jsonl", "--out", "runs/new.jsonl"], own, capsys, "no such file")
    assert not made_path("runs/new.jsonl").exists()
    record = made_path("runs/compressed.jsonl").read_bytes()
    code, lines = run(["compress", "--data", "runs/none.jsonl", "--out", "runs/compressed.jsonl", "--overwrite"],
                      capsys)
    assert code == 2 and made_path("runs/compressed.jsonl").read_bytes() == record


def test_the_demo_works_in_its_own_directory_or_where_asked(tmp_path, capsys, monkeypatch):
    import vskip.demo

    def run_demo(out, config):
        (Path(out) / vskip.demo.STEPS_FILE).write_text("{}")
        (Path(out) / "results.md").write_text("| results |")
        return Path(out) / "report.html"

    monkeypatch.setattr(vskip.demo, "run_demo", run_demo)
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "notes.txt").write_text("mine")
    refused(["demo", "--out", str(tmp_path / "demo"), "--quick"], tmp_path, capsys, "no `vskip demo` made")
    assert run(["demo", "--out", str(tmp_path / "demo"), "--quick", "--overwrite"], capsys)[0] == 0
    assert run(["demo", "--out", str(tmp_path / "demo")], capsys)[0] == 0  # its own: Steps makes what changed


def test_data_import_claims_the_split_it_writes(tmp_path, capsys, monkeypatch):
    import datasets
    from test_datasets import docvqa_source

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    source = str(docvqa_source(tmp_path / "src"))
    argv = ["data", "import", source, "--out", str(tmp_path / "docvqa")]
    assert run([*argv, "--limit", "2"], capsys)[0] == 0
    refused(argv, tmp_path / "docvqa", capsys, "validation.jsonl: made by `vskip data import` with other settings "
                                               "(limit 2 → None)")
    assert run([*argv, "--split", "validation", "--limit", "2"], capsys)[0] == 0  # the default split, named
    assert len(read_records(tmp_path / "docvqa" / "validation.jsonl")) == 2


def test_the_record_keeps_what_shapes_the_output():
    options = {"data": "d.jsonl", "model": "vskip-tiny", "batch_size": 4, "skip_bad": True, "overwrite": True,
               "mode": "cot", "ratios": (0.5,)}
    generate = maker("generate", options)
    assert generate == {"command": "generate", "settings": {"data": "d.jsonl", "model": "vskip-tiny", "mode": "cot",
                                                            "ratios": [0.5]}}
    assert maker("distill", options)["settings"]["batch_size"] == 4  # the recipe's, unlike a journal's pace
    assert refusal("o", generate, generate) is None
    assert refusal("o", generate, maker("generate", {**options, "mode": "direct"})) == (
        f"o: made by `vskip generate` with other settings (mode 'cot' → 'direct'); {AGAIN}")


def test_every_command_that_writes_takes_overwrite():
    parse = build_parser().parse_args
    for argv in (["synth"], ["data", "import", "s"], ["tiny", "train", "--data", "d"], ["generate", "--data", "d"],
                 ["score", "--data", "d"], ["compress", "--data", "d"], ["distill", "--data", "d"], ["merge", "a"],
                 ["evaluate", "--data", "d"], ["demo"]):
        assert parse([*argv, "--out", "o", "--overwrite"]).overwrite
