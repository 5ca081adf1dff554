"""`vskip tiny train`: the recipe of the shipped model, run for a few steps."""

import json

import torch

from vskip.cli import main
from vskip.models import load_model
from vskip.models.tiny import TinyConfig, build_model
from vskip.synth import build


def test_tiny_train_trains_the_tower_then_the_language_model_and_saves_its_recipe(tmp_path, capsys):
    data, out = tmp_path / "synth", tmp_path / "model"
    build(data, seed=3, n_train=3, n_val=2, n_test=0, progress=False)
    args = ["tiny", "train", "--data", str(data), "--out", str(out), "--vision-steps", "2", "--steps", "2",
            "--batch-size", "2"]
    assert main(args) == 0
    assert f"saved {out}" in capsys.readouterr().out

    card = json.loads((out / "training.json").read_text())
    assert card["training"]["steps"] == 2 and card["training"]["learning_rate"] == 1e-3  # the rest: the recipe
    assert card["vision_training"]["steps"] == 2 and card["vision_training"]["batch_size"] == 32
    assert card["command"].startswith("vskip tiny train") and "--vision-steps 2" in card["command"]
    assert set(card["vision_held_out_accuracy"]) >= {"colour", "shape", "item", "price", "row", "col"}
    assert all(0 <= value <= 1 for value in card["vision_held_out_accuracy"].values())
    assert not any(out.glob("checkpoint*")) and (out / "model.safetensors").is_file()

    loaded = load_model(str(out), device="cpu")  # as a hub checkpoint (the Auto classes, processor included)
    trained = loaded.model.state_dict()
    fresh = build_model(loaded.processor.tokenizer, TinyConfig(), seed=0).state_dict()
    for name in ("model.visual.blocks.0.attn.qkv.weight", "model.language_model.layers.0.self_attn.q_proj.weight"):
        assert not torch.equal(trained[name], fresh[name]), name  # both stages moved their part
