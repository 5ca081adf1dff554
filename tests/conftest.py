"""Shared fixtures: a tiny random Qwen2-VL with a real processor, a small image set, and the benchmark scripts."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from PIL import Image

from vskip.models import LoadedModel, family_for
from vskip.models.tiny import TinySettings, build_model, build_processor, build_tokenizer, save_processor

CORPUS = [
    "How many objects have the same colour as the star?",
    "The star is red. The red objects are the circle at row 1 column 3 and the square at row 4 column 2.",
    "That makes 2. What colour is the shape left of the blue star? Left of it is a green circle.",
    "How much do the tea and the jam cost together? The tea costs 4. The jam costs 3. 4 plus 3 makes 7.",
    "Is there a green star? I see a red circle, a yellow star and a blue square. There is no green star.",
    "Answer: yes no",
]

SMALL = TinySettings(
    vocab_size=400, text_hidden=64, text_layers=2, text_heads=4, text_kv_heads=2, text_intermediate=128,
    vision_embed=32, vision_depth=1, vision_heads=2,
)


BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def benchmark(monkeypatch):
    """Import a script of benchmarks/ by name, as its siblings import `common`: from that folder."""

    def load(name: str):
        monkeypatch.syspath_prepend(str(BENCHMARKS))
        return importlib.import_module(name)

    return load


@pytest.fixture(scope="session")
def tiny_processor():
    return build_processor(build_tokenizer(CORPUS * 20, SMALL.vocab_size))


@pytest.fixture(scope="session")
def tiny_random(tiny_processor) -> LoadedModel:
    """A randomly initialised, very small Qwen2-VL with the vskip-tiny processor layout."""
    model = build_model(tiny_processor.tokenizer, SMALL, seed=0).eval()
    return LoadedModel(model, tiny_processor, family_for(model.config), "tiny-random")


@pytest.fixture(scope="session")
def saved_tiny(tiny_random, tmp_path_factory):
    """`tiny_random` saved as a checkpoint directory (safetensors and processor); read it, don't change it."""
    path = tmp_path_factory.mktemp("saved-tiny")
    tiny_random.model.save_pretrained(path)
    save_processor(tiny_random.processor, path)
    return path


@pytest.fixture
def image_dataset(tmp_path):
    """A three-record dataset with images beside it; returns the JSONL path."""
    return write_image_dataset(tmp_path)


def write_image_dataset(tmp_path):
    (tmp_path / "images").mkdir()
    records = []
    for index, (colour, question, answer, cot) in enumerate(
        [
            ("red", "Is there a red circle?", "yes", "I see a red circle. There is a red circle."),
            ("blue", "How many objects have the same colour as the star?", "2", "The star is blue. That makes 2."),
            ("green", "How much do the tea and the jam cost together?", "7", "The tea costs 4. 4 plus 3 makes 7."),
        ]
    ):
        Image.new("RGB", (112, 112), colour).save(tmp_path / "images" / f"{index}.png")
        records.append(
            {"id": f"r{index}", "image": f"images/{index}.png", "question": question, "answer": answer, "cot": cot}
        )
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def without_timing(value):
    """`value` with every wall-time figure dropped: the only thing a process count may change."""
    if isinstance(value, list):
        return [without_timing(item) for item in value]
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items()
                if not k.startswith(("latency", "speedup", "throughput"))}
    return value
