"""Videos end to end: vskip-synth items shown as a two-frame video, through `vskip generate` and `vskip score` on the
shipped vskip-tiny. transformers' video processors are built on torchvision: `make test-torchvision` runs these, and
without it they are refused in one line."""

import json

import pytest
from transformers.utils import is_torchvision_available

from vskip.cli import main
from vskip.models import TINY_DIR
from vskip.records import iter_jsonl, read_records
from vskip.synth import build

pytestmark = pytest.mark.skipif(not (TINY_DIR / "model.safetensors").is_file(), reason="vskip-tiny not trained")
needs_torchvision = pytest.mark.skipif(not is_torchvision_available(),
                                       reason="videos need torchvision (make test-torchvision)")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One fresh item per family as the model was trained to see it (`image.jsonl`), and the same items with the
    image given as a two-frame video of it instead (`video.jsonl`)."""
    out = tmp_path_factory.mktemp("synth")
    build(out, seed=9, n_train=0, n_val=0, n_test=1, progress=False)
    records = read_records(out / "test.jsonl")
    (out / "image.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    videos = [{**{k: v for k, v in record.items() if k != "image"}, "video": [record["image"]] * 2}
              for record in records]
    (out / "video.jsonl").write_text("".join(json.dumps(record) + "\n" for record in videos))
    return out


def _generate_and_score(data, shown: str, runs) -> list[dict]:
    generated, scores = runs / shown / "generated.jsonl", runs / shown / "scores.jsonl"
    assert main(["generate", "--model", "vskip-tiny", "--data", str(data / f"{shown}.jsonl"),
                 "--out", str(generated)]) == 0
    assert main(["score", "--model", "vskip-tiny", "--data", str(generated), "--out", str(scores)]) == 0
    return list(iter_jsonl(scores))


@needs_torchvision
def test_a_video_is_generated_from_and_scored_word_by_word(data, tmp_path):
    scored = _generate_and_score(data, "video", tmp_path)
    assert len(scored) == len(read_records(data / "video.jsonl"))
    for record in scored:
        assert "image" not in record and len(record["video"]) == 2
        assert record["words"] == record["cot"].split()
        for path in ("word_text_score", "word_visual_score"):
            assert len(record[path]) == len(record["words"]) > 0
        # The video's tokens are the visual path's keys: every CoT word looks at them.
        assert min(record["word_visual_score"]) > 0


@needs_torchvision
def test_a_video_of_the_image_twice_reads_as_the_image(data, tmp_path):
    """Qwen2-VL makes an image two identical frames deep, so a two-frame video of it holds the same pixels at the
    same positions: the replies and their scores are the image's, to rounding."""
    by_video = _generate_and_score(data, "video", tmp_path)
    by_image = _generate_and_score(data, "image", tmp_path)
    for video, image in zip(by_video, by_image, strict=True):
        assert video["cot"] == image["cot"] and video["prediction"] == image["prediction"]
        for path in ("word_text_score", "word_visual_score"):
            assert video[path] == pytest.approx(image[path], abs=1e-3)


@pytest.mark.parametrize("command", ["generate", "score"])
def test_without_torchvision_a_video_is_refused_in_one_line(data, tmp_path, monkeypatch, capsys, command):
    monkeypatch.setattr("vskip.media.torchvision_installed", lambda: False)
    # vskip-synth records carry their reference CoT: they can be scored as they are.
    assert main([command, "--model", "vskip-tiny", "--data", str(data / "video.jsonl"),
                 "--out", str(tmp_path / "out.jsonl")]) == 2
    assert capsys.readouterr().err == ("vskip: error: record 'test-count-00000': videos need torchvision: "
                                       "pip install torchvision matching your torch\n")
