"""The records a stage reads from a dataset file: the good ones, the bad ones refused or set aside.

What `vskip` commands read (each through `read_dataset`), and what an API caller can read the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .errors import BadInput
from .records import IMAGE_ROOT, REQUIRED_FIELDS, Record, check_records, read_records, write_jsonl_atomic


def read_dataset(
    path: str | Path,
    required: Iterable[str] = REQUIRED_FIELDS,
    *,
    images: str | Path | None = None,
    check_images: bool = True,
    needs_answer: bool = False,
    unique: tuple[str, ...] = ("id",),
    allow_outside_paths: bool = False,
    skipped_to: str | Path | None = None,
) -> tuple[list[Record], list[Record]]:
    """The good records of the JSONL file at `path` (`records.read_records`, then `records.check_records`), and the
    bad ones set aside: with `skipped_to`, each bad record is set aside (its line or id, and the reason) and all of
    them are written there, an empty file where none was bad (from the main process of a multi-process launch);
    without, the first bad one is refused (`BadInput`) and none is set aside.

    `images`: the directory every record's images are relative to, in place of where the file says (each record's
    `image_root` seen from the file, else the file's directory); `check_images`: whether to open them (not for a
    stage that reads no image). A file with no record left to work on is refused, before any work.
    """
    from .distributed import is_main_process

    skipped: list[Record] | None = [] if skipped_to is not None else None
    records = read_records(path, required, unique=unique, skipped=skipped)
    if images is not None:  # the override: every record's images are relative to `images`
        records = [{key: value for key, value in record.items() if key != IMAGE_ROOT} for record in records]
    base_dir = Path(images) if images is not None else Path(path).parent
    records = check_records(records, base_dir if check_images else None, needs_answer=needs_answer,
                            allow_outside_paths=allow_outside_paths, skipped=skipped)
    if not records:
        first = skipped[0]["reason"] if skipped else ""
        why = f"all {len(skipped)} were set aside as bad, the first: {first}" if skipped else "the file is empty"
        raise BadInput(f"{path}: no records to work on ({why})")
    if skipped_to is not None and is_main_process():
        write_jsonl_atomic(skipped_to, skipped)
    return records, skipped or []
