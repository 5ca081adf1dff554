"""Where the model looks when it names the first place of its CoT: attention of each head to the image.

    python benchmarks/bench_lookup.py --data runs/synth/val.jsonl --out benchmarks/results/lookup.json

The reference reply of each record is teacher-forced in `cot` mode with eager attention. At the token
that predicts the first place the CoT names (the row of "the red star is at row 2 column 3", the line
of "the tea on line 1"), the attention of every head of every layer to the image tokens is split
between the *target* (the object at that place, or the receipt line's tokens), the objects that share
one key with it (its colour or its shape), the other objects (other receipt lines) and empty cells
(the rest of a head's attention is on the text).
A lookup the model has learned shows as a head that puts nearly all its image attention on the target;
the first place is also scored as read or not (greedy right at every token), as in bench_reading.py.

Lookups, by what names the target: the star (count's "same colour as the star": one shape, the same in
every question), a colour-and-shape pair from the question (relate; count's first match of a pair),
an item from the question (doc).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import torch
from bench_reading import teacher_forced, teacher_forced_run

from vskip.encoding import token_word_index
from vskip.records import Record
from vskip.report import format_table
from vskip.synth.scenes import GRID

PARTS = ("target", "one key shared", "other objects", "empty")


def lookup_of(record: Record) -> str | None:
    """What names the object whose place the CoT gives first (None: the CoT names no place)."""
    if not any(word["type"] == "position" for word in record.get("visual_words") or []):
        return None
    if record["task"] == "doc":
        return "doc: an item's line"
    if record["task"] == "count" and "the star" in record["question"]:
        return "count: the star"
    return f"{record['task']}: a colour-and-shape pair"


def first_place(record: Record) -> tuple[int, list[int]]:
    """The CoT word index of the first place's first number, and the image tokens (cells) it names."""
    words = [word.strip(".,") for word in record["cot"].split()]
    index = next(word["index"] for word in record["visual_words"] if word["type"] == "position")
    if record["task"] == "doc":
        line = int(words[index])
        return index, list(range((line - 1) * GRID, line * GRID))
    row, col = int(words[index]), int(words[index + 2])  # "row R column C"
    return index, [(row - 1) * GRID + col - 1]


def parts(record: Record, target: list[int]) -> list[str]:
    """The part of `PARTS` each image token falls in, for the lookup of `target`."""
    kinds = ["empty"] * GRID * GRID
    if record["task"] == "doc":
        for line in range(len(record["document"])):
            for cell in range(line * GRID, (line + 1) * GRID):
                kinds[cell] = "target" if cell in target else "other objects"
        return kinds
    cell_of = {(obj["row"] - 1) * GRID + obj["col"] - 1: obj for obj in record["scene"]}
    wanted = cell_of[target[0]]
    for cell, obj in cell_of.items():
        shared = obj["colour"] == wanted["colour"] or obj["shape"] == wanted["shape"]
        kinds[cell] = "target" if cell == target[0] else "one key shared" if shared else "other objects"
    return kinds


@torch.inference_mode()
def measure(loaded, records: list[Record], base_dir: Path, batch_size: int) -> dict[str, dict]:
    """Per lookup: items, first places read right, and per (layer, head) the mean attention on each part."""
    tokenizer = loaded.processor.tokenizer
    image_token = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    found: dict[str, dict] = defaultdict(lambda: {"n": 0, "read": 0, "mass": defaultdict(lambda: torch.zeros(4))})
    chosen = [record for record in records if lookup_of(record)]
    for batch, replies, encoded, out in teacher_forced(loaded, chosen, base_dir, batch_size, output_attentions=True):
        greedy = out.logits.argmax(-1).cpu()
        ids = encoded.inputs["input_ids"]
        for row, (record, reply, span) in enumerate(zip(batch, replies, encoded.reply_spans)):
            index, target = first_place(record)
            tokens = [span.start + t for t, word in enumerate(token_word_index(tokenizer, reply, record["cot"]))
                      if word == index]
            query = tokens[-1] - 1  # the token whose logits give the place's number
            image = (ids[row] == image_token).nonzero().flatten()
            kinds = parts(record, target)
            cells_of_part = [[cell for cell, kind in enumerate(kinds) if kind == name] for name in PARTS]
            result = found[lookup_of(record)]
            result["n"] += 1
            result["read"] += all(greedy[row, t - 1] == ids[row, t] for t in tokens)
            for layer, attention in enumerate(out.attentions):
                mass = attention[row, :, query, image].float().cpu()  # heads x image tokens
                for part, cells in enumerate(cells_of_part):
                    result["mass"][layer, part] += mass[:, cells].sum(-1)
    return found


def rows_of(found: dict[str, dict]) -> tuple[list[dict], list[dict]]:
    """A summary row per lookup (its most target-bound head) and a row per lookup, layer and head."""
    summary, heads = [], []
    for lookup, result in sorted(found.items()):
        n = result["n"]
        table = defaultdict(dict)
        for (layer, part), mass in sorted(result["mass"].items()):
            for head, value in enumerate((mass / n).tolist()):
                table[layer, head][PARTS[part]] = round(value, 4)
        heads += [{"lookup": lookup, "layer": layer, "head": head, **mass} for (layer, head), mass in table.items()]
        (layer, head), best = max(table.items(), key=lambda item: item[1]["target"])
        summary.append({"lookup": lookup, "n": n, "first place read": round(result["read"] / n, 4),
                        "head": f"{layer}.{head}", **best})
    return summary, heads


def main() -> None:
    args, records, loaded = teacher_forced_run(__doc__.splitlines()[0], "benchmarks/results/lookup.json")
    loaded.model.set_attn_implementation("eager")  # the weights themselves: output_attentions needs eager
    summary, heads = rows_of(measure(loaded, records, Path(args.data).parent, args.batch_size))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "data": args.data, "records": len(records),
                                          "rows": summary, "heads": heads}, indent=2) + "\n")
    print(format_table(summary, list(summary[0])))


if __name__ == "__main__":
    main()
