"""Every long stage killed part-way, by Ctrl-C (SIGINT) and by SIGKILL, then run again with the same command:
each rerun goes on from what the killed run kept, and the last one ends with what an uninterrupted run writes.

A stage is killed at a seeded random point of its progress as its files show it (its journal's records, its
checkpoint's step, the steps the demo has begun), each kill later than the one before, so one chain of runs
sees both signals. The uninterrupted run of the same command goes alongside the chain, on the other core; every
run has one thread, so floats, and with them weights and greedy replies, agree to the bit.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from conftest import without_timing
from safetensors.torch import load_file

import vskip
from vskip.cli import main
from vskip.demo import STEPS_FILE
from vskip.outputs import MADE_SUFFIX
from vskip.records import iter_jsonl, read_records
from vskip.stage import journals, read_journal
from vskip.synth import build

pytestmark = pytest.mark.slow

SEED = 31
# This checkout's code, whatever is installed.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
    path for path in [str(Path(vskip.__file__).parents[1]), os.environ.get("PYTHONPATH")] if path)}
INTERRUPTED = "vskip: interrupted; rerun the same command to resume"
# `vskip distill` checkpoints every 100 steps and has no option for it: its runs here, killed and uninterrupted
# alike, checkpoint every 2 steps through the settings, so that a few steps hold several checkpoints.
CHECKPOINT_EVERY = 2
DISTILL = (
    "import sys; from dataclasses import replace; from vskip import settings; "
    "settings.DEFAULT_DISTILL = replace(settings.DEFAULT_DISTILL, "
    f"training=replace(settings.DEFAULT_DISTILL.training, checkpoint_every={CHECKPOINT_EVERY})); "
    "from vskip.cli import main; sys.exit(main())"
)

Progress = Callable[[], bool]


@contextmanager
def running(args: list[str], log: Path, code: str | None = None) -> Iterator[subprocess.Popen]:
    """`vskip ARGS` in a process of its own, as a user runs it (`code`: a `python -c` that ends in `cli.main`), from
    the directory of `log`, where its stderr goes; killed if it is still running when the block ends."""
    command = [sys.executable, *(["-c", code] if code else ["-m", "vskip.cli"]), *args]
    with log.open("w") as err:
        # A job started in the background inherits SIGINT ignored: give the child a terminal's disposition.
        process = subprocess.Popen(command, cwd=log.parent, env=ENV, stdout=subprocess.DEVNULL, stderr=err,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def chain(args: list[str], out: str, kills: list[tuple[int, Progress]], logs: Path,
          code: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Run `vskip ARGS --out resumed/OUT` from `logs` once per kill, each run killed by its signal as soon as its
    progress is reached, then once more to the end, while the uninterrupted `vskip ARGS --out reference/OUT` runs
    beside them. Returns what each run wrote to stderr, and the files each kill left under `resumed/`."""
    said, left, resumed = [], [], logs / "resumed"
    with running([*args, "--out", f"reference/{out}"], logs / "reference.err", code) as reference:
        for number, (signum, reached) in enumerate([*kills, (None, None)]):
            log = logs / f"run{number}.err"
            with running([*args, "--out", f"resumed/{out}"], log, code) as process:
                if signum is not None:
                    deadline = time.monotonic() + 300
                    while not reached() and process.poll() is None:
                        assert time.monotonic() < deadline, f"run {number} made no progress"
                        time.sleep(0.01)
                    assert process.poll() is None, f"run {number} ended before its kill point:\n{log.read_text()}"
                    process.send_signal(signum)
                returncode = process.wait(timeout=600)
            said.append(log.read_text())
            expected = {None: 0, signal.SIGINT: 128 + signal.SIGINT, signal.SIGKILL: -signal.SIGKILL}[signum]
            assert returncode == expected, said[-1]
            if signum == signal.SIGINT:
                assert said[-1].strip().splitlines()[-1] == INTERRUPTED
            assert "starting afresh" not in said[-1] and "making it again" not in said[-1]  # the same run, resumed
            if signum is not None:
                # Beside the journals, an output's claim (`outputs.claim`), which the rerun, its maker, takes up.
                left.append(sorted(str(path.relative_to(resumed)) for path in resumed.rglob("*")
                                   if path.is_file() and not path.name.endswith(MADE_SUFFIX)))
        assert reference.wait(timeout=600) == 0, (logs / "reference.err").read_text()
    return said, left


def done(out: Path) -> int:
    """The records in the journals of `out` (0 once they are merged and removed)."""
    try:
        return sum(len(read_journal(path)) for path in journals(out))
    except FileNotFoundError:  # removed while read
        return 0


def trained(checkpoint: Path) -> int:
    """The step of the training checkpoint in `checkpoint` (0 before the first)."""
    path = checkpoint / "trainer_state.pt"
    return torch.load(path, weights_only=False, map_location="cpu")["step"] if path.is_file() else 0


def steps_begun(out: Path) -> int:
    """The steps the demo in `out` has begun (or done)."""
    try:
        return len(json.loads((out / STEPS_FILE).read_text()))
    except (FileNotFoundError, ValueError):  # not yet written, or replaced while read
        return 0


def after(reached: Progress, seconds: float) -> Progress:
    """`reached`, `seconds` after it first held."""
    since: list[float] = []

    def check() -> bool:
        if not since and reached():
            since.append(time.monotonic())
        return bool(since) and time.monotonic() - since[0] >= seconds

    return check


def first_count(said: str, bar: str) -> int:
    """Where progress bar `bar` started in a run's stderr: what the run found done."""
    found = re.search(rf"{re.escape(bar)}:\s+\d+%\|[^|]*\|\s*(\d+)/\d+", said)
    assert found, f"no {bar!r} bar in:\n{said}"
    return int(found.group(1))


def assert_same_outputs(reference: Path, resumed: Path, *, timed: tuple[str, ...] = ()) -> None:
    """The files under `resumed` are those under `reference` (no journal, checkpoint or temporary file left over),
    with the same content but for wall times: records and JSON compared without their timing fields, weights
    tensor by tensor, the rest byte for byte; `timed` files (made of timings, or dates) only exist."""
    names = sorted(path.relative_to(reference) for path in reference.rglob("*") if path.is_file())
    assert names == sorted(path.relative_to(resumed) for path in resumed.rglob("*") if path.is_file())
    for name in names:
        if name.name in timed or name.suffix in timed:
            continue
        one, two = reference / name, resumed / name
        if name.suffix == ".jsonl":
            assert without_timing(list(iter_jsonl(two))) == without_timing(list(iter_jsonl(one))), name
        elif name.suffix == ".json":
            assert without_timing(json.loads(two.read_text())) == without_timing(json.loads(one.read_text())), name
        elif name.suffix == ".safetensors":
            weights, resumed_weights = load_file(one), load_file(two)
            assert weights.keys() == resumed_weights.keys(), name
            assert all(torch.equal(weights[key], resumed_weights[key]) for key in weights), name
        else:
            assert two.read_bytes() == one.read_bytes(), name


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small vskip-synth set: train.jsonl (12 items), test.jsonl (8)."""
    root = tmp_path_factory.mktemp("interrupt")
    build(root, seed=SEED, n_train=3, n_val=0, n_test=2, progress=False)
    return root


@pytest.fixture(scope="module")
def compressed(data, saved_tiny):
    """What distill learns from: the training items' reference CoTs scored by the tiny random model (quick to run,
    yet with every stage's work to do) and compressed to γ 0.5."""
    assert main(["score", "--model", str(saved_tiny), "--data", str(data / "train.jsonl"),
                 "--out", str(data / "scores.jsonl")]) == 0
    assert main(["compress", "--data", str(data / "scores.jsonl"), "--methods", "vskip", "--ratios", "0.5",
                 "--out", str(data / "compressed.jsonl")]) == 0
    return data / "compressed.jsonl"


@pytest.mark.parametrize("stage", ["generate", "score"])
def test_a_stage_killed_twice_resumes_to_what_one_run_writes(stage, saved_tiny, data, tmp_path):
    train = data / "train.jsonl"
    before = train.read_bytes()
    out = tmp_path / "resumed" / f"{stage}.jsonl"
    args = [stage, "--model", str(saved_tiny), "--data", str(train), "--batch-size", "1"]
    args += ["--max-new-tokens", "16"] if stage == "generate" else []
    n = len(read_records(train))
    points = sorted(random.Random(f"{SEED}-{stage}").sample(range(1, n - 2), 2))  # at least two records left to do
    said, left = chain(
        args, out.name,
        [(signal.SIGINT, lambda: done(out) >= points[0]), (signal.SIGKILL, lambda: done(out) >= points[1])], tmp_path,
    )
    assert left == [[f"{stage}.jsonl.partial"]] * 2
    bar = "generate (cot)" if stage == "generate" else "score"
    assert first_count(said[1], bar) >= points[0] and first_count(said[2], bar) >= points[1]
    assert_same_outputs(tmp_path / "reference", out.parent)
    assert train.read_bytes() == before


def test_evaluate_killed_in_generation_and_in_its_latency_pass_resumes(saved_tiny, data, tmp_path):
    test = data / "test.jsonl"
    out = tmp_path / "resumed" / "results.json"
    items = out.with_name("results.json.items.jsonl")
    n = len(read_records(test))
    rng = random.Random(f"{SEED}-evaluate")
    point, delay = rng.randrange(1, n - 2), rng.uniform(0, 0.1)
    said, left = chain(
        ["evaluate", "--model", str(saved_tiny), "--data", str(test), "--batch-size", "1", "--max-new-tokens", "16",
         "--latency-items", "4"], out.name,
        # Once every item is generated, it times them at batch 1.
        [(signal.SIGINT, lambda: done(items) >= point), (signal.SIGKILL, after(lambda: done(items) == n, delay))],
        tmp_path,
    )
    assert left == [["results.json.items.jsonl.partial"]] * 2
    bar = "evaluate cot γ=1.0"
    assert first_count(said[1], bar) >= point and first_count(said[2], bar) == n  # none generated again
    assert_same_outputs(tmp_path / "reference", out.parent)


def test_distill_killed_in_its_forced_answers_and_in_training_resumes_to_the_same_student(
    saved_tiny, compressed, tmp_path
):
    out, steps = tmp_path / "resumed" / "student", 12
    checkpoint = out / "checkpoint"
    # One forced answer per compressed CoT that led to the right answer (all: these are reference CoTs).
    asked = sum(record.get("correct", True) for record in read_records(compressed, unique=("id", "ratio")))
    rng = random.Random(f"{SEED}-distill")
    answered = sorted(rng.sample(range(1, asked - 2), 2))
    checkpoints = sorted(rng.sample(range(CHECKPOINT_EVERY, steps - 2, CHECKPOINT_EVERY), 2))
    said, left = chain(
        ["distill", "--model", str(saved_tiny), "--data", str(compressed), "--batch-size", "1", "--steps", str(steps),
         "--rank", "4"], out.name,
        [(signal.SIGINT, lambda: done(checkpoint / "forced_answers.jsonl") >= answered[0]),
         (signal.SIGKILL, lambda: done(checkpoint / "forced_answers.jsonl") >= answered[1]),
         (signal.SIGINT, lambda: trained(checkpoint) >= checkpoints[0]),
         (signal.SIGKILL, lambda: trained(checkpoint) >= checkpoints[1])],
        tmp_path, DISTILL,
    )
    forced, state = "student/checkpoint/forced_answers.jsonl.partial", "student/checkpoint/trainer_state.pt"
    assert left[:2] == [[forced]] * 2
    # A kill while the checkpoint is saved may leave the file it was writing (gone with the checkpoint at the end).
    assert all({forced, state} <= {name for name in files if not name.startswith(f"{state}.tmp")} <= {forced, state}
               for files in left[2:]), left
    assert first_count(said[1], "forced answers") >= answered[0]
    assert first_count(said[2], "forced answers") >= answered[1]
    assert [first_count(run, "forced answers") for run in said[3:]] == [asked] * 2  # never asked again
    assert first_count(said[3], "distill vskip") >= checkpoints[0]
    assert first_count(said[4], "distill vskip") >= checkpoints[1]
    assert_same_outputs(tmp_path / "reference", out.parent)


def test_the_quick_demo_killed_twice_resumes_to_what_one_run_makes(tmp_path):
    out = tmp_path / "resumed" / "demo"
    rng = random.Random(f"{SEED}-demo")
    # The step after whose start each kill comes, up to 2 s later: never one of the last three (a student's
    # evaluations and the latency pass), which the kill might miss. The quick demo has 16 steps.
    begun = sorted(rng.sample(range(2, 14), 2))
    delays = [rng.uniform(0, 2) for _ in begun]
    chain(
        ["demo", "--quick"], out.name,
        [(signum, after(lambda step=step: steps_begun(out) >= step, delay))
         for signum, step, delay in zip([signal.SIGINT, signal.SIGKILL], begun, delays, strict=True)],
        tmp_path,
    )
    assert len(json.loads((out / STEPS_FILE).read_text())) == 16
    # The steps' record and the report carry dates and wall times.
    assert_same_outputs(tmp_path / "reference" / "demo", out,
                        timed=(STEPS_FILE, "latency.json", "results.md", "report.html", ".png"))
