"""What a model reads off the image: teacher-forced accuracy on every visual word of the reference CoTs.

    python benchmarks/bench_reading.py --data runs/synth/val.jsonl --out benchmarks/results/reading.json

For each record (the first `--per-task` of each family), the reference reply is teacher-forced in
`cot` mode with the record's image; a visual word counts as read when the model's greedy choice is
right at every one of its tokens. Words are grouped by family and role: their attribute type
(colour, shape, object, value), "asked" when the question names the word too (a copy, not only a
reading), and for positions the word they follow (row, column or line) and whether they place the
CoT's first object or a later one. Generation can drift from the reference;
this cannot, so it shows each reading skill apart from the others (bench_accuracy.py shows them
together).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import torch
from common import reference_replies, teacher_forced, teacher_forced_run

from vskip.encoding import token_word_index
from vskip.prompts import bare_word
from vskip.records import Record
from vskip.report.tables import format_table


def word_roles(record: Record) -> dict[int, str]:
    """The role of each visual word of the record's CoT, by word index: its type, "(asked)" when the
    question has the word too, or for a position the word before it ("row", "column", "line") and
    "first" or "later" (the first place the CoT names or not)."""
    words = _bare(record["cot"])
    asked = set(_bare(record["question"]))
    roles, places = {}, 0
    for visual in record.get("visual_words") or []:
        i = visual["index"]
        if visual["type"] != "position":
            roles[i] = f"{visual['type']} (asked)" if words[i] in asked else visual["type"]
            continue
        before = words[i - 1] if i else ""
        roles[i] = f"{before} ({'first' if places < 2 else 'later'})" if before in ("row", "column") else before
        places += 1
    return roles


def _bare(text: str) -> list[str]:
    return [bare_word(word) for word in text.split()]


@torch.inference_mode()
def read_words(loaded, records: list[Record], base_dir: Path, batch_size: int) -> list[tuple[str, str, bool]]:
    """(family, role, read right) for every visual word of every record."""
    tokenizer = loaded.processor.tokenizer
    found = []
    for batch, replies, encoded in teacher_forced(loaded, reference_replies(records), base_dir, batch_size):
        greedy = loaded.model(**encoded.inputs).logits.argmax(-1).cpu()
        ids = encoded.inputs["input_ids"]
        for row, (record, reply, span) in enumerate(zip(batch, replies, encoded.reply_spans)):
            read = defaultdict(lambda: True)
            for word, position in zip(token_word_index(tokenizer, reply, record["cot"]), range(span.start, span.stop)):
                if word >= 0:
                    read[word] &= bool(greedy[row, position - 1] == ids[row, position])
            found += [(record["task"], role, read[i]) for i, role in word_roles(record).items()]
    return found


def table(found: list[tuple[str, str, bool]]) -> list[dict]:
    groups = defaultdict(list)
    for task, role, right in found:
        groups[task, role].append(right)
    return [{"task": task, "role": role, "n": len(rights), "read": sum(rights) / len(rights)}
            for (task, role), rights in sorted(groups.items())]


def main() -> None:
    args, records, loaded = teacher_forced_run(__doc__.splitlines()[0], "benchmarks/results/reading.json")
    rows = table(read_words(loaded, records, Path(args.data).parent, args.batch_size))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "data": args.data, "records": len(records),
                                          "rows": rows}, indent=2) + "\n")
    print(format_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
