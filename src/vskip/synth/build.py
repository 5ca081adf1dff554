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
from .style import COT_STYLES, CotStyle, cot_fields

FAMILIES: tuple[str, ...] = ("count", "relate", "doc", "pope")
SPLITS: tuple[str, ...] = ("train", "val", "test")


def make_item(
    family: str,
    rng: random.Random,
    item_id: str,
    *,
    category: str | None = None,
    cot_style: CotStyle = "natural",
    dressing: random.Random | None = None,
) -> tuple[dict[str, Any], Image.Image]:
    """One record (everything but `image`) and its picture. `category` picks the POPE case
    (positive / random / popular / adversarial); by default it is drawn with POPE's 50/50 balance.

    The item is drawn from `rng` alone, whatever the style; a natural CoT's dressing is drawn from
    `dressing` (default: seeded by `item_id`), so the item is its terse twin's."""
    record, truth = draw_item(family, rng, category)
    dressing = random.Random(f"{item_id}/style") if dressing is None else dressing
    return {"id": item_id, **record, **cot_fields(record.pop("cot"), cot_style, dressing)}, picture(family, truth)


def draw_item(family: str, rng: random.Random, category: str | None = None) -> tuple[dict[str, Any], Any]:
    """One item drawn from `rng`: its record, whose `cot` is still the terse `Cot` (with its slots), and
    its ground truth (the scene or the document)."""
    if family == "count":
        return count_item(rng)
    if family == "relate":
        return relate_item(rng)
    if family == "pope":
        if category is None:
            category = "positive" if rng.random() < 0.5 else rng.choice(POPE_CATEGORIES[1:])
        return pope_item(rng, category)
    if family == "doc":
        return doc_item(rng)
    raise BadInput(f"unknown synth family {family!r}; choose from {', '.join(FAMILIES)}")


def picture(family: str, truth: Any) -> Image.Image:
    return draw_document(truth) if family == "doc" else draw_scene(truth)


def pope_categories(n: int, rng: random.Random) -> list[str]:
    """Exactly n // 2 positives (the odd one out is a negative); negatives split evenly, shuffled."""
    negatives = n - n // 2
    cats = ["positive"] * (n // 2) + [POPE_CATEGORIES[1 + i % 3] for i in range(negatives)]
    rng.shuffle(cats)
    return cats


def split_items(
    family: str, split: str, n: int, seed: int = 0
) -> Iterator[tuple[str, dict[str, Any], Any, random.Random]]:
    """The `n` items of one family in one split, as `build` writes them: (id, the record from
    `draw_item`, its ground truth, the `random.Random` its natural dressing is drawn from).

    Each (split, family) has its own `random.Random`, seeded from (seed, split, family), so the splits
    are disjoint draws; each item's dressing has its own, so both CoT styles draw the same items."""
    rng = random.Random(f"vskip-synth/{seed}/{split}/{family}")
    categories = pope_categories(n, rng) if family == "pope" else [None] * n
    for i, category in enumerate(categories):
        item_id = f"{split}-{family}-{i:05d}"
        record, truth = draw_item(family, rng, category)
        yield item_id, record, truth, random.Random(f"vskip-synth/{seed}/{item_id}/style")


def build(
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_train: int = SYNTH_TRAIN,
    n_val: int = SYNTH_VAL,
    n_test: int = SYNTH_TEST,
    families: Sequence[str] = FAMILIES,
    cot_style: CotStyle = "natural",
    progress: bool = True,
) -> dict[str, Path]:
    """Write `out_dir/{train,val,test}.jsonl` and `out_dir/images/`; n_* count items per family.

    The files are a function of the arguments (`split_items`): a rerun writes byte-identical files.
    `cot_style` writes the reference CoTs as real models do ("natural", `synth.style`) or as the
    bare walk ("terse"); both styles draw the same items and images, and "terse" writes what
    vskip-synth wrote before the natural style existed.
    """
    if cot_style not in COT_STYLES:
        raise BadInput(f"unknown CoT style {cot_style!r}; choose from {', '.join(COT_STYLES)}")
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
            for item_id, record, truth, dressing in split_items(family, split, sizes[split], seed):
                cot = record.pop("cot")
                record = {"id": item_id, "image": f"images/{item_id}.png", **record,
                          **cot_fields(cot, cot_style, dressing)}
                # Fixed PNG options and no metadata: identical bytes on every rerun.
                picture(family, truth).save(out_dir / record["image"], format="PNG", optimize=False,
                                            compress_level=6)
                records.append(_ordered(record))
                bar.update()
        paths[split] = out_dir / f"{split}.jsonl"
        write_jsonl_atomic(paths[split], records)
    bar.close()
    return paths


_ORDER = ("id", "image", "task", "question", "answer", "cot", "visual_words", "roles", "essential", "category",
          "scene", "document")


def _ordered(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in _ORDER if key in record}


def corpus_text(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Every question, CoT and answer text of the records: what the tokenizer is trained on."""
    for record in records:
        for field in ("question", "cot", "answer"):
            if record.get(field):
                yield str(record[field])
