"""A probe of what vskip-tiny can learn: vskip-synth's chains of thought rewritten as one-key lookups.

    python benchmarks/onekey_cots.py --data runs/synth --out runs/synth-onekey --families pope count
    vskip tiny train --data runs/synth-onekey --out runs/tiny-onekey
    python benchmarks/bench_accuracy.py --model runs/tiny-onekey --data runs/synth-onekey/val.jsonl

The shipped teacher reads what one key finds (a named item's price, the next object in reading
order) and fails where two keys must match at once (a colour-and-shape pair in its own list, the
object at a row and column; BENCHMARKS.md). This writes the same items with CoTs whose every
lookup takes one key:

- pope: between the list and the yes or no, the colours of every object of the asked shape
  ("The crosses are red, blue and blue."), so the decision looks for one colour in a short list;
- count, "How many red circles are there?": the colours of every circle, then the count;
- count, "How many other objects are the same colour as the star?": "The star is purple. The purple
  objects are a star, a triangle and a square. Without the star, that makes 2."

Ids, questions, answers, ground truth and images (linked, not copied) stay as they are, and so do
the other families' records; `visual_words` index the new CoTs. Measured (BENCHMARKS.md, "what was
tried"): naming every match of one key in order is not learned either.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vskip.records import Record, read_records, write_jsonl_atomic
from vskip.synth.words import PLURALS, Cot, article

SPLITS = ("train", "val", "test")
ONE_KEY_FAMILIES = ("pope", "count")
STAR_QUESTION = "How many other objects are the same colour as the star?"


def colours_of_shape(cot: Cot, scene: list[dict], shape: str) -> Cot:
    colours = [obj["colour"] for obj in scene if obj["shape"] == shape]
    if not colours:
        return cot.say(f"There are no {PLURALS[shape]}.")
    if len(colours) == 1:
        return cot.say("The").fact(shape, "shape").say("is").fact(colours[0], "colour").end()
    cot.say(f"The {PLURALS[shape]} are")
    return cot.series(colours, lambda c, colour: c.fact(colour, "colour")).end()


def resumed(record: Record) -> Cot:
    """The record's own CoT as a `Cot`, its visual words tagged as they were."""
    kinds = {visual["index"]: visual["type"] for visual in record["visual_words"]}
    cot = Cot()
    for i, word in enumerate(record["cot"].split()):
        cot.fact(word, kinds[i]) if i in kinds else cot.say(word)
    return cot


def one_key_cot(record: Record) -> Cot:
    """The record's CoT rewritten as one-key steps (pope and count; others as they were)."""
    scene = record.get("scene")
    if record["task"] == "pope":
        shape = record["question"].rstrip("?").split()[-1]
        old = resumed(record)
        cut = next(i for i, word in enumerate(old.words) if word.endswith(".")) + 1
        cot = Cot()
        cot.words, cot.types = old.words[:cut], old.types[:cut]
        colours_of_shape(cot, scene, shape)
        cot.words += old.words[cut:]
        cot.types += old.types[cut:]
        return cot
    if record["task"] == "count" and record["question"] == STAR_QUESTION:
        colour = next(obj["colour"] for obj in scene if obj["shape"] == "star")
        shapes = [obj["shape"] for obj in scene if obj["colour"] == colour]
        cot = Cot().say("The").fact("star", "shape").say("is").fact(colour, "colour").end()
        cot.say("The").fact(colour, "colour").say("objects are")
        cot.series(shapes, lambda c, shape: c.say(article(shape)).fact(shape, "shape")).end()
        return cot.say(f"Without the star, that makes {record['answer']}.")
    if record["task"] == "count":
        plural = record["question"].split()[3]  # How many <colour> <plural> are there?
        shape = next(s for s, p in PLURALS.items() if p == plural)
        return colours_of_shape(Cot(), scene, shape).say(f"That makes {record['answer']}.")
    return resumed(record)


def rewrite(record: Record, families: tuple[str, ...]) -> Record:
    if record["task"] not in families:
        return record
    cot = one_key_cot(record)
    return {**record, "cot": cot.text, "visual_words": cot.visual_words}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a directory written by `vskip synth`")
    parser.add_argument("--out", required=True)
    parser.add_argument("--families", nargs="+", choices=ONE_KEY_FAMILIES, default=list(ONE_KEY_FAMILIES))
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "images").exists():
        os.symlink((data / "images").resolve(), out / "images")
    for split in SPLITS:
        if (data / f"{split}.jsonl").is_file():
            records = read_records(data / f"{split}.jsonl")
            write_jsonl_atomic(out / f"{split}.jsonl", [rewrite(r, tuple(args.families)) for r in records])
            print(f"{out / f'{split}.jsonl'}: {len(records)} records")


if __name__ == "__main__":
    main()
