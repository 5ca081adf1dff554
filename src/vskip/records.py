"""Records: JSONL datasets with images next to them, read strictly and written safely. Opening the images is
`media`'s job; γ's check is `prompts.check_ratio`, beside the marker that writes γ.

A record needs `id`, `image` (a path relative to the JSONL file, or a list of them) and
`question`; `answer` is needed wherever accuracy is measured. A record may show a video as well
as, or instead of, images: `video`, the list of its frames' paths, relative as `image`'s are.
Every stage keeps the fields it was given and adds its own, so files from one stage are the
input of the next.

Image paths follow the data: a record's images (and video frames) resolve from the file that
holds it. A stage that writes records into another directory does not rewrite `image` but
records, in `image_root`, where the dataset's directory is seen from the new file (`relocate`):
the paths stay relative to the dataset, and the output works wherever it is written.

A dataset is untrusted input: `read_records` turns every defect of the file into `BadInput`
naming the line, and `check_records` every defect of a record (images or frames that are
missing, broken, or outside the dataset's directory, its `image_root`; frames of differing
sizes; a chain of thought without an answer) into `BadInput` naming the record. Given a
`skipped` list, both set bad records aside there instead, each with the reason alone: what to do is then moot.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import BadInput, BadRecord
from .files import atomic_path
from .prompts import cot_answer

Record = dict[str, Any]

REQUIRED_FIELDS = ("id", "image", "question")
# Fields that hold paths under the dataset's directory: images, and one video's frames. A record's need for
# an `image` is met by a `video` too: both are what the model sees.
VISUAL_FIELDS = ("image", "video")
# Where a record's image paths are relative to, seen from the file that holds it (default: that file's directory).
IMAGE_ROOT = "image_root"
# Fields whose type the stages rely on, checked wherever they appear.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str, int),
    "image": (str, list),
    "video": (list,),
    IMAGE_ROOT: (str,),
    "question": (str,),
    "cot": (str,),
    "compressed_cot": (str,),
    "method": (str,),
    "ratio": (int, float),
    "words": (list,),
}
# The stages whose output a later one reads, in pipeline order, each with the field it adds that the next one
# needs, and the field that marks a record as its output (a dataset may bring a reference `cot`, not a `prediction`).
STAGE_ADDS = {"generate": "cot", "score": "words", "compress": "compressed_cot"}
STAGE_MARKS = {"generate": "prediction", "score": "words", "compress": "compressed_cot"}


def read_records(
    path: str | Path,
    required: Iterable[str] = REQUIRED_FIELDS,
    *,
    unique: tuple[str, ...] = ("id",),
    skipped: list[Record] | None = None,
) -> list[Record]:
    """Read a JSONL file; each line one JSON object with the `required` fields, unique in its `unique`
    fields (the id; a compressed file has one record per id, method and ratio).

    Raises `BadInput` naming the file and line of the first bad one, or, given a `skipped` list,
    appends `{"line", "id", "reason"}` there for each bad line and returns the good records.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    required = tuple(required)
    records: list[Record] = []
    seen: set[tuple] = set()
    # Read as utf-8-sig reads: a byte-order mark (some Windows editors begin UTF-8 with one) is no part of line 1.
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            record = _parse_line(raw, required, unique, seen)
        except BadInput as err:
            if skipped is None:
                raise BadInput(f"{path}:{number}: {err}") from None
            skipped.append({"line": number, "id": _id_of(raw), "reason": reason_of(err)})
            continue
        if record is not None:
            seen.add(_key(record, unique))
            records.append(record)
    return records


def _parse_line(raw: bytes, required: tuple[str, ...], unique: tuple[str, ...], seen: set[tuple]) -> Record | None:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"not UTF-8 text (byte {err.start}); re-save the file as UTF-8") from None
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise BadRecord(f"invalid JSON: {_json_problem(err)}") from None
    except ValueError as err:  # a number too long to convert
        raise BadRecord(f"invalid JSON ({err})") from None
    except RecursionError:
        raise BadRecord("invalid JSON (nested too deeply)") from None
    if not isinstance(record, dict):
        raise BadRecord("a record must be a JSON object")
    require_fields(record, required)
    for field, types in FIELD_TYPES.items():
        if record.get(field) is not None and (not isinstance(record[field], types) or isinstance(record[field], bool)):
            names = " or ".join(dict.fromkeys({str: "string", int: "number", float: "number"}.get(t, t.__name__)
                                              for t in types))
            raise BadRecord(f"'{field}' must be a {names}")
    if isinstance(record.get("image"), list) and not all(isinstance(image, str) for image in record["image"]):
        raise BadRecord("'image' must be a path or a list of paths")
    if not all(isinstance(frame, str) for frame in record.get("video") or []):
        raise BadRecord("'video' must be a list of frame paths")
    if "id" in record:
        record["id"] = str(record["id"])
    if _key(record, unique) in seen:
        what = ", ".join(f"{field} {record.get(field)!r}" for field in unique)
        if written_by(record) == "compress" and "method" not in unique:
            # One compressed line per method and γ of each item: the file is a later stage's than this command's.
            raise BadInput(f"duplicate {what}: the file was written by 'vskip compress' (a line per method and γ of "
                           "each item), which only 'vskip distill' reads")
        raise BadInput(f"duplicate {what}; give every record its own {' and '.join(unique)}")
    return record


def require_fields(record: Record, fields: Iterable[str], *, named: bool = False) -> None:
    """Raise `BadInput` for the first of `fields` the record lacks or has empty: what the CLI refuses when
    reading a file, the API refuses in the records it is handed (`named`: the message names the record).
    A field that a stage adds is wanting because the file is another stage's (or a dataset): the message says whose."""
    for field in fields:
        value, name = record.get(field), f"'{field}'"
        if field == "image":  # a video meets the need too: either is what the model sees
            value, name = value or record.get("video"), "'image' or 'video'"
        if value is None or value == [] or (isinstance(value, str) and not value.strip()):
            subject = f"record {record.get('id')!r}" if named else "record"
            needed = next((stage for stage, adds in STAGE_ADDS.items() if adds == field), None)
            if needed and _earlier(written_by(record), needed):
                raise BadInput(f"{subject} has no {name}: {wrong_stage(record, needed)}")
            raise BadRecord(f"{subject} has no {name} (or it is empty)")


def written_by(record: Record) -> str | None:
    """The stage whose output `record` is (the last in the pipeline that marked it); None for a dataset's record."""
    return next((stage for stage, mark in reversed(STAGE_MARKS.items()) if record.get(mark) is not None), None)


def _earlier(origin: str | None, needed: str) -> bool:
    """Whether a record written by `origin` (None: a dataset) has yet to go through stage `needed`."""
    stages = list(STAGE_ADDS)
    return origin is None or stages.index(origin) < stages.index(needed)


def wrong_stage(record: Record, needed: str) -> str:
    """Whose output `record` is, where stage `needed`'s is wanted, and which stages to run on its file first."""
    stages, origin = list(STAGE_ADDS), written_by(record)
    to_run = stages[stages.index(origin) + 1 if origin else 0 : stages.index(needed) + 1]
    source = f"it was written by 'vskip {origin}', not by" if origin else "it is a dataset's record, not written by"
    run = ", then ".join(f"'vskip {stage}'" for stage in to_run)
    return f"{source} 'vskip {needed}'; run {run} on the file first, and pass the output"


def reason_of(err: BadInput) -> str:
    """What is wrong, without what to do where that is only to fix the record or set it aside (`BadRecord`)."""
    return err.reason if isinstance(err, BadRecord) else str(err)


def _json_problem(err: json.JSONDecodeError) -> str:
    """The decoder's message made whole: "Unterminated string starting at" gets the column it stops at."""
    return f"{err.msg[:1].lower()}{err.msg[1:].removesuffix(' at')} at column {err.colno}"


def _key(record: Record, unique: tuple[str, ...]) -> tuple:
    return tuple(json.dumps(record.get(field), sort_keys=True) for field in unique)


def _id_of(raw: bytes) -> str | None:
    try:
        record = json.loads(raw)
        return str(record["id"]) if isinstance(record, dict) and record.get("id") is not None else None
    except (ValueError, RecursionError):
        return None


def _listed(record: Record, field: str) -> list[str]:
    value = record.get(field)
    return value if isinstance(value, list) else [value] if value else []


def image_root(record: Record, base: str | Path) -> Path:
    """The dataset's directory of a record held by a file in `base`: `base` itself, or the record's `image_root`
    seen from there (a stage's output written elsewhere)."""
    return Path(base) / record.get(IMAGE_ROOT, ".")


def image_paths(record: Record, base: str | Path, field: str = "image") -> list[Path]:
    """The record's image paths (with `field="video"`, its video's frames), resolved against its dataset's
    directory (`image_root`) from `base`, the directory of its JSONL file."""
    root = image_root(record, base)
    return [root / image for image in _listed(record, field)]


def check_image_paths(
    record: Record, base: str | Path, field: str = "image", *, allow_outside: bool = False
) -> list[Path]:
    """`image_paths`, refusing any that leads out of the dataset's directory: `..`, an absolute path, or a
    symlink pointing elsewhere (a dataset could otherwise make a stage read any file it can reach).

    The dataset's directory is the record's `image_root`, which a stage writes relative to its output,
    so an absolute one is refused too.
    """
    paths = image_paths(record, base, field)
    if allow_outside:
        return paths
    declared = str(record.get(IMAGE_ROOT, "."))
    if "\x00" in declared or Path(declared).is_absolute():
        raise BadInput(f"image_root {declared!r} is not a relative path; make it one or pass --allow-outside-paths")
    root = image_root(record, base).resolve()
    for image, path in zip(_listed(record, field), paths):
        if "\x00" in image or not path.resolve().is_relative_to(root):
            raise BadInput(
                f"{field} {image!r} leads outside the dataset's directory; "
                "move it inside or pass --allow-outside-paths"
            )
    return paths


def relocate(records: Iterable[Record], base: str | Path, out_dir: str | Path) -> list[Record]:
    """The records as a file in `out_dir` must hold them, when a file in `base` held them: each `image_root`
    points from `out_dir` to the dataset's directory, so the images resolve from the new file.

    Paths are compared resolved (symlinks followed), as the operating system follows `..` from the real directory.
    """
    target = Path(out_dir).resolve()
    moved = []
    for record in records:
        if any(_listed(record, field) for field in VISUAL_FIELDS):
            root = os.path.relpath(image_root(record, base).resolve(), target)
            record = {**record, IMAGE_ROOT: Path(root).as_posix()}
        moved.append(record)
    return moved


def check_records(
    records: list[Record],
    base: str | Path | None,
    *,
    needs_answer: bool = False,
    allow_outside_paths: bool = False,
    skipped: list[Record] | None = None,
) -> list[Record]:
    """The records whose images and video open (inside `base`; not checked without one) and, with `needs_answer`,
    whose chain of thought has an answer (`prompts.cot_answer`).

    Raises `BadInput` naming the first bad record, or, given a `skipped` list, appends
    `{"id", "reason"}` there for each bad record and returns the good ones.
    """
    from .media import load_image, load_video  # Pillow is imported where images are opened, not by every reader

    good = []
    for record in records:
        try:
            if base:
                for path in check_image_paths(record, base, allow_outside=allow_outside_paths):
                    load_image(path)
                load_video(check_image_paths(record, base, "video", allow_outside=allow_outside_paths))
            if needs_answer and cot_answer(record) is None:
                raise BadRecord("the chain of thought has no answer", "generate it again")
        except BadInput as err:
            if skipped is None:
                raise BadInput(f"record {record['id']!r}: {err}") from None
            skipped.append({"id": record["id"], "reason": reason_of(err)})
            continue
        good.append(record)
    return good


def write_jsonl_atomic(path: str | Path, records: Iterable[Record]) -> None:
    """Write all records at once (`files.atomic_path`): a reader never sees half a file, and an old file survives."""
    with atomic_path(path) as partial, partial.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def iter_jsonl(path: str | Path) -> Iterator[Record]:
    with Path(path).open(encoding="utf-8-sig") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
