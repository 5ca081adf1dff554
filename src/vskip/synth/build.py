"""Items, splits and files: the seeded recipe that writes vskip-synth to disk."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from ..errors import BadInput
from ..records import write_jsonl_atomic
from ..settings import SYNTH_TEST, SYNTH_TRAIN, SYNTH_VAL
from .documents import doc_item, draw_document
from .scenes import POPE_CATEGORIES, count_item, draw_scene, pope_item, relate_item

FAMILIES: tuple[str, ...] = ("count", "relate", "doc", "pope")
SPLITS: tuple[str, ...] = ("train", "val", "test")


def make_item(
    family: str, rng: random.Random, item_id: str, *, category: str | None = None
) -> tuple[dict[str, Any], Image.Image]:
    """One record (everything but `image`) and its picture. `category` picks the POPE case
    (positive / random / popular / adversarial); by default it is drawn with POPE's 50/50 balance."""
    if family == "count":
        record, truth = count_item(rng)
    elif family == "relate":
        record, truth = relate_item(rng)
    elif family == "pope":
        if category is None:
            category = "positive" if rng.random() < 0.5 else rng.choice(POPE_CATEGORIES[1:])
        record, truth = pope_item(rng, category)
    elif family == "doc":
        record, document = doc_item(rng)
        return {"id": item_id, **record}, draw_document(document)
    else:
        raise BadInput(f"unknown synth family {family!r}; choose from {', '.join(FAMILIES)}")
    return {"id": item_id, **record}, draw_scene(truth)


def pope_categories(n: int, rng: random.Random) -> list[str]:
    """Exactly n // 2 positives (the odd one out is a negative); negatives split evenly, shuffled."""
    negatives = n - n // 2
    cats = ["positive"] * (n // 2) + [POPE_CATEGORIES[1 + i % 3] for i in range(negatives)]
    rng.shuffle(cats)
    return cats


def build(
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_train: int = SYNTH_TRAIN,
    n_val: int = SYNTH_VAL,
    n_test: int = SYNTH_TEST,
    families: Sequence[str] = FAMILIES,
    progress: bool = True,
) -> dict[str, Path]:
    """Write `out_dir/{train,val,test}.jsonl` and `out_dir/images/`; n_* count items per family.

    Each (split, family) has its own `random.Random`, seeded from (seed, split, family), so the
    splits are disjoint draws and a rerun with the same arguments writes byte-identical files.
    """
    for family in families:
        if family not in FAMILIES:
            raise BadInput(f"unknown synth family {family!r}; choose from {', '.join(FAMILIES)}")
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    if any(n < 0 for n in sizes.values()):
        raise BadInput("item counts must be zero or more")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=sum(sizes.values()) * len(families), desc="vskip-synth", disable=not progress)
    paths = {}
    for split in SPLITS:
        records = []
        for family in families:
            rng = random.Random(f"vskip-synth/{seed}/{split}/{family}")
            n = sizes[split]
            categories = pope_categories(n, rng) if family == "pope" else [None] * n
            for i, category in enumerate(categories):
                item_id = f"{split}-{family}-{i:05d}"
                record, image = make_item(family, rng, item_id, category=category)
                record["image"] = f"images/{item_id}.png"
                # Fixed PNG options and no metadata: identical bytes on every rerun.
                image.save(out_dir / record["image"], format="PNG", optimize=False, compress_level=6)
                records.append(_ordered(record))
                bar.update()
        paths[split] = out_dir / f"{split}.jsonl"
        write_jsonl_atomic(paths[split], records)
    bar.close()
    return paths


_ORDER = ("id", "image", "task", "question", "answer", "cot", "visual_words", "category", "scene", "document")


def _ordered(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in _ORDER if key in record}


def corpus_text(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Every question, CoT and answer text of the records: what the tokenizer is trained on."""
    for record in records:
        for field in ("question", "cot", "answer"):
            if record.get(field):
                yield str(record[field])
