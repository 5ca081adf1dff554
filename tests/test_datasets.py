from __future__ import annotations

import io
import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vskip.datasets import detect_kind, import_dataset
from vskip.errors import BadInput
from vskip.media import load_image
from vskip.records import image_paths, read_records


@pytest.fixture(autouse=True)
def private_hf_cache(tmp_path, monkeypatch):
    """Keep the datasets library's cache of the test files out of the user's home."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def picture(colour: str, size=(12, 8), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def image_feature(count: int = 1):
    return {f"image_{k}" if count > 1 else "image": datasets.Image() for k in range(1, count + 1)}


def write_parquet(path, columns: dict, features: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).to_parquet(str(path))


DOCVQA_FEATURES = {
    "questionId": datasets.Value("string"),
    "question": datasets.Value("string"),
    "question_types": datasets.Sequence(datasets.Value("string")),
    "image": datasets.Image(),
    "docId": datasets.Value("int64"),
    "answers": datasets.Sequence(datasets.Value("string")),
}


def docvqa_source(root):
    write_parquet(
        root / "DocVQA" / "validation-00000-of-00001.parquet",
        {
            "questionId": ["49153", "24581", "57349"],
            "question": ["What is the date?", "Who signed it?", "What is the total?"],
            "question_types": [["handwritten"], ["layout"], []],
            "image": [
                {"bytes": picture("white"), "path": None},
                {"bytes": picture("white"), "path": None},
                {"bytes": picture("grey"), "path": None},
            ],
            "docId": [14465, 14465, 2],
            "answers": [["1/8/93", "January 8, 1993"], ["J. Smith"], ["$4.50"]],
        },
        DOCVQA_FEATURES,
    )
    write_parquet(  # the test split hides its answers
        root / "DocVQA" / "test-00000-of-00001.parquet",
        {
            "questionId": ["1"],
            "question": ["What?"],
            "question_types": [None],
            "image": [{"bytes": picture("black"), "path": None}],
            "docId": [1],
            "answers": [None],
        },
        DOCVQA_FEATURES,
    )
    return root


MMMU_FEATURES = {
    **{name: datasets.Value("string") for name in ("id", "question", "options", "explanation", "answer")},
    **{f"image_{k}": datasets.Image() for k in range(1, 8)},
    **{
        name: datasets.Value("string")
        for name in ("img_type", "topic_difficulty", "question_type", "subfield")
    },
}


def mmmu_source(root):
    rows = [
        {
            "id": "validation_Art_1",
            "question": "Compare <image 1> and <image 2>. Which is warmer?",
            "options": "['the left', 'the right', 'neither']",
            "answer": "B",
            "image_1": {"bytes": picture("blue"), "path": None},
            "image_2": {"bytes": picture("red"), "path": None},
            "question_type": "multiple-choice",
            "subfield": "Painting",
        },
        {
            "id": "validation_Math_3",
            "question": "<image 1> What is x?",
            "options": "[]",
            "answer": "['2', '2.0']",
            "image_1": {"bytes": picture("green"), "path": None},
            "question_type": "open",
            "subfield": "Algebra",
        },
    ]
    columns = {name: [row.get(name) for row in rows] for name in MMMU_FEATURES}
    write_parquet(root / "data" / "validation-00000-of-00001.parquet", columns, MMMU_FEATURES)
    return root


def pope_source(root):
    """lmms-lab/POPE as plain pyarrow writes it: images are {bytes, path} structs without HF metadata."""
    root.mkdir(parents=True)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "id": ["0", "1", "2"],
            "question_id": ["1", "1", "2"],
            "question": ["Is there a dog in the image?", "Is there a car in the image?", "Is there a cup?"],
            "answer": ["yes", "no", "No"],
            "image_source": ["COCO_val2014_000000310196", "COCO_val2014_000000310196", "COCO_val2014_1"],
            "image": pa.array(
                [
                    {"bytes": picture("red", fmt="JPEG"), "path": "a.jpg"},
                    {"bytes": picture("red", fmt="JPEG"), "path": "a.jpg"},
                    {"bytes": picture("blue", fmt="JPEG"), "path": "b.jpg"},
                ],
                type=image,
            ),
            "category": ["random", "adversarial", "popular"],
        }
    )
    pq.write_table(table, root / "test-00000-of-00001.parquet")
    return root


def test_docvqa_import_carries_every_reference(tmp_path):
    path = import_dataset(docvqa_source(tmp_path / "src"), tmp_path / "out")
    assert path == tmp_path / "out" / "validation.jsonl"
    records = read_records(path, required=("id", "image", "question", "answer"))
    assert [r["id"] for r in records] == ["49153", "24581", "57349"]
    first = records[0]
    assert first["task"] == "docvqa" and first["question"] == "What is the date?"
    assert first["answer"] == "1/8/93" and first["answers"] == ["1/8/93", "January 8, 1993"]
    assert first["question_types"] == ["handwritten"]
    assert records[1]["answer"] == "J. Smith" and "answers" not in records[1]
    # one page, two questions: stored once
    assert records[0]["image"] == records[1]["image"] != records[2]["image"]
    assert len(list((tmp_path / "out" / "images").glob("*.png"))) == 2
    assert (path.parent / first["image"]).read_bytes() == picture("white")  # PNG copied, not re-encoded
    image = load_image(image_paths(first, path.parent)[0])
    assert image.size == (12, 8) and image.getpixel((0, 0)) == (255, 255, 255)


def test_split_and_limit(tmp_path):
    source = docvqa_source(tmp_path / "src")
    path = import_dataset(source, tmp_path / "out", split="test")
    (record,) = read_records(path)
    assert path.name == "test.jsonl" and "answer" not in record
    path = import_dataset(source, tmp_path / "few", split="validation", limit=1, kind="docvqa")
    assert len(read_records(path)) == 1
    with pytest.raises(BadInput, match="no split 'train'"):
        import_dataset(source, tmp_path / "out", split="train")


def test_mmmu_import_keeps_options_letters_and_all_images(tmp_path):
    path = import_dataset(mmmu_source(tmp_path / "src"), tmp_path / "out")
    choice, open_ended = read_records(path)
    assert choice["task"] == "mmmu" and choice["answer"] == "B"
    assert choice["options"] == ["the left", "the right", "neither"]
    assert choice["question"] == (
        "Compare <image 1> and <image 2>. Which is warmer?\nA. the left\nB. the right\nC. neither"
    )
    assert isinstance(choice["image"], list) and len(choice["image"]) == 2
    colours = [load_image(p).getpixel((0, 0)) for p in image_paths(choice, path.parent)]
    assert colours == [(0, 0, 255), (255, 0, 0)]  # image_1 first
    assert choice["question_type"] == "multiple-choice" and choice["subfield"] == "Painting"
    assert open_ended["answer"] == "2" and open_ended["answers"] == ["2", "2.0"]
    assert "options" not in open_ended and isinstance(open_ended["image"], str)


def test_pope_import_from_plain_arrow_structs(tmp_path):
    path = import_dataset(pope_source(tmp_path / "src"), tmp_path / "out")
    assert path.name == "test.jsonl"
    records = read_records(path, required=("id", "image", "question", "answer", "category"))
    assert [r["id"] for r in records] == ["random-1", "adversarial-1", "popular-2"]
    assert [r["answer"] for r in records] == ["yes", "no", "no"]
    assert {r["task"] for r in records} == {"pope"}
    assert records[0]["image_source"] == "COCO_val2014_000000310196"
    png = (path.parent / records[0]["image"]).read_bytes()
    assert png.startswith(b"\x89PNG")  # JPEG converted
    assert load_image(path.parent / records[2]["image"]).size == (12, 8)


def test_pope_full_config_takes_the_category_from_the_split(tmp_path):
    features = {
        "question_id": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "image": datasets.Image(),
    }
    for category in ("adversarial", "popular"):
        write_parquet(
            tmp_path / "src" / "Full" / f"{category}-00000-of-00001.parquet",
            {
                "question_id": ["7"],
                "question": ["Is there a cat?"],
                "answer": ["no"],
                "image": [{"bytes": picture("red"), "path": None}],
            },
            features,
        )
    with pytest.raises(BadInput, match="adversarial, popular"):
        import_dataset(tmp_path / "src", tmp_path / "out")
    path = import_dataset(tmp_path / "src", tmp_path / "out", split="popular")
    (record,) = read_records(path)
    assert record["category"] == "popular" and record["id"] == "popular-7"


def test_a_single_arrow_file_with_pil_images(tmp_path):
    dataset = datasets.Dataset.from_dict(
        {
            "question_id": ["1"],
            "question": ["Is there a dog?"],
            "answer": ["Yes"],
            "image": [Image.new("L", (5, 5), 128)],
        },
        features=datasets.Features(
            {
                "question_id": datasets.Value("string"),
                "question": datasets.Value("string"),
                "answer": datasets.Value("string"),
                "image": datasets.Image(),
            }
        ),
    )
    dataset.save_to_disk(str(tmp_path / "saved"))
    (arrow,) = (tmp_path / "saved").glob("*.arrow")
    path = import_dataset(arrow, tmp_path / "out", split="test")
    (record,) = read_records(path)
    assert (
        record["answer"] == "yes" and load_image(path.parent / record["image"]).getpixel((0, 0)) == (128,) * 3
    )


def test_unknown_layouts_and_kinds_are_bad_input(tmp_path):
    write_parquet(
        tmp_path / "src" / "train.parquet",
        {"text": ["hi"], "label": [1]},
        {"text": datasets.Value("string"), "label": datasets.Value("int64")},
    )
    with pytest.raises(BadInput, match="columns label, text; known kinds: mmmu"):
        import_dataset(tmp_path / "src", tmp_path / "out")
    with pytest.raises(BadInput, match="needs the columns"):
        import_dataset(tmp_path / "src", tmp_path / "out", kind="pope")
    with pytest.raises(BadInput, match="unknown dataset kind"):
        import_dataset(tmp_path / "src", tmp_path / "out", kind="vqa")
    with pytest.raises(BadInput, match="no .parquet"):
        (tmp_path / "empty").mkdir()
        import_dataset(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source", ["/nonexistent", "./data", "~/nonexistent-dataset", "org/name/extra"])
def test_an_absent_path_is_refused_without_asking_the_hub(source, tmp_path, monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("the hub was asked")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    monkeypatch.setattr(datasets, "get_dataset_split_names", no_hub)
    with pytest.raises(BadInput, match="no such file or directory \\(a path, so not looked up on the hub\\)"):
        import_dataset(source, tmp_path / "out")


def test_detect_kind_prefers_the_most_specific_layout():
    assert detect_kind(["id", "question", "options", "answer", "image_1", "image_2"]) == "mmmu"
    assert detect_kind(["questionId", "question", "answers", "image", "docId"]) == "docvqa"
    assert detect_kind(["question_id", "question", "answer", "image", "category"]) == "pope"


def test_records_are_plain_json(tmp_path):
    path = import_dataset(docvqa_source(tmp_path / "src"), tmp_path / "out")
    for line in path.read_text().splitlines():
        assert isinstance(json.loads(line)["image"], str)


def test_imported_docvqa_runs_through_evaluate(tmp_path, saved_tiny):
    import json as _json

    from vskip.cli import main

    docvqa_source(tmp_path / "src")
    assert main(["data", "import", str(tmp_path / "src"), "--out", str(tmp_path / "docvqa"),
                 "--split", "validation"]) == 0
    data = tmp_path / "docvqa" / "validation.jsonl"
    assert main(["evaluate", "--model", str(saved_tiny), "--data", str(data), "--out", str(tmp_path / "r.json"),
                 "--batch-size", "3"]) == 0
    results = _json.loads((tmp_path / "r.json").read_text())
    assert results["n"] == 3 and set(results["tasks"]) == {"docvqa"}
    assert results["tasks"]["docvqa"]["anls"] is not None
