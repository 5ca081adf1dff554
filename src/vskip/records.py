"""Records: JSONL datasets with images next to them, read strictly and written safely.

A record needs `id`, `image` (a path relative to the JSONL file, or a list of them) and
`question`; `answer` is needed wherever accuracy is measured. Every stage keeps the fields it
was given and adds its own, so files from one stage are the input of the next.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import BadInput

Record = dict[str, Any]

REQUIRED_FIELDS = ("id", "image", "question")


def read_records(path: str | Path, required: Iterable[str] = REQUIRED_FIELDS) -> list[Record]:
    """Read a JSONL file; each line one record with the `required` fields and a unique id."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"{path}: not UTF-8 text (byte {err.start}); re-save the file as UTF-8") from None
    records: list[Record] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise BadInput(f"{path}:{number}: invalid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise BadInput(f"{path}:{number}: a record must be a JSON object")
        for field in required:
            value = record.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise BadInput(f"{path}:{number}: record has no '{field}'")
        record["id"] = str(record["id"])
        if record["id"] in seen:
            raise BadInput(f"{path}:{number}: duplicate id {record['id']!r}")
        seen.add(record["id"])
        records.append(record)
    return records


def image_paths(record: Record, base: str | Path) -> list[Path]:
    """The record's image paths, resolved against the directory of its JSONL file."""
    images = record["image"] if isinstance(record["image"], list) else [record["image"]]
    return [Path(base) / image for image in images]


def load_image(path: str | Path) -> Image.Image:
    """Open an image as RGB; palette, alpha and 16-bit images are converted, broken ones rejected."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: image not found")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: image file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadInput(f"{path}: image is larger than Pillow's decompression-bomb limit") from None
    except OSError as err:
        raise BadInput(f"{path}: not a readable image ({err})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clip, so the picture survives.
        image = image.point(lambda value: value / 256).convert("L")
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def check_ratio(ratio: float) -> float:
    """γ, the kept share of CoT tokens, must lie in (0, 1]."""
    if not isinstance(ratio, (int, float)) or math.isnan(ratio) or not 0 < ratio <= 1:
        raise BadInput(f"ratio {ratio!r} is outside (0, 1]; pass a kept share such as 0.5")
    return float(ratio)


def write_jsonl_atomic(path: str | Path, records: Iterable[Record]) -> None:
    """Write all records at once: a reader never sees half a file, and an old file survives a crash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    with partial.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def iter_jsonl(path: str | Path) -> Iterator[Record]:
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
