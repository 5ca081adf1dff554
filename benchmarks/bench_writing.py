"""Where a student's writing goes wrong: what it answers writing its CoT, against handed its target.

    python benchmarks/bench_writing.py --student runs/r30/vskip --data runs/r30/data \
        --compressed runs/r30/compressed.jsonl --work runs/r30/writing --out benchmarks/results/writing.json

For a student (a `vskip distill` output: its method, the γ it learned, and its training targets, `targets.jsonl`),
at each γ and per family, on two sets of items:
- `val`: the first `--n` items per family of the validation split (of `--val`, default `--data`) that the
  teacher (`--model`) answers right with its CoT; the target is that CoT compressed by the student's method at
  γ, as distillation's were;
- `train`: the first `--n` per family of the student's own training items; the target is what it learned at γ.
Figures: `written`, the accuracy of the CoT the student writes when asked for γ; `forced`, its accuracy when handed
the target after the prompt and asked only for the answer (`generate.forced_correct`). Written ÷ forced is what the
writing keeps; train against val is fit against generalisation. For each item written wrong, the first word where
its CoT leaves the target (`first_departure`): the target word's role in the reference CoT (A anchor, R restated,
S scaffolding, K knowledge; `*` where a step needs it) and its kind (a value: colour, shape, number, item, ...; or
other words), or `stopped` / `went on` where one CoT is the other's beginning. Each student's figures merge into
`--out` under its name (`--name`, default the student directory's name); `--table` prints them side by side.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from common import first_per_task, gate_compressions, model_arguments

from vskip.distill import TARGETS
from vskip.generate import forced_correct, generate
from vskip.lora import adapter_info, load_student
from vskip.prompts import split_response
from vskip.records import iter_jsonl, read_records
from vskip.report.tables import format_table
from vskip.rounds import word_alignment, word_key

_NUMBER = re.compile(r"\d")


def first_departure(target: str, written: str, reference: dict) -> str:
    """Where `written` first leaves `target`, as "ROLE[*] kind" of the target's word there (see the module), or
    "stopped" (written ends inside the target) or "went on" (written goes past it); "same" when they agree."""
    target_words, written_words = target.split(), written.split()
    for i, word in enumerate(target_words):
        if i >= len(written_words):
            return "stopped"
        if word_key(word) != word_key(written_words[i]):
            return word_description(i, target_words, reference)
    return "went on" if len(written_words) > len(target_words) else "same"


def word_description(i: int, words: list[str], reference: dict) -> str:
    """Role (with `*` where essential) and kind of `words[i]`, read off the reference CoT it aligns to."""
    at = word_alignment(reference["cot"].split(), words)[i]
    if at is None:
        return f"? {'number' if _NUMBER.search(words[i]) else 'other'}"
    types = {visual["index"]: visual["type"] for visual in reference.get("visual_words", [])}
    kind = types.get(at) or ("number" if _NUMBER.search(words[i]) else "other")
    role = reference["roles"][at] if reference.get("roles") else "?"
    return f"{role}{'*' if reference.get('essential') and reference['essential'][at] else ''} {kind}"


def val_targets(args, method: str, ratios: list[float], work: Path) -> list[dict]:
    """The teacher's right CoTs on the validation items, compressed by `method` at each γ (kept in `work` for every
    student of that method)."""

    def right_cots(teacher) -> list[dict]:
        val = first_per_task(read_records(Path(args.val) / "val.jsonl"), args.n)
        generated = generate(teacher, val, args.val, work / "teacher_val.jsonl", batch_size=args.batch_size)
        return [record for record in generated if record["correct"]]

    return gate_compressions(work / f"val_targets-{method}.jsonl", args, method, ratios, work, right_cots)


def train_targets(args, student: Path, ratios: list[float]) -> list[dict]:
    """The student's training items at each γ, their `compressed_cot` the target it learned."""
    items = {record["id"]: record for record in iter_jsonl(args.compressed)}
    learned = [line for line in iter_jsonl(student / TARGETS) if line["ratio"] in ratios]
    ids = dict.fromkeys(line["id"] for line in learned)  # each item once, in the file's order
    chosen = {record["id"] for record in first_per_task((items[item] for item in ids), args.n)}
    return [{**items[line["id"]], "ratio": line["ratio"], "compressed_cot": split_response(line["reply"])[0]}
            for line in learned if line["id"] in chosen]


def measure(args, student, targets: list[dict], split: str, ratio: float, base: Path, work: Path,
            references: dict) -> list[dict]:
    """Rows per family for one split and γ: written and forced accuracy, and where wrong CoTs depart."""
    records = [record for record in targets if record["ratio"] == ratio]
    written = generate(student, records, base, work / f"{split}-{ratio}.jsonl", ratio=ratio,
                       batch_size=args.batch_size)
    forced = forced_correct(student, records, base, ratio=ratio, batch_size=args.batch_size)
    rows = []
    for task in sorted({record["task"] for record in records}):
        chosen = [i for i, record in enumerate(records) if record["task"] == task]
        departures = Counter(
            first_departure(records[i]["compressed_cot"], written[i]["cot"], references[records[i]["id"]])
            for i in chosen if not written[i]["correct"])
        rows.append({"split": split, "ratio": ratio, "task": task, "n": len(chosen),
                     "written": sum(written[i]["correct"] for i in chosen) / len(chosen),
                     "forced": sum(forced[i] for i in chosen) / len(chosen),
                     "departures": dict(departures.most_common())})
    return rows


def overall(rows: list[dict]) -> list[dict]:
    """Per split and γ, written and forced accuracy over every family (weighted by their items), and per family
    the written accuracy: one line of the comparison between students."""
    out = []
    for split, ratio in dict.fromkeys((row["split"], row["ratio"]) for row in rows):
        group = [row for row in rows if (row["split"], row["ratio"]) == (split, ratio)]
        n = sum(row["n"] for row in group)
        out.append({"split": split, "ratio": ratio, "n": n,
                    **{key: sum(row[key] * row["n"] for row in group) / n for key in ("written", "forced")},
                    "written ÷ forced": sum(row["written"] * row["n"] for row in group)
                    / sum(row["forced"] * row["n"] for row in group),
                    **{f"written {row['task']}": row["written"] for row in group}})
    return out


def comparison(merged: dict) -> str:
    """The students of `--out` side by side (`overall`)."""
    rows = [{"student": name, **row} for name, entry in merged.items() for row in overall(entry["rows"])]
    rows.sort(key=lambda row: (row["split"] != "val", row["ratio"], row["student"]))
    return format_table(rows, list(rows[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, model_help="the teacher, and the student's base unless --student-model names it")
    parser.add_argument("--student-model", help="the model the student was distilled from (default: --model); the "
                        "validation targets stay the teacher's")
    parser.add_argument("--student", help="a directory written by `vskip distill`")
    parser.add_argument("--name", help="the student's name in --out (default: its directory's name)")
    parser.add_argument("--data", help="the `vskip synth` directory of its training items")
    parser.add_argument("--val", help="the `vskip synth` directory whose val split is measured (default: --data)")
    parser.add_argument("--compressed", help="the compressed records the student was distilled from")
    parser.add_argument("--work",
                        help="directory for the teacher's val CoTs (shared by students) and each student's generations")
    parser.add_argument("--out", default="benchmarks/results/writing.json")
    parser.add_argument("--n", type=int, default=100, help="items per family of each split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", action="store_true", help="only print the students of --out side by side")
    args = parser.parse_args()
    if args.table:
        print(comparison(json.loads(Path(args.out).read_text())))
        return
    if not (args.student and args.data and args.compressed and args.work):
        parser.error("--student, --data, --compressed and --work are needed (or --table)")
    args.val = args.val or args.data

    student_dir, work = Path(args.student), Path(args.work)
    name = args.name or student_dir.name
    info = adapter_info(student_dir)
    ratios = [ratio for ratio in info["ratios"] if isinstance(ratio, float) and ratio < 1.0]
    references = {record["id"]: record for split, data in (("train", args.data), ("val", args.val))
                  for record in iter_jsonl(Path(data) / f"{split}.jsonl")}
    sets = {"val": (val_targets(args, info["method"], ratios, work), work),
            "train": (train_targets(args, student_dir, ratios), Path(args.compressed).parent)}
    student = load_student(args.student_model or args.model, student_dir, dtype=args.dtype)
    rows = [row for split, (targets, base) in sets.items() for ratio in ratios
            for row in measure(args, student, targets, split, ratio, base, work / name, references)]
    out = Path(args.out)
    merged = json.loads(out.read_text()) if out.is_file() else {}
    merged[name] = {"method": info["method"], "round": info.get("round", 0),
                                             "rounds": info.get("rounds", []), "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=2) + "\n")
    table = [{key: value for key, value in row.items() if key != "departures"} for row in rows]
    print(format_table(table, list(table[0])))
    for row in rows:
        if row["departures"]:
            top = ", ".join(f"{where} {n}" for where, n in list(row["departures"].items())[:4])
            print(f"{row['split']} γ {row['ratio']} {row['task']}: first departures {top}")


if __name__ == "__main__":
    main()
