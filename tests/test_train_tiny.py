"""`vskip tiny train`: the recipe of the shipped model, run for a few steps."""

import json

import torch

from vskip.cli import main
from vskip.models import load_model
from vskip.models.tiny import TinySettings, build_model
from vskip.synth import build


def test_tiny_train_trains_the_tower_then_the_language_model_and_saves_its_recipe(tmp_path, capsys):
    data, out = tmp_path / "synth", tmp_path / "model"
    build(data, seed=3, n_train=3, n_val=2, n_test=0, progress=False)
    args = ["tiny", "train", "--data", str(data), "--out", str(out), "--vision-steps", "2", "--steps", "2",
            "--batch-size", "2", "--text-layers", "2", "--text-hidden", "128", "--direct-share", "0.25"]
    assert main(args) == 0
    assert f"saved {out}" in capsys.readouterr().out

    card = json.loads((out / "training.json").read_text())
    assert card["training"]["steps"] == 2 and card["training"]["learning_rate"] == 1e-3  # the rest: the recipe
    assert card["vision_training"]["steps"] == 2 and card["vision_training"]["batch_size"] == 32
    assert card["command"].startswith("vskip tiny train") and "--vision-steps 2" in card["command"]
    assert card["direct_share"] == 0.25 and "--direct-share 0.25" in card["command"]
    assert card["sizes"]["text_layers"] == 2 and "--text-hidden 128" in card["command"]
    assert (card["sizes"]["text_hidden"], card["sizes"]["text_intermediate"]) == (128, 384)  # the MLP 3× as wide
    assert set(card["vision_held_out_accuracy"]) >= {"colour", "shape", "item", "price", "row", "col"}
    assert all(0 <= value <= 1 for value in card["vision_held_out_accuracy"].values())
    assert not any(out.glob("checkpoint*")) and (out / "model.safetensors").is_file()

    loaded = load_model(str(out), device="cpu")  # as a hub checkpoint (the Auto classes, processor included)
    trained = loaded.model.state_dict()
    assert loaded.model.config.text_config.num_hidden_layers == 2
    fresh = build_model(loaded.processor.tokenizer, TinySettings().with_language(2, 128), seed=0).state_dict()
    for name in ("model.visual.blocks.0.attn.qkv.weight", "model.language_model.layers.0.self_attn.q_proj.weight"):
        assert not torch.equal(trained[name], fresh[name]), name  # both stages moved their part


def test_an_interrupted_run_resumes_in_the_language_stage_without_training_the_tower_again(tmp_path, monkeypatch):
    from dataclasses import replace

    import pytest

    from vskip.models import train_tiny, vision_pretrain

    data, out = tmp_path / "synth", tmp_path / "model"
    build(data, seed=3, n_train=3, n_val=0, n_test=0, progress=False)
    recipe = {"vision_training": replace(train_tiny.TINY_VISION_TRAINING, steps=2),
              "training": replace(train_tiny.TINY_TRAINING, steps=2, batch_size=2)}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train_tiny, "fit", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train_tiny.train_tiny(data, out, **recipe)
    assert (out / "checkpoint-vision" / "trainer_state.pt").is_file()

    drawn = []
    sampler = vision_pretrain.dense_batches

    def counted(*args):
        sample = sampler(*args)
        return lambda rng, n: drawn.append(n) or sample(rng, n)

    monkeypatch.setattr(vision_pretrain, "dense_batches", counted)
    train_tiny.train_tiny(data, out, **recipe)
    assert drawn == []  # the tower came from its checkpoint
    assert (out / "model.safetensors").is_file() and not any(out.glob("checkpoint*"))



def test_init_continues_a_trained_model_keeping_its_tokenizer_and_tower(tmp_path, capsys):
    data, first, second = tmp_path / "synth", tmp_path / "first", tmp_path / "second"
    build(data, seed=3, n_train=3, n_val=0, n_test=0, progress=False)
    common = ["tiny", "train", "--data", str(data), "--steps", "2", "--batch-size", "2", "--text-layers", "2"]
    assert main([*common, "--out", str(first), "--vision-steps", "2"]) == 0
    assert main([*common, "--out", str(second), "--init", str(first), "--lr", "3e-4"]) == 0

    card = json.loads((second / "training.json").read_text())
    assert card["init"]["model"] == str(first) and "--init" in card["command"] and "--lr 0.0003" in card["command"]
    assert card["training"]["learning_rate"] == 3e-4 and card["sizes"]["text_layers"] == 2
    assert card["init"]["card"]["training"]["steps"] == 2 and "log" not in card["init"]["card"]
    assert (second / "tokenizer.json").read_text() == (first / "tokenizer.json").read_text()
    before, after = (load_model(str(path), device="cpu").model.state_dict() for path in (first, second))
    assert torch.equal(before["model.visual.blocks.0.attn.qkv.weight"], after["model.visual.blocks.0.attn.qkv.weight"])
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(before[name], after[name])

    assert main([*common, "--out", str(tmp_path / "third"), "--init", str(data)]) == 2
    assert "not a vskip-tiny directory" in capsys.readouterr().err
    assert not (tmp_path / "third" / "model.safetensors").exists()
