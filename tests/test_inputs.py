import json

import pytest

from vskip.errors import BadInput
from vskip.inputs import read_dataset
from vskip.records import REQUIRED_FIELDS, read_records


def test_bad_records_are_refused_or_set_aside_where_asked(image_dataset, tmp_path):
    good = read_records(image_dataset)
    lines = image_dataset.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines, json.dumps({"id": "gone", "image": "nowhere.png", "question": "q",
                                                  "answer": "a"})]) + "\n")
    with pytest.raises(BadInput, match="gone"):
        read_dataset(bad, REQUIRED_FIELDS, images=image_dataset.parent)
    side = tmp_path / "out.skipped.jsonl"
    records, skipped = read_dataset(bad, REQUIRED_FIELDS, images=image_dataset.parent, skipped_to=side)
    assert records == good and [record["id"] for record in skipped] == ["gone"]
    assert [json.loads(line)["id"] for line in side.read_text().splitlines()] == ["gone"]
    # Nothing bad: an empty file beside, as a rerun's record that none was set aside.
    assert read_dataset(image_dataset, skipped_to=side) == (good, []) and side.read_text() == ""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(BadInput, match="no records to work on \\(the file is empty\\)"):
        read_dataset(empty)
