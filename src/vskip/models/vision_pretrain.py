"""Dense pre-training of vskip-tiny's vision tower: every image token learns what its cell holds.

vskip-synth images are a 4x4 grid of 28 px cells and the tiny Qwen2-VL merges 2x2 patches of
14 px, so merged image token k is the cell at row k // 4 + 1, column k % 4 + 1. The ground truth
of each item names what is in every cell: a shape's colour and kind, or a receipt line's item
and price (every cell of the line's row carries both, so any token of a line tells the whole
line). Each token's contents and, where it holds something, its own row and column are classified
by projecting the merger's output on fixed directions, so what and where are both written plainly
for the language model. An empty cell has no position: a position that is the same in every image
would carry nothing to learn from until the model already attends to the right cell.

Trained jointly with the language model from scratch, the tower collapsed to an
image-independent constant (BENCHMARKS.md); trained alone on this objective it does not.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from ..media import load_image
from ..records import Record, image_paths
from ..synth.documents import line_cells
from ..synth.scenes import GRID, cell_of
from ..synth.words import COLOURS, ITEMS, PRICES, SHAPES
from ..training import TrainSettings, train

CELLS = GRID * GRID
# Class 0 of every content head is "nothing of this kind here".
HEADS: dict[str, int] = {
    "colour": len(COLOURS) + 1,
    "shape": len(SHAPES) + 1,
    "item": len(ITEMS) + 1,
    "price": max(PRICES) + 1,
    "row": GRID + 1,
    "col": GRID + 1,
}


def cell_targets(record: Record) -> dict[str, list[int]]:
    """The class of every merged image token under every head, from the record's ground truth."""
    targets = {name: [0] * CELLS for name in HEADS}

    def mark(k: int) -> None:
        targets["row"][k], targets["col"][k] = k // GRID + 1, k % GRID + 1

    for obj in record.get("scene") or []:
        k = cell_of(obj)
        targets["colour"][k] = list(COLOURS).index(obj["colour"]) + 1
        targets["shape"][k] = SHAPES.index(obj["shape"]) + 1
        mark(k)
    for line, entry in enumerate(record.get("document") or []):
        for k in line_cells(line):
            targets["item"][k] = ITEMS.index(entry["item"]) + 1
            targets["price"][k] = int(entry["price"])
            mark(k)
    return targets


class DenseObjective(nn.Module):
    """The vision tower scored against fixed class directions; `forward(...).loss` is the mean cross-entropy.

    Each class of each head is a fixed direction, all of them orthonormal: a token's logits for a
    head are its feature's projections on that head's directions. With learned heads, an attribute
    could be told apart by a large head weight on a faint feature (the row and column were, and the
    language model did not learn to read them); with fixed unit directions the margin has to be in
    the feature itself, so every attribute is written as strongly as every other.
    """

    def __init__(self, visual: nn.Module, hidden_size: int, seed: int = 0):
        super().__init__()
        self.visual = visual
        generator = torch.Generator().manual_seed(seed)
        basis, _ = torch.linalg.qr(torch.randn(hidden_size, sum(HEADS.values()), generator=generator))
        self.register_buffer("directions", basis.T.contiguous(), persistent=False)
        self.slices = {}
        start = 0
        for name, n in HEADS.items():
            self.slices[name] = slice(start, start + n)
            start += n

    def logits(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        scores = features @ self.directions.T
        return {name: scores[:, part] for name, part in self.slices.items()}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def features(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
        return self.visual(pixel_values, grid_thw=image_grid_thw).pooler_output

    def forward(self, pixel_values, image_grid_thw, use_cache=False, **targets: torch.Tensor) -> SimpleNamespace:
        # `use_cache` is what the training loop passes every model; a tower has no cache.
        logits = self.logits(self.features(pixel_values, image_grid_thw))
        losses = {name: nn.functional.cross_entropy(logits[name], targets[name]) for name in HEADS}
        return SimpleNamespace(loss=sum(losses.values()) / len(losses), losses=losses)

    @torch.no_grad()
    def accuracy(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Share of tokens each head classifies right (content heads: occupied cells only)."""
        batch = {key: value.to(self.device) for key, value in batch.items()}
        logits = self.logits(self.features(batch["pixel_values"], batch["image_grid_thw"]))
        result = {}
        for name in HEADS:
            target = batch[name]
            scored = target > 0
            if scored.any():
                result[name] = (logits[name].argmax(-1) == target)[scored].float().mean().item()
        return result


def dense_batches(
    processor, records: list[Record], base_dir: str | Path
) -> Callable[[random.Random, int, float], dict[str, Any]]:
    """Batches of pixel values and per-token targets drawn from `records` (with their ground truth)."""

    def batch_of(chosen: list[Record]) -> dict[str, Any]:
        images = [load_image(image_paths(record, base_dir)[0]) for record in chosen]
        pixels = processor.image_processor(images=images, return_tensors="pt")
        targets = [cell_targets(record) for record in chosen]
        return {
            "pixel_values": pixels["pixel_values"],
            "image_grid_thw": pixels["image_grid_thw"],
            **{name: torch.tensor([t for target in targets for t in target[name]]) for name in HEADS},
        }

    def sample(rng: random.Random, n: int, progress: float) -> dict[str, Any]:
        return batch_of(rng.choices(records, k=n))

    sample.batch_of = batch_of
    return sample


class matmul_patch_embedding:
    """Within this context the tower's Conv3d patch embedding runs as the equal matmul.

    The kernel equals the stride, so the convolution is one linear map of each flattened patch;
    Conv3d's backward is very slow on CPU and the matmul's is not. Same weights, same outputs.
    """

    def __init__(self, visual: nn.Module):
        self.patch_embed = visual.patch_embed

    def __enter__(self):
        proj = self.patch_embed.proj

        def forward(hidden_states: torch.Tensor) -> torch.Tensor:
            weight = proj.weight.reshape(proj.out_channels, -1)
            return hidden_states.reshape(-1, weight.shape[1]).to(weight.dtype) @ weight.T

        self.patch_embed.forward = forward
        return self

    def __exit__(self, *exc) -> None:
        del self.patch_embed.forward


def held_out_accuracy(objective: DenseObjective, processor, records: list[Record], base_dir: str | Path,
                      n: int = 400) -> dict[str, float]:
    """`objective.accuracy` on about `n` records spread over `records` (a split's families come in blocks)."""
    chosen = records[:: max(1, len(records) // n)]
    return {name: round(value, 4) for name, value in objective.accuracy(dense_batches(
        processor, chosen, base_dir).batch_of(chosen)).items()}


def pretrain_vision(
    model: nn.Module,
    processor,
    records: list[Record],
    base_dir: str | Path,
    training: TrainSettings,
    *,
    checkpoint_dir: str | Path | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[list[dict], DenseObjective]:
    """Train `model`'s vision tower in place on the dense objective; returns the log and the objective."""
    visual = model.model.visual
    objective = DenseObjective(visual, model.config.get_text_config().hidden_size).to(visual.device)
    with matmul_patch_embedding(visual):
        log = train(
            objective, dense_batches(processor, records, base_dir), training,
            checkpoint_dir=checkpoint_dir, description="vskip-tiny vision", settings=settings,
        )
    return log, objective
