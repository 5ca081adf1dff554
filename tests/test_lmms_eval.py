"""lmms-eval, the field's harness, runs a merged vskip student on a task `vskip data export` wrote, and agrees with
`vskip evaluate` item by item. Needs lmms-eval and what its Qwen2-VL class imports: `make test-lmms-eval` builds
that venv (.venv-lmms) and runs this file there; elsewhere it is skipped.

Where the two differ by construction, lmms-eval's `qwen2_vl` re-encodes each image as a JPEG (`export.harness_view`);
so `vskip evaluate` runs on those pixels (`export.write_harness_view`) and every reply must be the same text. vskip's
own `vskip_qwen2_vl` (`vskip.lmms_model`) does not, and replies as `vskip evaluate` does on the images themselves.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vskip.cli import main
from vskip.export import harness_replies, lmms_model_args, write_harness_view
from vskip.models import TINY_DIR, TINY_NAME
from vskip.prompts import split_response
from vskip.records import read_records
from vskip.synth import build

pytestmark = pytest.mark.skipif(importlib.util.find_spec("lmms_eval") is None,
                                reason="lmms-eval is not installed (make test-lmms-eval builds its venv)")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A three-step student of vskip-tiny, merged; vskip-synth's test items (3 per family) exported for lmms-eval at
    γ 0.5 and 1; and the same items as the harness sees their images."""
    from test_merge import _distilled

    root = tmp_path_factory.mktemp("lmms")
    student = _distilled(tmp_path_factory)
    merged = root / "merged"
    assert main(["merge", str(student), "--out", str(merged)]) == 0
    test = build(root / "synth", seed=3, n_train=0, n_val=0, n_test=3, progress=False)["test"]
    assert main(["data", "export", "--data", str(test), "--out", str(root / "task"), "--ratios", "0.5,1",
                 "--name", "vskip_synth"]) == 0
    viewed = write_harness_view(read_records(test), test.parent, root / "viewed" / "test.jsonl")
    return {"root": root, "student": student, "merged": merged, "test": test, "viewed": viewed}


def lmms_eval(world, model: Path, task: str, model_class: str = "qwen2_vl") -> dict[str, tuple]:
    """lmms-eval's CLI on `task` with `model`, on the CPU: record id -> its reply (from --log_samples) read as
    (chain of thought, answer)."""
    out = world["root"] / f"lmms-{task}-{model_class}"
    command = [str(Path(sys.executable).with_name("lmms-eval")), "eval", "--model", model_class,
               "--model_args", f"{lmms_model_args(model)},device=cpu,device_map=cpu",
               "--include_path", str(world["root"] / "task"), "--tasks", task, "--batch_size", "1",
               "--log_samples", "--output_path", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {key: split_response(reply) for key, reply in harness_replies(world["root"] / "task", out, task).items()}


def vskip_replies(world, tmp_path, *options: str, data: str = "viewed") -> dict[str, tuple]:
    """`vskip evaluate` on the harness's pixels (or `data` "test", the images themselves): record id -> its reply's
    (chain of thought, answer)."""
    out = tmp_path / "results.json"
    assert main(["evaluate", "--data", str(world[data]), "--latency-items", "0", "--out", str(out), *options]) == 0
    items = [json.loads(line) for line in Path(f"{out}.items.jsonl").read_text().splitlines()]
    return {item["id"]: (item["cot"], item["prediction"]) for item in items}


@pytest.mark.parametrize("ratio", ["0.5", "1"])
def test_lmms_eval_replies_as_vskip_evaluate_does(world, tmp_path, ratio):
    """The student merged (γ 0.5, the marker in the prompt) or the teacher (γ 1, no marker): the same reply to
    every item in both tools, and the harness's accuracy is vskip's."""
    if ratio == "1":
        task, model, options = "vskip_synth_full", TINY_DIR, ["--model", TINY_NAME]
    else:
        task, model = "vskip_synth_r0_5", world["merged"]
        options = ["--adapter", str(world["student"]), "--ratio", "0.5"]
    harness = lmms_eval(world, model, task)
    ours = vskip_replies(world, tmp_path, *options)
    assert len(harness) == 12 and harness == ours
    results = json.loads(next((world["root"] / f"lmms-{task}-qwen2_vl").glob("*/*results.json")).read_text())
    results = results["results"][task]
    summary = json.loads((tmp_path / "results.json").read_text())
    assert results["accuracy,none"] == pytest.approx(summary["accuracy"])
    assert results["pope_yes_ratio,none"] == pytest.approx(summary["pope_yes_ratio"])


def test_vskip_qwen2_vl_replies_as_vskip_evaluate_does_on_the_images_themselves(world, tmp_path):
    harness = lmms_eval(world, world["merged"], "vskip_synth_r0_5", "vskip_qwen2_vl")
    ours = vskip_replies(world, tmp_path, "--adapter", str(world["student"]), "--ratio", "0.5", data="test")
    assert len(harness) == 12 and harness == ours
