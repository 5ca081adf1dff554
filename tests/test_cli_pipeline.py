"""The stages chained through the CLI, each writing where the user asks."""

import json
import shutil

from vskip.cli import main
from vskip.records import read_records


def test_outputs_written_elsewhere_find_their_images_without_images_flags(saved_tiny, image_dataset, tmp_path, capsys):
    runs = tmp_path / "runs"
    model = ["--model", str(saved_tiny)]
    assert main(["generate", *model, "--data", str(image_dataset), "--out", str(runs / "gen.jsonl"),
                 "--max-new-tokens", "4"]) == 0
    generated = read_records(runs / "gen.jsonl")
    assert {r["image_root"] for r in generated} == {".."}
    # A random model rarely gives an answer line, so score the reference CoTs with the generated records' layout,
    # from a file in yet another directory.
    teacher = runs / "teacher" / "teacher.jsonl"
    teacher.parent.mkdir()
    rows = [{**r, "cot": r["reference_cot"], "prediction": r["answer"], "image_root": "../.."} for r in generated]
    teacher.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", *model, "--data", str(teacher), "--out", str(runs / "scores" / "scores.jsonl")]) == 0
    assert main(["compress", "--data", str(runs / "scores" / "scores.jsonl"), "--methods", "vskip,text",
                 "--ratios", "0.5", "--out", str(runs / "compressed.jsonl")]) == 0
    compressed = read_records(runs / "compressed.jsonl", unique=("id", "method", "ratio"))
    assert len(compressed) == 2 * len(generated) and {r["image_root"] for r in compressed} == {".."}
    assert all(len(r["keep"]) == len(r["cot"].split()) for r in compressed)
    capsys.readouterr()
    # --images overrides what the file says: here it points where there are no images.
    assert main(["score", *model, "--data", str(teacher), "--images", str(runs), "--out", str(runs / "x.jsonl")]) == 2
    assert "image not found" in capsys.readouterr().err
    # A moved dataset is found again with --images, and the output then points at the new place.
    moved = tmp_path / "moved"
    shutil.move(image_dataset.parent / "images", moved / "images")
    assert main(["score", *model, "--data", str(teacher), "--images", str(moved),
                 "--out", str(runs / "again.jsonl")]) == 0
    assert {r["image_root"] for r in read_records(runs / "again.jsonl")} == {"../moved"}
