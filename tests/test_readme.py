"""README.md's "Pipeline, step by step", run as written (only its sizes shrunk), in a fresh folder."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from vskip.cli import main
from vskip.models import TINY_DIR
from vskip.records import read_records

README = Path(__file__).resolve().parents[1] / "README.md"
# Appended to a command (argparse keeps the last value): small sizes, so the whole section runs in a test.
SHRINK = {"synth": ["--n-train", "3", "--n-val", "1", "--n-test", "2"], "distill": ["--steps", "2"]}


def readme_commands(text: str, section: str = "Pipeline, step by step") -> list[list[str]]:
    """The `vskip` commands of the section's first indented code block, continuation lines joined."""
    body = text.split(f"## {section}\n", 1)[1]
    block = re.search(r"\n((?:    .*\n|\n)+)", body).group(1)
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line) for line in joined.splitlines() if line.strip()]


def readme_python(text: str) -> str:
    """The Python API section's code block."""
    return text.split("## Python API\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def test_the_section_is_read_whole():
    commands = readme_commands(README.read_text())
    assert [argv[:2] for argv in commands] == [
        ["vskip", "synth"], ["vskip", "generate"], ["vskip", "score"], ["vskip", "compress"], ["vskip", "distill"],
        ["vskip", "evaluate"], ["vskip", "evaluate"],
    ]  # fmt: skip
    assert all("--images" not in argv for argv in commands)  # paths follow the data


@pytest.mark.skipif(not (TINY_DIR / "model.safetensors").is_file(), reason="vskip-tiny not trained")
def test_the_readme_pipeline_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for argv in readme_commands(README.read_text()):
        code = main(argv[1:] + SHRINK.get(argv[1], []))
        assert code == 0, f"{shlex.join(argv)}: {capsys.readouterr().err[-2000:]}"
    err = capsys.readouterr().err
    generated = read_records("runs/generated.jsonl")
    assert {record["image_root"] for record in generated} == {"../data/synth"}
    wrong = sum(not record["correct"] for record in generated)
    assert (f"left out {wrong} item(s)" in err) == (wrong > 0)
    info = json.loads(Path("runs/adapters/vskip/vskip_adapter.json").read_text())
    # Three ratios, the full CoT and the auto marker's choice, for each correct item.
    assert info["examples"] == 5 * (len(generated) - wrong)
    results = json.loads(Path("runs/eval/vskip-0.5.json").read_text())
    assert results["adapter"] == "../adapters/vskip" and results["ratio"] == 0.5 and results["n"] == 8
    # No warning but the one the shrunk step count earns (the README's own recipe ends well past its warm-up).
    assert results["act_ratio"] is not None
    assert not [line for line in err.splitlines() if "warning" in line and "warm-up" not in line]
    assert Path("runs/eval/vskip-0.5.json.items.jsonl").is_file()
    assert not [path for path in tmp_path.rglob("*") if ".partial" in path.name or ".tmp" in path.name]
    # The Python API example runs as written too, on the dataset `vskip synth` wrote, with no hub.
    names: dict = {}
    exec(readme_python(README.read_text()), names)
    assert {record["method"] for record in names["compressed"]} == {"vskip", "text"}
    assert len(names["compressed"]) == 4 * len(names["scores"]) > 0
