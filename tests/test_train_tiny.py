"""`vskip tiny train`: the recipe of the shipped model, run for a few steps."""

import json

import torch

from vskip.cli import main
from vskip.models import load_model
from vskip.models.tiny import TinyConfig, build_model
from vskip.synth import build


def test_tiny_train_saves_a_checkpoint_with_its_recipe_and_a_frozen_vision_tower(tmp_path, capsys):
    data, out = tmp_path / "synth", tmp_path / "model"
    build(data, seed=3, n_train=3, n_val=0, n_test=0, progress=False)
    assert main(["tiny", "train", "--data", str(data), "--out", str(out), "--steps", "2", "--batch-size", "2"]) == 0
    assert f"saved {out}" in capsys.readouterr().out

    card = json.loads((out / "training.json").read_text())
    assert card["training"]["steps"] == 2 and card["training"]["learning_rate"] == 1e-3  # the rest: the recipe
    assert card["freeze_vision"] and card["command"].startswith("vskip tiny train")
    assert not (out / "checkpoint").exists() and (out / "model.safetensors").is_file()

    loaded = load_model(str(out), device="cpu")  # as a hub checkpoint (the Auto classes, processor included)
    model = loaded.model
    fresh = build_model(loaded.processor.tokenizer, TinyConfig(), seed=0)
    trained, initial = model.model.visual.state_dict(), fresh.model.visual.state_dict()
    assert all(torch.equal(trained[name], initial[name]) for name in initial)  # the vision tower never moved
    language = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(model.state_dict()[language], fresh.state_dict()[language])
