"""Distillation recipes side by side: which one makes a student follow γ and keep the teacher's accuracy.

    python benchmarks/bench_distill.py --data runs/synth --work runs/bench-distill \
        --out benchmarks/results/distill.json

The teacher (`--model`) writes chains of thought for the first `--n-train` training items of each
family; the correct ones are scored and compressed by `--method` at every γ of `--ratios`, once, in
`--work`. Each recipe (`RECIPES`, or the names given to `--recipes`) then distils one student from
those records, and the teacher (`full`) and every student at every γ are evaluated on the first
`--n-val` items per family of the *validation* split (choices are made there; the test split only
reports): accuracy, accuracy as a share of `full`'s, and ActRatio (the student's CoT tokens over the
teacher's on the same items). Each recipe's figures land in `WORK/recipes/NAME.json`, so recipes can
run in separate processes on the same work (a GPU has room for several of these small models); every
run merges what is there into `--out` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from vskip.compress import compress_records
from vskip.distill import DEFAULT_DISTILL, DistillSettings, LoraSettings
from vskip.distill import distill as distill_student
from vskip.evaluate import EvalSettings, evaluate
from vskip.generate import generate
from vskip.lora import ADAPTER_INFO, load_student
from vskip.models import load_model
from vskip.precision import DTYPES
from vskip.records import iter_jsonl, read_records, write_jsonl_atomic
from vskip.report import format_table
from vskip.score import score_records


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
    """Teacher CoTs on the training items, scored and compressed: the records every recipe learns from."""
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


def run_recipe(args, work: Path, name: str, settings: DistillSettings, val: list[dict], full: dict) -> dict:
    path = work / "recipes" / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if args.steps:
        settings = replace(settings, training=replace(settings.training, steps=args.steps))
    student_dir = work / "students" / name
    started = time.perf_counter()
    distill_student(args.model, list(iter_jsonl(work / "compressed.jsonl")), work, student_dir, method=args.method,
                    settings=settings, dtype=args.dtype)
    seconds = time.perf_counter() - started
    student = load_student(args.model, student_dir, dtype=args.dtype)
    rows = []
    for ratio in args.ratios:
        results = evaluate(student, val, args.data, work / "eval" / f"{name}-{ratio}.json",
                           settings=replace(_eval_settings(args), ratio=ratio), baseline=full, adapter=student_dir)
        rows.append({"ratio": ratio, "accuracy": results["accuracy"], "act_ratio": results["act_ratio"],
                     "accuracy_vs_full": results["accuracy"] / full["accuracy"] if full["accuracy"] else None})
    report = {"recipe": name, "settings": asdict(settings), "distill_seconds": round(seconds, 1),
              "trained_parameters": json.loads((student_dir / ADAPTER_INFO).read_text())["trainable_parameters"],
              "rows": rows}
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
            rows.append({"recipe": report["recipe"], **row, "trained_parameters": report["trained_parameters"],
                         "distill_seconds": report["distill_seconds"]})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"full": {"accuracy": full["accuracy"], "n": full["n"]}, "rows": rows,
                               "recipes": reports}, indent=2) + "\n")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vskip-tiny", help="the teacher, and the base of every student")
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="see vskip.precision")
    parser.add_argument("--data", required=True, help="a directory written by `vskip synth` (train and val)")
    parser.add_argument("--work", required=True, help="directory for the teacher's records, students and evaluations")
    parser.add_argument("--out", default="benchmarks/results/distill.json")
    parser.add_argument("--recipes", nargs="*", choices=list(RECIPES), default=list(RECIPES),
                        help="recipes to run (none: prepare and merge only)")
    parser.add_argument("--method", default="vskip")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    parser.add_argument("--n-train", type=int, default=1000, help="training items per family given to the teacher")
    parser.add_argument("--n-val", type=int, default=100, help="validation items per family")
    parser.add_argument("--steps", type=int, help="override every recipe's steps (a quick look at the code path)")
    parser.add_argument("--batch-size", type=int, default=32, help="generation and evaluation batch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    work = Path(args.work)
    prepare(args, work)
    val = by_family(read_records(Path(args.data) / "val.jsonl"), args.n_val)
    full = evaluate_full(args, work, val)
    for name in args.recipes:
        run_recipe(args, work, name, RECIPES[name], val, full)
    rows = merge(work, Path(args.out), full)
    print(format_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
