"""A model twice as deep that answers exactly as it did: block expansion (LLaMA Pro, arXiv 2401.02415).

    python benchmarks/expand_depth.py --model vskip-tiny --out runs/deep

After each decoder layer of the language model, a copy of it whose output projections (attention's `o_proj`, the
MLP's `down_proj`) are zero, so the copy adds nothing to the residual stream until training moves it. Issue 30's
depth probe distils a student on it beside one on the original (docs/students.md): what twice the layers buy a
student writing compressed CoTs, without training a deeper teacher from scratch.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from common import model_arguments

from vskip.models import load_model
from vskip.models.loading import resolve
from vskip.models.tiny import save_processor


def expand(model) -> None:
    """Give `model`'s language model a zero-output copy after each decoder layer, in place."""
    language_model = model.model.language_model
    layers = []
    for layer in language_model.layers:
        twin = copy.deepcopy(layer)
        torch.nn.init.zeros_(twin.self_attn.o_proj.weight)
        torch.nn.init.zeros_(twin.mlp.down_proj.weight)
        layers += [layer, twin]
    for index, layer in enumerate(layers):
        layer.self_attn.layer_idx = index  # each layer's slot in the KV cache
    language_model.layers = torch.nn.ModuleList(layers)
    config = model.config.text_config
    config.num_hidden_layers = len(layers)
    config.layer_types = [config.layer_types[i // 2] for i in range(len(layers))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, model_help="a vskip-tiny directory (default: the shipped one)", dtype=False,
                    batch_size=False)
    parser.add_argument("--out", required=True, help="directory for the deeper checkpoint")
    args = parser.parse_args()

    loaded = load_model(args.model, dtype=torch.float32)
    expand(loaded.model)
    out = Path(args.out)
    loaded.model.save_pretrained(out)
    save_processor(loaded.processor, out)
    # The card at the new depth, so that `vskip tiny train --init` can continue the deeper model.
    card = json.loads((Path(resolve(args.model)) / "training.json").read_text())
    layers = loaded.model.config.text_config.num_hidden_layers
    card["sizes"]["text_layers"] = layers
    card["expanded_from"] = args.model
    (out / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"{layers} layers, {sum(p.numel() for p in loaded.model.parameters()):,} parameters, in {out}")


if __name__ == "__main__":
    main()
