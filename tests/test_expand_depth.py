"""benchmarks/expand_depth.py: twice the decoder layers, the same answers."""

from __future__ import annotations

import copy
import json
import shutil

import torch

from vskip.models import load_model


def test_the_expanded_model_has_twice_the_layers_and_the_same_logits_and_greedy_tokens(benchmark, tiny_random):
    bench = benchmark("expand_depth")
    model = tiny_random.model
    deep = copy.deepcopy(model)
    bench.expand(deep)
    assert len(deep.model.language_model.layers) == 2 * len(model.model.language_model.layers)
    assert deep.config.text_config.num_hidden_layers == 2 * model.config.text_config.num_hidden_layers
    ids = torch.randint(10, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(deep(input_ids=ids).logits, model(input_ids=ids).logits)
        # Decoding through the KV cache: every layer, the copies included, has its own slot.
        kwargs = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
        assert torch.equal(deep.generate(input_ids=ids, **kwargs), model.generate(input_ids=ids, **kwargs))


def test_the_command_writes_a_checkpoint_that_loads_with_its_card_at_the_new_depth(
        benchmark, saved_tiny, tmp_path, monkeypatch):
    bench = benchmark("expand_depth")
    source = tmp_path / "tiny"
    shutil.copytree(saved_tiny, source)
    (source / "training.json").write_text(json.dumps({"sizes": {"text_layers": 2}}))
    monkeypatch.setattr("sys.argv", ["expand_depth.py", "--model", str(source), "--out", str(tmp_path / "deep")])
    bench.main()
    deep = load_model(str(tmp_path / "deep"), dtype=torch.float32)
    assert deep.model.config.text_config.num_hidden_layers == 4
    assert json.loads((tmp_path / "deep" / "training.json").read_text())["sizes"]["text_layers"] == 4
