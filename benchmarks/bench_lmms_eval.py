"""lmms-eval against `vskip evaluate`, item by item: the same student, the same items, the same γ.

    .venv-lmms/bin/python benchmarks/bench_lmms_eval.py --adapter runs/demo-quick/adapters/vskip \\
        --items 300 --out benchmarks/results/lmms_eval.json

Run with the Python of the venv `make test-lmms-eval` builds (lmms-eval's CLI is taken from beside it). On
`--items` vskip-synth test items (seed `--seed`, rounded up to a multiple of 4), exported by `vskip data export
--format lmms-eval`: the student, merged by `vskip merge`, at γ = `--ratio` in lmms-eval (`--model qwen2_vl`,
batch 1, CPU) and the adapter at the same γ in `vskip evaluate`; the teacher (`--model`) without a marker, `full`,
in both. Reported per run: each tool's accuracy, and the share of items whose replies are the same text (chain of
thought and answer, as `prompts.split_response` reads them). lmms-eval's Qwen2-VL class hands its processor each
image as a JPEG of quality 85; `vskip evaluate` is also run on those very pixels (`export.write_harness_view`), which
tells the JPEG apart from every other difference; and lmms-eval runs again with `--model vskip_qwen2_vl`, the same
class handing its processor the image's own pixels (`vskip.lmms_model`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vskip.cli import main as vskip
from vskip.export import harness_replies, lmms_model_args, task_name, write_harness_view
from vskip.models import resolve
from vskip.prompts import split_response
from vskip.records import read_records
from vskip.synth import build


def run_lmms_eval(model: str, task_dir: Path, task: str, out: Path,
                  model_class: str = "qwen2_vl") -> tuple[dict, float]:
    """lmms-eval's CLI on `task` (CPU, batch 1): (its results for the task, wall seconds)."""
    command = [str(Path(sys.executable).with_name("lmms-eval")), "eval", "--model", model_class,
               "--model_args", f"{lmms_model_args(model)},device=cpu,device_map=cpu", "--include_path", str(task_dir),
               "--tasks", task, "--batch_size", "1", "--log_samples", "--output_path", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    if done.returncode:
        sys.exit(f"lmms-eval failed:\n{done.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    return json.loads(next(out.glob("*/*_results.json")).read_text())["results"][task], seconds


def run_vskip(data: Path, out: Path, options: list[str]) -> tuple[dict, dict]:
    """`vskip evaluate`: (its results, record id -> (chain of thought, answer))."""
    assert vskip(["evaluate", "--data", str(data), "--latency-items", "0", "--out", str(out), *options]) == 0
    items = [json.loads(line) for line in Path(f"{out}.items.jsonl").read_text().splitlines()]
    return json.loads(out.read_text()), {item["id"]: (item["cot"], item["prediction"]) for item in items}


def same_share(harness: dict, ours: dict) -> float:
    return sum(harness[key] == ours[key] for key in ours) / len(ours)


def measure(args, work: Path) -> dict:
    test = build(work / "synth", seed=args.seed, n_train=0, n_val=0, n_test=-(-args.items // 4), progress=False)["test"]
    merged = work / "merged"
    assert vskip(["merge", args.adapter, "--out", str(merged), "--model", args.model]) == 0
    task_dir = work / "task"
    assert vskip(["data", "export", "--data", str(test), "--out", str(task_dir), "--ratios", f"{args.ratio},1",
                  "--name", "vskip_synth"]) == 0
    viewed = write_harness_view(read_records(test), test.parent, work / "viewed" / "test.jsonl")
    runs = {
        f"student γ={args.ratio}": (str(merged), task_name("vskip_synth", args.ratio),
                                    ["--model", args.model, "--adapter", args.adapter, "--ratio", str(args.ratio)]),
        "full (teacher, no marker)": (resolve(args.model), task_name("vskip_synth", None), ["--model", args.model]),
    }
    rows = {}
    for index, (name, (model, task, options)) in enumerate(runs.items()):
        results, seconds = run_lmms_eval(model, task_dir, task, work / f"lmms-{index}")
        harness = {key: split_response(reply) for key, reply in harness_replies(task_dir, work / f"lmms-{index}",
                                                                                 task).items()}
        lossless, _ = run_lmms_eval(model, task_dir, task, work / f"lossless-{index}", "vskip_qwen2_vl")
        lossless_replies = {key: split_response(reply) for key, reply in harness_replies(
            task_dir, work / f"lossless-{index}", task).items()}
        ours, replies = run_vskip(test, work / f"vskip-{index}.json", options)
        _, viewed_replies = run_vskip(viewed, work / f"viewed-{index}.json", options)
        rows[name] = {
            "task": task, "items": len(replies), "lmms_eval_accuracy": results["accuracy,none"],
            "vskip_accuracy": ours["accuracy"], "same_replies": same_share(harness, replies),
            "same_replies_on_harness_pixels": same_share(harness, viewed_replies),
            "lossless_accuracy": lossless["accuracy,none"],
            "same_replies_lossless": same_share(lossless_replies, replies),
            "lmms_eval_seconds": round(seconds, 1),
        }
    return rows


def table(rows: dict) -> str:
    lines = ["| run | items | vskip acc. | lmms-eval acc. | same replies | same, vskip on the JPEG's pixels "
             "| `vskip_qwen2_vl` acc. | same replies |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['items']} | {row['vskip_accuracy']:.3f} | {row['lmms_eval_accuracy']:.3f} "
                     f"| {row['same_replies']:.1%} | {row['same_replies_on_harness_pixels']:.1%} "
                     f"| {row['lossless_accuracy']:.3f} | {row['same_replies_lossless']:.1%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", required=True, help="a LoRA student written by `vskip distill`")
    parser.add_argument("--model", default="vskip-tiny", help="its base, the teacher of the `full` run")
    parser.add_argument("--items", type=int, default=300, help="vskip-synth test items (a multiple of 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the vskip-synth items")
    parser.add_argument("--ratio", type=float, default=0.5, help="γ asked of the student")
    parser.add_argument("--out", default="benchmarks/results/lmms_eval.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        rows = measure(args, Path(work))
    result = {"adapter": args.adapter, "model": args.model, "seed": args.seed, "ratio": args.ratio,
              "command": " ".join(sys.argv), "runs": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
