"""Dense pre-training of the tiny vision tower: targets per cell, the matmul patch embedding, learning."""

import random

import pytest
import torch

from vskip.models.tiny import TinySettings, build_model, build_processor, build_tokenizer
from vskip.models.vision_pretrain import (
    HEADS,
    DenseObjective,
    cell_targets,
    dense_batches,
    matmul_patch_embedding,
    pretrain_vision,
)
from vskip.records import read_records
from vskip.synth import build, corpus_text
from vskip.training import TrainSettings

SIZES = TinySettings(text_hidden=64, text_layers=1, text_heads=2, text_kv_heads=1, text_intermediate=128,
                   vision_embed=32, vision_depth=1, vision_heads=2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("synth")
    build(data, seed=4, n_train=6, n_val=0, n_test=0, progress=False)
    records = read_records(data / "train.jsonl")
    tokenizer = build_tokenizer(corpus_text(records), vocab_size=400)
    processor = build_processor(tokenizer)
    return data, records, processor, tokenizer


def test_every_object_and_receipt_line_labels_its_own_cells_only():
    scene = {"scene": [{"colour": "blue", "shape": "star", "row": 2, "col": 3}]}
    targets = cell_targets(scene)
    k = 1 * 4 + 2
    assert targets["colour"][k] > 0 and targets["shape"][k] > 0
    assert (targets["row"][k], targets["col"][k]) == (2, 3)
    assert sum(t > 0 for t in targets["colour"]) == 1 and sum(t > 0 for t in targets["row"]) == 1

    document = {"document": [{"item": "tea", "price": 2}, {"item": "jam", "price": 7}, {"item": "egg", "price": 1}]}
    targets = cell_targets(document)
    assert targets["price"][4:8] == [7] * 4 and targets["row"][4:8] == [2] * 4
    assert targets["item"][12:] == [0] * 4 and targets["row"][12:] == [0] * 4  # the fourth row is blank
    assert all(max(values) < HEADS[name] for name, values in targets.items())


def test_the_matmul_patch_embedding_equals_the_convolution(world):
    _, _, _, tokenizer = world
    visual = build_model(tokenizer, SIZES).model.visual
    pixels = torch.randn(8, 3 * 2 * 14 * 14)
    expected = visual.patch_embed(pixels)
    with matmul_patch_embedding(visual):
        assert torch.allclose(visual.patch_embed(pixels), expected, atol=1e-5)
    assert "forward" not in vars(visual.patch_embed)  # restored


def test_the_fixed_directions_are_orthonormal(world):
    _, _, _, tokenizer = world
    objective = DenseObjective(build_model(tokenizer, SIZES).model.visual, SIZES.text_hidden)
    gram = objective.directions @ objective.directions.T
    assert torch.allclose(gram, torch.eye(sum(HEADS.values())), atol=1e-5)


def test_pre_training_moves_only_the_tower_and_lowers_the_loss(world):
    data, records, processor, tokenizer = world
    model = build_model(tokenizer, SIZES)
    language = {k: v.clone() for k, v in model.model.language_model.state_dict().items()}
    tower = {k: v.clone() for k, v in model.model.visual.state_dict().items()}
    batch = dense_batches(processor, records, data)(random.Random(0), 6, 0.0)
    objective = DenseObjective(model.model.visual, SIZES.text_hidden)
    before = objective(**batch).loss.item()
    config = TrainSettings(steps=30, batch_size=6, learning_rate=3e-3, warmup_steps=3, log_every=10)
    log, objective = pretrain_vision(model, processor, records, data, config)
    assert objective(**batch).loss.item() < before
    assert all(torch.equal(v, language[k]) for k, v in model.model.language_model.state_dict().items())
    assert any(not torch.equal(v, tower[k]) for k, v in model.model.visual.state_dict().items())
    assert [row["step"] for row in log] == [10, 20, 30]
