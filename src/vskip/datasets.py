"""Import Hugging Face benchmarks (DocVQA, MMMU, POPE) as vskip records: `<split>.jsonl` + `images/`.

Layouts, as lmms-eval reads them:

- docvqa (lmms-lab/DocVQA, config DocVQA): `questionId`, `question`, `answers` (list), `image`,
  `question_types`. The first answer is `answer`; all of them are `answers` when there are several.
- mmmu (MMMU/MMMU, one config per subject, or lmms-lab/MMMU with all of them): `id`, `question`
  with `<image k>` placeholders, `options` (a string holding a Python list), `answer` (a letter
  for multiple choice), `image_1` … `image_7`, `question_type`, `subfield`. The options are
  appended to the question as lines "A. text" (as lmms-eval prompts them) and kept as `options`;
  the images present are `image`, a list when there are several, image k of the list being
  `<image k>`. Open questions keep their answer text; a list of accepted answers becomes `answers`.
- pope (lmms-lab/POPE): `question_id`, `question`, `answer` (yes/no), `image`, `image_source`,
  `category` (random / popular / adversarial; in the `Full` config the split is the category).
  Ids are `<category>-<question_id>`, as question ids repeat across categories.

Images (PIL images or `{"bytes", "path"}` dicts) are saved as PNG under `images/`, named by their
content hash, so a picture shared by several questions is stored once.
"""

from __future__ import annotations

import ast
import hashlib
import io
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import BadInput
from .files import write_atomic
from .hub import is_hub_id
from .metrics import option_letters
from .records import Record, write_jsonl_atomic

KINDS = ("docvqa", "mmmu", "pope")
# The columns that identify a layout, checked in this order (MMMU also has `question`/`answer`).
LAYOUTS: dict[str, tuple[str, ...]] = {
    "mmmu": ("id", "question", "options", "answer", "image_1"),
    "docvqa": ("questionId", "question", "answers", "image"),
    "pope": ("question_id", "question", "answer", "image"),
}
POPE_CATEGORIES = ("random", "popular", "adversarial")
SPLITS = ("validation", "test", "train", "dev", "val", *POPE_CATEGORIES)
PREFERRED_SPLITS = ("validation", "test", "train")  # test answers are hidden in DocVQA and MMMU
HIDDEN_ANSWERS = ("", "?")  # what MMMU's test split holds instead of an answer
_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}

SaveImage = Callable[[Any], str]


def import_dataset(
    source: str | Path,
    out_dir: str | Path,
    *,
    kind: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    config: str | None = None,
    before_write: Callable[[Path], None] | None = None,
) -> Path:
    """Write `out_dir/<split>.jsonl` and `out_dir/images/*.png` from a dataset; return the JSONL path.

    `source` is a hub id or a local directory (or file) of parquet / arrow files (`hub.is_hub_id`: a name that
    starts with `.`, `/` or `~`, or has two `/`, is a path, never looked up on the hub); a local file's
    split is read from its name or folder as the hub names them (`validation-00000-of-00001.parquet`,
    `DocVQA/test-….parquet`). `split` defaults to validation, else test, else train, else the only
    one; `kind` (docvqa / mmmu / pope) is detected from the columns; `limit` keeps the first rows;
    `config` names a hub configuration (default: DocVQA for lmms-lab/DocVQA, every subject for
    MMMU/MMMU). `before_write` is called with the JSONL path once the split is known, before anything is
    written (the CLI checks there that the path holds no other run's work).
    """
    if kind is not None and kind not in KINDS:
        raise BadInput(f"unknown dataset kind {kind!r}; known kinds: {', '.join(KINDS)}")
    if limit is not None and limit < 0:
        raise BadInput(f"limit {limit} is negative")
    local = Path(source).expanduser()
    if not local.exists() and not is_hub_id(str(source)):
        raise BadInput(f"{source}: no such file or directory (a path, so not looked up on the hub)")
    dataset, split = _load_local(local, split) if local.exists() else _load_hub(str(source), split, config)
    kind = kind or detect_kind(dataset.column_names)
    missing = [column for column in LAYOUTS[kind] if column not in dataset.column_names]
    if missing:
        raise BadInput(f"{source}: a {kind} dataset needs the columns {', '.join(missing)}")
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    out_dir = Path(out_dir)
    path = out_dir / f"{split}.jsonl"
    if before_write is not None:
        before_write(path)
    save = _image_saver(out_dir)
    convert = {"docvqa": docvqa_record, "mmmu": mmmu_record, "pope": pope_record}[kind]
    records = [convert(row, save, split) for row in _undecoded(dataset)]
    seen: set[str] = set()
    for record in records:
        if record["id"] in seen:
            raise BadInput(f"{source}: duplicate id {record['id']!r} in split {split}")
        seen.add(record["id"])
    write_jsonl_atomic(path, records)
    return path


def detect_kind(columns: Iterable[str]) -> str:
    """The first layout whose identifying columns are all present."""
    columns = set(columns)
    for kind, needed in LAYOUTS.items():
        if columns.issuperset(needed):
            return kind
    known = "; ".join(f"{kind} ({', '.join(needed)})" for kind, needed in LAYOUTS.items())
    raise BadInput(f"unknown dataset layout with columns {', '.join(sorted(columns))}; known kinds: {known}")


def docvqa_record(row: dict[str, Any], save: SaveImage, split: str) -> Record:
    record: Record = {"id": str(row["questionId"]), "image": save(row["image"]), "task": "docvqa"}
    record["question"] = str(row["question"]).strip()
    _add_answers(record, [str(answer) for answer in row["answers"] or []])
    if row.get("question_types"):
        record["question_types"] = list(row["question_types"])
    return record


def mmmu_record(row: dict[str, Any], save: SaveImage, split: str) -> Record:
    record_id = str(row["id"])
    images = [save(row[f"image_{k}"]) for k in range(1, 8) if row.get(f"image_{k}") is not None]
    if not images:
        raise BadInput(f"record {record_id}: no image in image_1 … image_7")
    options = [str(option) for option in _python_list(row["options"], record_id)]
    record: Record = {"id": record_id, "image": images[0] if len(images) == 1 else images, "task": "mmmu"}
    question = str(row["question"]).strip()
    answer = str(row["answer"] or "").strip()
    if options:
        letters = option_letters(options)
        lines = "\n".join(f"{letter}. {option}" for letter, option in zip(letters, options, strict=True))
        record["question"] = f"{question}\n{lines}"
        record["options"] = options
        if answer in options and answer not in letters:
            answer = letters[options.index(answer)]
        if answer not in letters and answer not in HIDDEN_ANSWERS:
            raise BadInput(
                f"record {record_id}: answer {answer!r} is not one of the options {', '.join(letters)}"
            )
        _add_answers(record, [answer] if answer in letters else [])
    else:
        record["question"] = question
        answers = _python_list(answer, record_id) if answer.startswith("[") else [answer]
        _add_answers(record, [str(a) for a in answers if str(a) not in HIDDEN_ANSWERS])
    for key in ("question_type", "subfield"):
        if row.get(key):
            record[key] = row[key]
    return record


def pope_record(row: dict[str, Any], save: SaveImage, split: str) -> Record:
    category = row.get("category") or (split if split in POPE_CATEGORIES else None)
    question_id = str(row["question_id"])
    record: Record = {
        "id": f"{category}-{question_id}" if category else question_id,
        "image": save(row["image"]),
        "task": "pope",
        "question": str(row["question"]).strip(),
        "answer": str(row["answer"]).strip().lower(),
    }
    if category:
        record["category"] = category
    if row.get("image_source"):
        record["image_source"] = row["image_source"]
    return record


def _add_answers(record: Record, answers: list[str]) -> None:
    if answers:
        record["answer"] = answers[0]
    if len(answers) > 1:
        record["answers"] = answers


def _python_list(text: Any, record_id: str) -> list[Any]:
    """MMMU keeps lists as their Python text, "['a', 'b']"."""
    if isinstance(text, list):
        return text
    try:
        value = ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, list):
        raise BadInput(f"record {record_id}: {str(text)[:60]!r} is not a list")
    return value


def _image_saver(out_dir: Path) -> SaveImage:
    def save(value: Any) -> str:
        png = _png_bytes(value)
        name = f"images/{hashlib.sha256(png).hexdigest()[:20]}.png"
        target = out_dir / name
        if not target.exists():
            write_atomic(target, png)
        return name

    return save


def _png_bytes(value: Any) -> bytes:
    """PNG bytes of a PIL image or a {"bytes", "path"} dict; PNG input is kept byte for byte."""
    if isinstance(value, Image.Image):
        image = value
    else:
        data = value.get("bytes") if isinstance(value, dict) else None
        path = value.get("path") if isinstance(value, dict) else None
        if data is None and path and Path(path).is_file():
            data = Path(path).read_bytes()
        if data is None:
            raise BadInput(f"an image is neither a picture nor bytes nor a readable path: {str(value)[:80]}")
        if data.startswith(_PNG):
            return data
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except OSError as err:
            raise BadInput(f"an image is not readable ({err})") from None
    if image.mode not in _PNG_MODES:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _undecoded(dataset):
    """Image columns as {"bytes", "path"}: PNG bytes are copied, not decoded and encoded again."""
    import datasets

    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            dataset = dataset.cast_column(name, datasets.Image(decode=False))
    return dataset


def _split_of(file: Path, root: Path) -> str:
    """A data file's split as the hub names files: `<split>-00000-of-00001.parquet` or `<split>/…`."""
    token = file.name.split("-")[0].split(".")[0]
    if token in SPLITS:
        return token
    for parent in file.relative_to(root).parents:
        if parent.name in SPLITS:
            return parent.name
    return token


def _pick_split(names: Iterable[str], source: str) -> str:
    names = sorted(set(names))
    if len(names) == 1:
        return names[0]
    for name in PREFERRED_SPLITS:
        if name in names:
            return name
    raise BadInput(f"{source} has the splits {', '.join(names)}; choose one with split=")


def _load_local(path: Path, split: str | None):
    import datasets

    files = [path] if path.is_file() else sorted(path.rglob("*"))
    files = [file for file in files if file.suffix in (".parquet", ".arrow")]
    if not files:
        raise BadInput(f"{path}: no .parquet or .arrow files")
    by_split: dict[str, list[Path]] = defaultdict(list)
    for file in files:
        by_split[_split_of(file, path if path.is_dir() else path.parent)].append(file)
    if path.is_file() or not by_split.keys() & set(SPLITS):
        # One file, or files not named by split (`data-00000-of-00001.arrow`): all one split.
        by_split = {split or (next(iter(by_split)) if len(by_split) == 1 else "train"): files}
    split = split or _pick_split(by_split, str(path))
    if split not in by_split:
        raise BadInput(f"{path} has no split {split!r}; it has {', '.join(sorted(by_split))}")
    chosen = by_split[split]
    formats = {file.suffix for file in chosen}
    if len(formats) > 1:
        raise BadInput(f"{path}: split {split} mixes parquet and arrow files")
    try:
        dataset = datasets.load_dataset(formats.pop()[1:], data_files=[str(f) for f in chosen], split="train")
    except (OSError, ValueError) as err:
        raise BadInput(f"{path}: cannot read split {split} ({str(err).splitlines()[0]})") from None
    return dataset, split


def _load_hub(source: str, split: str | None, config: str | None):
    import datasets

    try:
        if config is not None:
            configs = [config]
        elif source.lower() == "lmms-lab/docvqa":
            configs = ["DocVQA"]
        elif source.lower() == "mmmu/mmmu":
            configs = datasets.get_dataset_config_names(source)
        else:
            configs = [None]
        split = split or _pick_split(datasets.get_dataset_split_names(source, configs[0]), source)
        parts = [datasets.load_dataset(source, name, split=split) for name in configs]
    except (OSError, ValueError) as err:
        raise BadInput(
            f"{source}: not a local path, and the hub cannot give it ({str(err).splitlines()[0]})"
        ) from None
    return (parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)), split
