"""Does the model read the image? Its loss on held-out items with the right image and with another item's.

    python benchmarks/bench_image_reliance.py --data runs/synth/val.jsonl --out benchmarks/results/image_reliance.json

Teacher-forced loss on the reference replies (CoT and answer) of the split's records (or the
first `--items`), in `cot` mode, once with each record's own image and once with the images rotated by one record. A
model that ignores the image (the collapse recorded in BENCHMARKS.md) gives the same loss both
ways; one that reads it does worse with the wrong image.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from common import model_arguments, reference_replies, teacher_forced

from vskip.models import load_model
from vskip.models.vision_pretrain import DenseObjective, held_out_accuracy
from vskip.records import read_records
from vskip.training import IGNORE_INDEX, with_labels


@torch.inference_mode()
def reply_loss(loaded, records, base_dir: Path, shown: list[dict], batch_size: int) -> float:
    """Mean loss per reply token over `records`, the i-th shown the image(s) of `shown[i]`."""
    total, tokens = 0.0, 0
    pairs = [({**record, "image": other["image"]}, reply)
             for (record, reply), other in zip(reference_replies(records), shown)]
    for _, _, encoded in teacher_forced(loaded, pairs, base_dir, batch_size):
        batch = with_labels(encoded)
        count = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        total += float(loaded.model(**batch).loss) * count
        tokens += count
    return total / tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser)
    parser.add_argument("--data", required=True, help="a vskip-synth split the model did not train on")
    parser.add_argument("--items", type=int, help="default: every record")
    parser.add_argument("--out", default="benchmarks/results/image_reliance.json")
    args = parser.parse_args()

    records = read_records(args.data)[: args.items]  # [:None] is all
    base_dir = Path(args.data).parent
    loaded = load_model(args.model, device="cpu", dtype=args.dtype)
    right = reply_loss(loaded, records, base_dir, records, args.batch_size)
    shuffled = reply_loss(loaded, records, base_dir, records[1:] + records[:1], args.batch_size)
    result = {"model": args.model, "precision": loaded.precision, "data": args.data, "items": len(records),
              "loss_right_image": right, "loss_shuffled_image": shuffled}
    if args.model == "vskip-tiny":
        tower = DenseObjective(loaded.model.model.visual, loaded.model.config.get_text_config().hidden_size)
        result["tower_accuracy"] = held_out_accuracy(tower, loaded.processor, records, base_dir)
        print(f"vision tower, per image token: {result['tower_accuracy']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"loss with the right image {right:.4f}, with another item's {shuffled:.4f} ({len(records)} items)")


if __name__ == "__main__":
    main()
