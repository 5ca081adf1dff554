"""Distillation recipes side by side: which one makes a student follow γ and keep the teacher's accuracy.

    python benchmarks/bench_distill.py --data runs/synth --work runs/bench-distill \
        --compressed runs/demo/compressed.jsonl --out benchmarks/results/distill.json

The teacher (`--model`) writes chains of thought for the first `--n-train` training items of each
family; the correct ones are scored and compressed by `--method` at every γ of `--ratios`, once, in
`--work` (or `--compressed` names records already compressed, such as the demo's). Each recipe
(`RECIPES`, or the names given to `--recipes`) then distils one student from those records, and the
teacher (`full`) and every student at every γ are evaluated on the first `--n-val` items per family
of the *validation* split (choices are made there; the test split only reports): accuracy, overall
and per family, accuracy as a share of `full`'s, and ActRatio (the student's CoT tokens over the
teacher's on the same items). Beside each accuracy, the *forced* accuracy splits the loss in two:
the student is handed the gate's own compression of the teacher's CoT on each item `full` got right
(the CoT it was trained to write) and only answers; the gap between accuracy and forced accuracy is
the student's writing, the gap between forced accuracy and 1 what the gate's compression leaves
out. Each recipe's figures land in `WORK/recipes/NAME.json`, so recipes can run in separate
processes on the same work (a GPU has room for several of these small models); every run merges what
is there into `--out` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from common import gate_compressions, model_arguments

from vskip.compress import compress_records
from vskip.distill import DEFAULT_DISTILL, DistillSettings
from vskip.distill import distill as distill_student
from vskip.evaluate import EvalSettings, evaluate
from vskip.generate import forced_correct, generate
from vskip.lora import ADAPTER_INFO, load_student
from vskip.models import load_model
from vskip.records import iter_jsonl, read_records, write_jsonl_atomic
from vskip.report.tables import format_table
from vskip.score import score_records
from vskip.settings import LoraSettings


def _recipe(steps: int, learning_rate: float, lora: LoraSettings | None) -> DistillSettings:
    training = replace(DEFAULT_DISTILL.training, steps=steps, learning_rate=learning_rate)
    return replace(DEFAULT_DISTILL, training=training, lora=lora)


ATTENTION = LoraSettings(rank=16, alpha=32, target_modules="attention")
ALL_LINEAR = LoraSettings(rank=32, alpha=64, target_modules="all-linear")
RECIPES: dict[str, DistillSettings] = {
    "lora-attention-r16-600": _recipe(600, 1e-3, ATTENTION),
    "lora-attention-r16-1500": _recipe(1500, 1e-3, ATTENTION),
    "lora-all-linear-r8-1500": _recipe(1500, 1e-3, LoraSettings(rank=8, alpha=16, target_modules="all-linear")),
    "lora-all-linear-r32-1000": _recipe(1000, 1e-3, ALL_LINEAR),
    "lora-all-linear-r32-1500": _recipe(1500, 1e-3, ALL_LINEAR),
    "lora-all-linear-r32-1500-lr2e-3": _recipe(1500, 2e-3, ALL_LINEAR),
    "lora-all-linear-r32-3000": _recipe(3000, 1e-3, ALL_LINEAR),
    "full-1000": _recipe(1000, 3e-4, None),
    "full-1500": _recipe(1500, 3e-4, None),
    "full-3000": _recipe(3000, 3e-4, None),
}


def by_family(records: list[dict], n: int) -> list[dict]:
    """The first `n` records of every task family, in file order."""
    counts: dict[str, int] = {}
    chosen = []
    for record in records:
        counts[record["task"]] = counts.get(record["task"], 0) + 1
        if counts[record["task"]] <= n:
            chosen.append(record)
    return chosen


def prepare(args, work: Path) -> Path:
    """Teacher CoTs on the training items, scored and compressed: the records every recipe learns from
    (`--compressed`, when given: a file `vskip compress` or `vskip demo` wrote)."""
    if args.compressed:
        if not Path(args.compressed).is_file():
            raise SystemExit(f"{args.compressed}: no such file; run `vskip demo` or `vskip compress` first")
        return Path(args.compressed)
    compressed_path = work / "compressed.jsonl"
    if compressed_path.is_file():
        return compressed_path
    teacher = load_model(args.model, dtype=args.dtype)
    train = by_family(read_records(Path(args.data) / "train.jsonl"), args.n_train)
    generated = generate(teacher, train, args.data, work / "generated.jsonl", batch_size=args.batch_size)
    scored = score_records(teacher, [record for record in generated if record["correct"]], work)
    write_jsonl_atomic(compressed_path, compress_records(scored, [args.method], args.ratios, args.seed))
    return compressed_path


def evaluate_full(args, work: Path, val: list[dict]) -> dict:
    path = work / "eval" / "full.json"
    if path.is_file():
        return json.loads(path.read_text())
    teacher = load_model(args.model, dtype=args.dtype)
    return evaluate(teacher, val, args.data, path, settings=_eval_settings(args))


def val_compressions(args, work: Path) -> list[dict]:
    """The gate's compressions of the teacher's correct CoTs on the validation items (`full`'s own)."""
    evaluations = work / "eval"
    return gate_compressions(evaluations / "compressed.jsonl", args, args.method, args.ratios, evaluations,
                             lambda teacher: [item for item in iter_jsonl(evaluations / "full.json.items.jsonl")
                                              if item["correct"]])


def forced_accuracy(student, compressed: list[dict], base: Path, ratio: float, batch_size: int) -> float | None:
    """Accuracy of the student answering after the gate's compressed CoT at γ, teacher-forced: only the answer
    is generated. None where the teacher got no item right, so there is nothing to hand over."""
    records = [record for record in compressed if record["ratio"] == ratio]
    right = forced_correct(student, records, base, ratio=ratio, batch_size=batch_size)
    return sum(right) / len(right) if right else None


def run_recipe(args, work: Path, records_path: Path, name: str, settings: DistillSettings, val: list[dict],
               full: dict) -> dict:
    path = work / "recipes" / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if args.steps:
        settings = replace(settings, training=replace(settings.training, steps=args.steps))
    student_dir = work / "students" / name
    info_path = student_dir / ADAPTER_INFO
    if info_path.is_file():  # written last: a student already distilled is evaluated again, not retrained
        info = json.loads(info_path.read_text())
    else:
        started = time.perf_counter()
        distill_student(args.model, list(iter_jsonl(records_path)), records_path.parent, student_dir,
                        method=args.method, settings=settings, dtype=args.dtype)
        info = json.loads(info_path.read_text()) | {"seconds": round(time.perf_counter() - started, 1)}
        info_path.write_text(json.dumps(info, indent=2) + "\n")
    student = load_student(args.model, student_dir, dtype=args.dtype)
    compressed = val_compressions(args, work)
    rows = []
    for ratio in args.ratios:
        results = evaluate(student, val, args.data, work / "eval" / f"{name}-{ratio}.json",
                           settings=replace(_eval_settings(args), ratio=ratio), baseline=full, adapter=student_dir)
        rows.append({"ratio": ratio, "accuracy": results["accuracy"], "act_ratio": results["act_ratio"],
                     "accuracy_vs_full": results["accuracy"] / full["accuracy"] if full["accuracy"] else None,
                     "forced_accuracy": forced_accuracy(student, compressed, work / "eval", ratio, args.batch_size),
                     "accuracy_by_task": {task: block["accuracy"] for task, block in results["tasks"].items()}})
    report = {"recipe": name, "settings": asdict(settings), "distill_seconds": info.get("seconds"),
              "trained_parameters": info["trainable_parameters"], "rows": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _eval_settings(args) -> EvalSettings:
    return EvalSettings(batch_size=args.batch_size, latency_items=0, seed=args.seed)


def merge(work: Path, out: Path, full: dict) -> list[dict]:
    rows = [{"recipe": "full (teacher)", "ratio": 1.0, "accuracy": full["accuracy"], "act_ratio": 1.0,
             "accuracy_vs_full": 1.0, "trained_parameters": 0, "distill_seconds": 0.0}]
    reports = [json.loads(path.read_text()) for path in (work / "recipes").glob("*.json")]
    reports.sort(key=lambda report: list(RECIPES).index(report["recipe"]))
    for report in reports:
        for row in report["rows"]:
            by_task = {f"accuracy_{task}": value for task, value in row.get("accuracy_by_task", {}).items()}
            row = {key: value for key, value in row.items() if key != "accuracy_by_task"}
            rows.append({"recipe": report["recipe"], **row, **by_task,
                         "trained_parameters": report["trained_parameters"],
                         "distill_seconds": report["distill_seconds"]})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"full": {"accuracy": full["accuracy"], "n": full["n"]}, "rows": rows,
                               "recipes": reports}, indent=2) + "\n")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, model_help="the teacher, and the base of every student")
    parser.add_argument("--data", required=True, help="a directory written by `vskip synth` (train and val)")
    parser.add_argument("--work", required=True, help="directory for the teacher's records, students and evaluations")
    parser.add_argument("--out", default="benchmarks/results/distill.json")
    parser.add_argument("--recipes", nargs="*", choices=list(RECIPES), default=list(RECIPES),
                        help="recipes to run (none: prepare and merge only)")
    parser.add_argument("--compressed", help="learn from this file's compressed records "
                        "(e.g. runs/demo/compressed.jsonl) instead of preparing them in --work")
    parser.add_argument("--method", default="vskip")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    parser.add_argument("--n-train", type=int, default=1000, help="training items per family given to the teacher")
    parser.add_argument("--n-val", type=int, default=100, help="validation items per family")
    parser.add_argument("--steps", type=int, help="override every recipe's steps (a quick look at the code path)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    work = Path(args.work)
    records_path = prepare(args, work)
    val = by_family(read_records(Path(args.data) / "val.jsonl"), args.n_val)
    full = evaluate_full(args, work, val)
    for name in args.recipes:
        run_recipe(args, work, records_path, name, RECIPES[name], val, full)
    rows = merge(work, Path(args.out), full)
    print(format_table(rows, list(dict.fromkeys(key for row in rows for key in row))))


if __name__ == "__main__":
    main()
