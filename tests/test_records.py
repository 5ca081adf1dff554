import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vskip.errors import BadInput
from vskip.media import load_image, load_video
from vskip.records import (
    check_image_paths,
    check_records,
    image_paths,
    read_records,
    relocate,
    require_fields,
    write_jsonl_atomic,
)

GOOD = {"id": "a", "image": "a.png", "question": "Is there a red circle?", "answer": "yes"}


def write(path, lines):
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines))
    return path


def test_reads_records_and_turns_ids_into_strings(tmp_path):
    path = write(tmp_path / "d.jsonl", [GOOD, b"", {**GOOD, "id": 7}, b"  "])
    assert [r["id"] for r in read_records(path)] == ["a", "7"]


def test_a_byte_order_mark_is_no_part_of_the_first_record(tmp_path):
    path = write(tmp_path / "d.jsonl", [b"\xef\xbb\xbf" + json.dumps(GOOD).encode(), b'{"id": "b",'])
    skipped = []
    assert [r["id"] for r in read_records(path, skipped=skipped)] == ["a"]
    assert [s["line"] for s in skipped] == [2]


def test_a_line_separator_inside_a_string_is_not_a_line_break(tmp_path):
    path = write(tmp_path / "d.jsonl", [{**GOOD, "question": "left\u2028right\x0bx"}])
    assert read_records(path)[0]["question"] == "left\u2028right\x0bx"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"id": "b",', ":2: invalid JSON"),
        (b'{"id": "b", "question": "caf\xe9"}', ":2: not UTF-8"),
        (b"[1]", ":2: a record must be a JSON object"),
        (json.dumps({**GOOD, "id": "b", "question": ""}).encode(), ":2: record has no 'question'"),
        (json.dumps({**GOOD, "id": "b", "image": []}).encode(), ":2: record has no 'image' or 'video'"),
        (json.dumps({**GOOD, "id": "b", "video": "v.mp4"}).encode(), ":2: 'video' must be a list"),
        (json.dumps({**GOOD, "id": "b", "video": ["f0.png", None]}).encode(), ":2: 'video' must be a list of frame"),
        (json.dumps({**GOOD, "id": "b", "image": ["a.png", 3]}).encode(), ":2: 'image' must be a path"),
        (json.dumps({**GOOD, "id": {"x": 1}}).encode(), ":2: 'id' must be"),
        (json.dumps(GOOD).encode(), ":2: duplicate id 'a'"),
        (b"1" * 5000, ":2: invalid JSON"),
        (b"[" * 100_000, ":2: invalid JSON"),
    ],
)
def test_a_bad_line_is_named_by_its_number(tmp_path, line, message):
    path = write(tmp_path / "d.jsonl", [GOOD, line, {**GOOD, "id": "c"}])
    with pytest.raises(BadInput, match=message):
        read_records(path)
    skipped = []
    assert [r["id"] for r in read_records(path, skipped=skipped)] == ["a", "c"]
    assert [s["line"] for s in skipped] == [2]


def test_a_video_shows_the_model_what_an_image_would(tmp_path):
    """A record may give a video (its frames) instead of an image, or beside it: either meets the need for one."""
    video_only = {key: value for key, value in GOOD.items() if key != "image"} | {"video": ["f0.png", "f1.png"]}
    path = write(tmp_path / "d.jsonl", [video_only, {**GOOD, "id": "b", "video": ["f0.png"]}])
    assert [r["id"] for r in read_records(path)] == ["a", "b"]
    assert image_paths(video_only, tmp_path) == [] and image_paths(video_only, tmp_path, "video") == [
        tmp_path / "f0.png", tmp_path / "f1.png"]
    (moved,) = relocate([video_only], tmp_path, tmp_path / "runs")
    assert moved["image_root"] == ".." and image_paths(moved, tmp_path / "runs", "video")[0].resolve() == (
        tmp_path / "f0.png").resolve()


def test_video_frames_are_checked_as_images_are(tmp_path, monkeypatch):
    monkeypatch.setattr("vskip.media.torchvision_installed", lambda: True)  # frames load without it
    data = tmp_path / "data"
    data.mkdir()
    for name, size in [("f0.png", (8, 8)), ("f1.png", (8, 8)), ("wide.png", (16, 8))]:
        Image.new("RGB", size).save(data / name)
    Image.new("RGB", (8, 8)).save(tmp_path / "out.png")
    record = {**GOOD, "image": "f0.png", "video": ["f0.png", "f1.png"]}
    assert check_records([record], data) == [record]
    assert [frame.size for frame in load_video(check_image_paths(record, data, "video"))] == [(8, 8)] * 2
    with pytest.raises(BadInput, match="video '../out.png' leads outside the dataset's directory"):
        check_records([{**record, "video": ["f0.png", "../out.png"]}], data)
    with pytest.raises(BadInput, match=r"record 'a': the video's frames differ in size \(8x8, 16x8\)"):
        check_records([{**record, "video": ["f0.png", "f1.png", "wide.png"]}], data)
    with pytest.raises(BadInput, match="record 'a': .*gone.png: image not found"):
        check_records([{**record, "video": ["gone.png"]}], data)
    # transformers' video processors are built on torchvision: without it a video is refused before any work.
    monkeypatch.setattr("vskip.media.torchvision_installed", lambda: False)
    with pytest.raises(BadInput, match="^record 'a': videos need torchvision: pip install torchvision matching your"):
        check_records([record], data)
    assert check_records([{**record, "video": []}], data) == [{**record, "video": []}]


def test_required_fields_are_the_callers(tmp_path):
    path = write(tmp_path / "d.jsonl", [GOOD])
    with pytest.raises(BadInput, match=":1: record has no 'cot'"):
        read_records(path, required=("id", "cot"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "b', "unterminated string starting at column 8"),
        ('{"id": "b",', "expecting property name enclosed in double quotes at column 12"),
        ('{"id": "b"} x', "extra data at column 13"),
        ('{"id": "b\x01"}', "invalid control character at column 10"),
    ],
)
def test_invalid_json_is_named_whole_with_its_column(tmp_path, line, message):
    path = write(tmp_path / "d.jsonl", [GOOD, line.encode()])
    with pytest.raises(BadInput) as err:
        read_records(path)
    assert str(err.value) == f"{path}:2: invalid JSON: {message}; fix or drop the record, or rerun with --skip-bad"


def test_a_record_set_aside_keeps_its_reason_without_what_to_do(tmp_path):
    """--skip-bad is in use when a record is set aside: its reason does not say to rerun with it."""
    path = write(tmp_path / "d.jsonl", [GOOD, b'{"id": "b', {**GOOD, "id": "c", "image": "none.png"}])
    skipped = []
    good = check_records(read_records(path, skipped=skipped), tmp_path, skipped=skipped)
    assert good == []  # a.png is missing too
    assert [s["reason"] for s in skipped] == [
        "invalid JSON: unterminated string starting at column 8",
        f"{tmp_path / 'a.png'}: image not found",
        f"{tmp_path / 'none.png'}: image not found",
    ]


@pytest.mark.parametrize(
    ("record", "required", "message"),
    [
        ({**GOOD, "cot": "It is red. yes", "prediction": "yes"}, ("id", "cot", "words"),
         "record has no 'words': it was written by 'vskip generate', not by 'vskip score'; "
         "run 'vskip score' on the file first, and pass the output"),
        ({**GOOD, "cot": "It is red. yes"}, ("id", "cot", "words"),
         "record has no 'words': it is a dataset's record, not written by 'vskip score'; "
         "run 'vskip generate', then 'vskip score' on the file first, and pass the output"),
        ({**GOOD, "cot": "It is red. yes", "prediction": "yes", "words": ["It"]}, ("id", "compressed_cot"),
         "record has no 'compressed_cot': it was written by 'vskip score', not by 'vskip compress'; "
         "run 'vskip compress' on the file first, and pass the output"),
        (GOOD, ("id", "cot"), "record has no 'cot': it is a dataset's record, not written by 'vskip generate'; "
         "run 'vskip generate' on the file first, and pass the output"),
    ],
)
def test_a_file_of_the_wrong_stage_is_named(tmp_path, record, required, message):
    path = write(tmp_path / "d.jsonl", [record])
    with pytest.raises(BadInput) as err:
        read_records(path, required=required)
    assert str(err.value) == f"{path}:1: {message}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_give_records_or_bad_input(tmp_path, data):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(data)
    try:
        records = read_records(path)
    except BadInput:
        return
    assert all(isinstance(r["id"], str) and isinstance(r["question"], str) for r in records)
    assert len({r["id"] for r in records}) == len(records)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
RECORDISH = st.fixed_dictionaries(
    {},
    optional={"id": JSON, "image": JSON | st.text(max_size=8), "question": JSON | st.text(max_size=8), "cot": JSON},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(RECORDISH | JSON, max_size=6))
def test_arbitrary_json_lines_give_records_or_bad_input_and_skipping_never_raises(tmp_path, lines):
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    skipped = []
    kept = read_records(path, skipped=skipped)
    assert len(kept) + len(skipped) == len(lines)  # every line is a record or set aside, none lost
    try:
        assert [r["id"] for r in read_records(path)] == [r["id"] for r in kept]
    except BadInput:
        assert skipped
    for record in kept:
        check_records([record], tmp_path, skipped=[])  # a record that reads never crashes the checks


@pytest.mark.parametrize("image", ["../out.png", "{root}/out.png", "sub/../../out.png", "link.png", "linkdir/out.png"])
def test_image_paths_may_not_leave_the_dataset(tmp_path, image):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "out.png")
    os.symlink(tmp_path / "out.png", data / "link.png")
    os.symlink(tmp_path, data / "linkdir")
    record = {**GOOD, "image": image.format(root=tmp_path)}
    with pytest.raises(BadInput, match="leads outside the dataset's directory"):
        check_image_paths(record, data)
    (path,) = check_image_paths(record, data, allow_outside=True)
    assert load_image(path).size == (8, 8)


def test_image_paths_inside_the_dataset_are_fine_symlinks_included(tmp_path):
    (tmp_path / "raw").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "raw" / "a.png")
    os.symlink(tmp_path / "raw" / "a.png", tmp_path / "link.png")
    record = {**GOOD, "image": ["raw/a.png", "./raw/../link.png"]}
    assert len(check_image_paths(record, tmp_path)) == 2


def test_a_record_moved_to_another_directory_still_finds_its_images(tmp_path):
    (tmp_path / "data" / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "data" / "images" / "a.png")
    record = {**GOOD, "image": ["images/a.png"]}
    for out_dir in (tmp_path / "runs", tmp_path / "runs" / "eval", tmp_path / "data", tmp_path / "data" / "sub"):
        (moved,) = relocate([record], tmp_path / "data", out_dir)
        assert moved["image"] == record["image"]  # paths stay relative to the dataset
        (path,) = check_image_paths(moved, out_dir)
        assert path.resolve() == (tmp_path / "data" / "images" / "a.png").resolve()
        (again,) = relocate([moved], out_dir, tmp_path)
        assert again["image_root"] == "data" and image_paths(again, tmp_path) == [tmp_path / "data" / "images/a.png"]
    assert relocate([{"id": "no image"}], tmp_path, tmp_path / "runs") == [{"id": "no image"}]


def test_a_moved_record_may_not_leave_its_dataset_nor_name_an_absolute_root(tmp_path):
    (tmp_path / "data").mkdir()
    record = {**GOOD, "image_root": "../data", "image": "../secret.png"}
    with pytest.raises(BadInput, match="leads outside the dataset's directory"):
        check_image_paths(record, tmp_path / "runs")
    with pytest.raises(BadInput, match="image_root '/' is not a relative path"):
        check_image_paths({**GOOD, "image_root": "/", "image": "etc/passwd"}, tmp_path / "runs")
    assert check_image_paths({**GOOD, "image_root": "/"}, tmp_path, allow_outside=True) == [Path("/a.png")]


def test_the_api_refuses_a_missing_field_naming_the_record():
    with pytest.raises(BadInput, match="record 'a' has no 'cot'"):
        require_fields(GOOD, ("id", "cot"), named=True)
    with pytest.raises(BadInput, match="^record has no 'cot'"):
        require_fields({**GOOD, "cot": " "}, ("cot",))


def test_check_records_names_the_record_or_sets_it_aside(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    records = [{**GOOD, "cot": "c", "prediction": "yes"}, {**GOOD, "id": "b", "cot": "c", "prediction": None},
               {**GOOD, "id": "c", "image": "none.png"}]
    with pytest.raises(BadInput, match="record 'b': the chain of thought has no answer"):
        check_records(records, tmp_path, needs_answer=True)
    skipped = []
    assert check_records(records, tmp_path, needs_answer=True, skipped=skipped) == records[:1]
    assert [s["id"] for s in skipped] == ["b", "c"]
    assert check_records(records[:2], None, needs_answer=False) == records[:2]  # no base: images not checked


def test_a_failed_atomic_write_leaves_the_earlier_file(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl_atomic(path, [{"id": "old"}])

    def records():
        yield {"id": "new"}
        raise RuntimeError("stage failed")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(path, records())
    assert path.read_text() == '{"id": "old"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_a_compressed_file_where_one_line_per_id_is_read_says_so(tmp_path):
    lines = [{**GOOD, "compressed_cot": "x", "method": method, "ratio": 0.5} for method in ("text", "vskip")]
    path = write(tmp_path / "compressed.jsonl", lines)
    with pytest.raises(BadInput, match=":2: duplicate id 'a': the file was written by 'vskip compress' .* which only "
                                       "'vskip distill' reads"):
        read_records(path)
    assert len(read_records(path, unique=("id", "method", "ratio"))) == 2
