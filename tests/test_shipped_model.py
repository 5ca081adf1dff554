"""The shipped vskip-tiny: it loads like a hub checkpoint and still answers vskip-synth."""

import json

import pytest

from vskip.generate import generate
from vskip.models import TINY_DIR, TINY_NAME, load_model
from vskip.records import read_records
from vskip.synth import build

pytestmark = pytest.mark.skipif(not (TINY_DIR / "model.safetensors").is_file(), reason="vskip-tiny not trained")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Ten fresh test items per family, from a seed the model never trained on."""
    out = tmp_path_factory.mktemp("synth")
    build(out, seed=9, n_train=0, n_val=0, n_test=10, progress=False)
    return out / "test.jsonl"


@pytest.fixture(scope="module")
def tiny():
    return load_model(TINY_NAME, device="cpu")


def test_shipped_weights_are_small_safetensors_with_their_recipe():
    weights = TINY_DIR / "model.safetensors"
    assert weights.stat().st_size <= 25 * 2**20
    assert not list(TINY_DIR.glob("*.bin"))
    card = json.loads((TINY_DIR / "training.json").read_text())
    assert card["command"].startswith("vskip tiny train") and card["training"]["seed"] == 0


@pytest.mark.parametrize(("mode", "floor"), [("cot", 0.9), ("direct", 0.5)])
def test_shipped_weights_still_answer(tiny, sample, tmp_path, mode, floor):
    # Floors sit well under the measured accuracy (BENCHMARKS.md) so only a real regression fails.
    records = read_records(sample)
    results = generate(tiny, records, sample.parent, tmp_path / "out.jsonl", mode=mode, batch_size=20,
                       progress=False)
    accuracy = sum(r["correct"] for r in results) / len(results)
    assert accuracy >= floor, f"{mode} accuracy {accuracy:.2f} fell below {floor}"
    if mode == "cot":
        assert all(r["cot"] and r["cot_tokens"] > 0 for r in results)
