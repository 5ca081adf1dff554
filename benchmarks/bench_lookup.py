"""Where the model looks when its CoT reads something off the image: attention of each head to the image.

    python benchmarks/bench_lookup.py --data runs/synth/val.jsonl --out benchmarks/results/lookup.json

The reference reply of each record is teacher-forced in `cot` mode with eager attention. At the token
that predicts a word the CoT reads off the image, the attention of every head of every layer to the
image tokens is split between the *target* (the object or receipt line the word is read from), the
objects that share one key with it (its colour or its shape), the other objects (other receipt lines)
and empty cells (the rest of a head's attention is on the text). A lookup the model has learned shows
as a head that puts nearly all its image attention on the target; the word is also scored as read or
not (greedy right at every token), as in bench_reading.py.

Lookups, by what names the target:
- count: the star (the row of "The star at row 2 column 3 is red": one shape, the same in every
  question);
- doc: the next line (the item of each line of "I see tea 2, jam 4 and milk 5": the next line in
  reading order);
- walk: the next object (the colour of each object of "I see a red star, a blue circle (1) ...": the
  next occupied cell in reading order);
- relate: the neighbour (the colour of "Left of it is a blue circle": the cell beside the reference).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import torch
from common import reference_replies, teacher_forced, teacher_forced_run

from vskip.encoding import token_word_index
from vskip.records import Record
from vskip.report.tables import format_table
from vskip.synth.documents import line_cells
from vskip.synth.scenes import GRID, cell_of
from vskip.synth.words import DIRECTIONS

PARTS = ("target", "one key shared", "other objects", "empty")


def lookups(record: Record) -> list[tuple[str, int, list[int]]]:
    """Each lookup of the record's reference CoT: (what names the target, the CoT word index of the word
    read, the image tokens (cells) it is read from)."""
    visual = record.get("visual_words") or []
    if record["task"] == "doc":
        walked = [word["index"] for word in visual if word["type"] == "object"][: len(record["document"])]
        return [("doc: the next line", index, list(line_cells(line))) for line, index in enumerate(walked)]
    scene = record["scene"]
    found = []
    colours = [word["index"] for word in visual if word["type"] == "colour"]  # the walk's, in order
    if record["task"] == "count" and "the star" in record["question"]:
        star = next(obj for obj in scene if obj["shape"] == "star")
        index = next(word["index"] for word in visual if word["type"] == "position")  # "row R"
        found.append(("count: the star", index, [cell_of(star)]))
        colours = colours[1:]  # after the star's own ("The star at row R column C is red.")
    found += [("walk: the next object", index, [cell_of(obj)]) for index, obj in zip(colours, scene)]
    if record["task"] == "relate":
        asked = re.search(rf"({'|'.join(DIRECTIONS)}) the (\w+) (\w+)\?", record["question"])
        direction, colour, shape = asked.groups()
        ref = next(obj for obj in scene if (obj["colour"], obj["shape"]) == (colour, shape))
        found.append(("relate: the neighbour", colours[len(scene)], [cell_of(ref) + DIRECTIONS[direction]]))
    return found


def parts(record: Record, target: list[int]) -> list[str]:
    """The part of `PARTS` each image token falls in, for the lookup of `target`."""
    kinds = ["empty"] * GRID * GRID
    if record["task"] == "doc":
        for line in range(len(record["document"])):
            for cell in line_cells(line):
                kinds[cell] = "target" if cell in target else "other objects"
        return kinds
    at = {cell_of(obj): obj for obj in record["scene"]}
    wanted = at[target[0]]
    for cell, obj in at.items():
        shared = obj["colour"] == wanted["colour"] or obj["shape"] == wanted["shape"]
        kinds[cell] = "target" if cell == target[0] else "one key shared" if shared else "other objects"
    return kinds


@torch.inference_mode()
def measure(loaded, records: list[Record], base_dir: Path, batch_size: int) -> dict[str, dict]:
    """Per lookup: how many, how many read right, and per (layer, head) the mean attention on each part."""
    tokenizer = loaded.processor.tokenizer
    image_token = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    found: dict[str, dict] = defaultdict(lambda: {"n": 0, "read": 0, "mass": defaultdict(lambda: torch.zeros(4))})
    for batch, replies, encoded in teacher_forced(loaded, reference_replies(records), base_dir, batch_size):
        out = loaded.model(**encoded.inputs, output_attentions=True)
        greedy = out.logits.argmax(-1).cpu()
        ids = encoded.inputs["input_ids"]
        for row, (record, reply, span) in enumerate(zip(batch, replies, encoded.reply_spans)):
            word_of_token = token_word_index(tokenizer, reply, record["cot"])
            image = (ids[row] == image_token).nonzero().flatten()
            for lookup, index, target in lookups(record):
                tokens = [span.start + t for t, word in enumerate(word_of_token) if word == index]
                query = tokens[-1] - 1  # the token whose logits give the word's last token
                kinds = parts(record, target)
                cells_of_part = [[cell for cell, kind in enumerate(kinds) if kind == name] for name in PARTS]
                result = found[lookup]
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
        summary.append({"lookup": lookup, "n": n, "read": round(result["read"] / n, 4),
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
