"""A vskip dataset as another harness's task: today lmms-eval's, a local task its `--include_path` reads.

`export_lmms_eval` writes, into one directory, the items (`DATA_FILE`, one row per record: its id, family,
question, images and the whole record as JSON), the images (named by their content), a task YAML per γ asked
for, and the task's `utils.py`. The YAML's prompt is vskip's own (`prompts.instruction`, γ marker included) and
its hooks are `vskip.lmms_task`'s, imported by `utils.py`: the harness and `vskip evaluate` ask the same question
and score the reply with one implementation. What the harness's model class must be told to see the images as
vskip does (its pixel bounds) lives in the model's processor, not the task: `lmms_model_args` reads it.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from .errors import BadInput
from .files import write_atomic
from .media import load_image
from .metrics import ANLS_TASKS
from .prompts import AUTO, Budget, Mode, ratio_text
from .records import IMAGE_ROOT, Record, image_paths, write_jsonl_atomic
from .settings import MAX_NEW_TOKENS

FORMATS = ("lmms-eval",)
# lmms-eval's Qwen2-VL class hands its processor every image re-encoded as a JPEG of this quality
# (`Qwen2_VL._encode_image_data_url`); vskip hands it the pixels of the file.
HARNESS_JPEG_QUALITY = 85
DATA_FILE = "items.jsonl"
IMAGES = "images"
# The greedy decoding `vskip evaluate` does (`generate.decode`), as lmms-eval's generation_kwargs write it.
GREEDY = {"temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False}
UTILS = '''"""Written by `vskip data export`: this task's hooks are vskip's own (vskip.lmms_task), so lmms-eval and
`vskip evaluate` ask the same question and score a reply with one implementation."""

from pathlib import Path

from vskip import lmms_task

ROOT = Path(__file__).resolve().parent


def doc_to_visual(doc):
    return lmms_task.doc_to_visual(doc, ROOT)


doc_to_text = lmms_task.doc_to_text
process_results = lmms_task.process_results
pope_accuracy = lmms_task.pope_accuracy
pope_f1 = lmms_task.pope_f1
pope_yes_ratio = lmms_task.pope_yes_ratio
'''


def _marked(ratio: Budget | None) -> Budget | None:
    """The γ a task asks for: None (the full CoT, no marker) for None or γ ≥ 1."""
    return None if ratio is None or (ratio != AUTO and ratio >= 1.0) else ratio


def task_name(name: str, ratio: Budget | None) -> str:
    """The lmms-eval task of `name` at γ = `ratio`: `NAME_full` (no marker), `NAME_auto`, `NAME_r0_5`."""
    ratio = _marked(ratio)
    if ratio is None:
        return f"{name}_full"
    return f"{name}_{AUTO}" if ratio == AUTO else f"{name}_r{ratio_text(ratio).replace('.', '_')}"


def task_metrics(records: Sequence[Record]) -> list[str]:
    """The figures `vskip evaluate` reports for the families in `records`: accuracy always, ANLS where there are
    document items, POPE's accuracy, F1 and yes-ratio where there are POPE items."""
    families = {record.get("task") for record in records}
    return (["accuracy"] + (["anls"] if families & set(ANLS_TASKS) else [])
            + (["pope_accuracy", "pope_f1", "pope_yes_ratio"] if "pope" in families else []))


def task_yaml(name: str, data_file: Path, metrics: Sequence[str], *, mode: Mode, ratio: Budget | None,
              max_new_tokens: int) -> str:
    """One task's YAML. Strings are written as JSON, which YAML reads as they are."""
    aggregation = {"accuracy": "mean", "anls": "mean"}
    metric_list = "".join(
        f"  - metric: {metric}\n    aggregation: "
        + (aggregation[metric] if metric in aggregation else f"!function utils.{metric}")
        + "\n    higher_is_better: true\n"
        for metric in metrics
    )
    generation = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in
                         {"max_new_tokens": max_new_tokens, **GREEDY}.items())
    return (
        f"task: {json.dumps(name)}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data_file))}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        "doc_to_visual: !function utils.doc_to_visual\n"
        "doc_to_text: !function utils.doc_to_text\n"
        "doc_to_target: answer\n"
        f"generation_kwargs:\n{generation}"
        "process_results: !function utils.process_results\n"
        f"metric_list:\n{metric_list}"
        "lmms_eval_specific_kwargs:\n  default:\n"
        f"    mode: {json.dumps(mode)}\n    ratio: {json.dumps(ratio)}\n"
        "metadata:\n  - version: 1.0\n"
    )


def _copy_images(record: Record, base_dir: Path, images: Path) -> list[str]:
    """The record's images copied into `images` under names of their content; their paths from the task."""
    names = []
    for path in image_paths(record, base_dir):
        if not path.is_file():
            raise BadInput(f"record {record['id']!r}: image {path} not found")
        data = path.read_bytes()
        name = hashlib.sha256(data).hexdigest()[:32] + path.suffix.lower()
        if not (images / name).exists():
            write_atomic(images / name, data)  # a kill leaves no half image for the next run to take as whole
        names.append(f"{IMAGES}/{name}")
    return names


def export_lmms_eval(
    records: Sequence[Record],
    base_dir: str | Path,
    out: str | Path,
    *,
    ratios: Sequence[Budget | None] = (None,),
    name: str = "vskip",
    mode: Mode = "cot",
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> list[Path]:
    """Write `records` (images resolving from `base_dir`) as lmms-eval tasks into directory `out`, one per γ in
    `ratios` (None or 1: the full CoT, no marker; "auto"); return the YAML files, for `--include_path out`.

    Refused (`BadInput`): no records, a record with a video (lmms-eval's Qwen2-VL class reads a video from a
    file, vskip from frames), a task name that is not a Python-style identifier.
    """
    if not records:
        raise BadInput("no records to export")
    if not name.isidentifier():
        raise BadInput(f"task name {name!r}: use letters, digits and underscores (e.g. vskip_synth)")
    with_video = next((record["id"] for record in records if record.get("video")), None)
    if with_video is not None:
        raise BadInput(f"record {with_video!r} has a video, which the lmms-eval export does not carry; drop it")
    out, base_dir = Path(out), Path(base_dir)
    images = out / IMAGES
    images.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "id": str(record["id"]),
            "task": str(record.get("task") or "unknown"),
            "question": record["question"],
            "answer": str(record.get("answer", "")),
            "images": _copy_images(record, base_dir, images),
            # The whole record, as JSON text: the harness's table keeps one schema whatever fields a record has.
            "record": json.dumps(record, ensure_ascii=False),
        }
        for record in records
    ]
    data_file = (out / DATA_FILE).resolve()
    write_jsonl_atomic(data_file, rows)
    write_atomic(out / "utils.py", UTILS)
    metrics = task_metrics(records)
    written = []
    for ratio in dict.fromkeys(map(_marked, ratios)):
        task = task_name(name, ratio)
        path = out / f"{task}.yaml"
        write_atomic(path, task_yaml(task, data_file, metrics, mode=mode, ratio=ratio, max_new_tokens=max_new_tokens))
        written.append(path)
    return written


def lmms_model_args(model_dir: str | Path) -> str:
    """lmms-eval's `--model_args` for the Qwen2-VL checkpoint `model_dir`: `pretrained` and the image processor's
    own pixel bounds, which lmms-eval otherwise replaces by its own (3,136 to 602,112 pixels), so the model sees
    each image at the size `vskip evaluate` gives it."""
    model_dir = Path(model_dir)
    bounds = None
    for file in ("preprocessor_config.json", "processor_config.json"):
        if (model_dir / file).is_file():
            config = json.loads((model_dir / file).read_text())
            config = config.get("image_processor", config)
            size = config.get("size") or {}
            low = config.get("min_pixels", size.get("shortest_edge"))
            high = config.get("max_pixels", size.get("longest_edge"))
            if low and high:
                bounds = (low, high)
                break
    pixels = f",min_pixels={bounds[0]},max_pixels={bounds[1]}" if bounds else ""
    return f"pretrained={model_dir}{pixels}"


def harness_view(image: Image.Image) -> Image.Image:
    """The pixels lmms-eval's Qwen2-VL class gives its processor for `image`: RGB, through a JPEG of
    `HARNESS_JPEG_QUALITY` and back."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=HARNESS_JPEG_QUALITY)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def write_harness_view(records: Sequence[Record], base_dir: str | Path, out: str | Path) -> Path:
    """`records` as a vskip dataset `out` (a JSONL file, images beside it in lossless PNG) whose images hold the
    pixels lmms-eval's Qwen2-VL class sees (`harness_view`): `vskip evaluate` on it replies to what the harness
    asks, which tells the harness's JPEG apart from any other difference."""
    out = Path(out)
    images = out.parent / f"{out.stem}-images"
    images.mkdir(parents=True, exist_ok=True)
    viewed = []
    for record in records:
        names = []
        for index, path in enumerate(image_paths(record, base_dir)):
            name = f"{images.name}/{hashlib.sha256(str(record['id']).encode()).hexdigest()[:16]}-{index}.png"
            harness_view(load_image(path)).save(out.parent / name)
            names.append(name)
        viewed.append({**{k: v for k, v in record.items() if k != IMAGE_ROOT}, "image": names})
    write_jsonl_atomic(out, viewed)
    return out



def harness_replies(task_dir: str | Path, output_path: str | Path, task: str) -> dict[str, str]:
    """Record id -> reply, of the lmms-eval run on the task `task` of `task_dir` that wrote `output_path`
    (`--log_samples --output_path`); its samples name an item by its row (`doc_id`) in `DATA_FILE`."""
    rows = [json.loads(line) for line in (Path(task_dir) / DATA_FILE).read_text().splitlines()]
    found = sorted(Path(output_path).glob(f"*/*_samples_{task}.jsonl"))
    if not found:
        raise BadInput(f"{output_path}: no samples of task {task}; run lmms-eval with --log_samples")
    samples = [json.loads(line) for line in found[-1].read_text().splitlines()]
    return {rows[sample["doc_id"]]["id"]: sample["filtered_resps"] for sample in samples}
