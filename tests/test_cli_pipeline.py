"""The stages chained through the CLI, each writing where the user asks."""

import json

from vskip.cli import main
from vskip.records import read_records


def test_generate_score_compress_with_outputs_outside_the_dataset(saved_tiny, image_dataset, tmp_path, capsys):
    runs = tmp_path / "runs"
    data = str(image_dataset.parent)
    common = ["--model", str(saved_tiny), "--images", data]
    assert main(["generate", *common, "--data", str(image_dataset), "--out", str(runs / "gen.jsonl"),
                 "--max-new-tokens", "4"]) == 0
    # A random model rarely gives an answer line, so score the reference CoTs with the generated records' layout.
    generated = [{**r, "cot": r["reference_cot"], "prediction": r["answer"]} for r in read_records(runs / "gen.jsonl")]
    (runs / "teacher.jsonl").write_text("".join(json.dumps(r) + "\n" for r in generated))
    assert main(["score", *common, "--data", str(runs / "teacher.jsonl"), "--out", str(runs / "scores.jsonl")]) == 0
    assert main(["compress", "--scores", str(runs / "scores.jsonl"), "--methods", "vskip,text", "--ratios", "0.5",
                 "--out", str(runs / "compressed.jsonl")]) == 0
    compressed = read_records(runs / "compressed.jsonl", unique=("id", "method", "ratio"))
    assert len(compressed) == 2 * len(generated)
    assert all(len(r["keep"]) == len(r["cot"].split()) for r in compressed)
    capsys.readouterr()
    # Without --images the paths resolve against runs/, where there are no images: a clear error.
    assert main(["score", "--model", str(saved_tiny), "--data", str(runs / "teacher.jsonl"),
                 "--out", str(runs / "again.jsonl")]) == 2
    assert "image not found" in capsys.readouterr().err
