"""The recipe that makes vskip-tiny: tokenizer, processor and weights, from vskip-synth alone.

    vskip synth --out runs/synth --seed 0 --n-train 5000 --n-val 100 --n-test 300
    vskip tiny train --data runs/synth --out src/vskip/models/vskip-tiny

Each step draws a batch of training records and, for each, one of the two prompt modes (answer
directly, or think step by step then answer), so one model serves both.

The vision tower (patch embedding, blocks and merger) stays at its seeded random initialisation.
Trained jointly from scratch, it collapsed in every run we tried (lr 2e-3 and 1e-3, with and
without weight decay): its output became an image-independent constant, and after 2,000 steps
the loss was the same with the right image as with another item's (see BENCHMARKS.md). Random
features keep the image's content (colour, shape, place), and a language model that cannot
erase them learns to read them.
"""

from __future__ import annotations

import json
import platform
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..encoding import Example, chat_prompt
from ..prompts import response
from ..records import image_paths, load_image, read_records
from ..training import TrainConfig, fit
from .tiny import TinyConfig, build_model, build_processor, build_tokenizer, save_processor

DEFAULT_SIZES = TinyConfig()
DEFAULT_TRAINING = TrainConfig(
    steps=8000, batch_size=16, learning_rate=1e-3, weight_decay=0.0, warmup_steps=150, seed=0, checkpoint_every=250
)


def train_tiny(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    sizes: TinyConfig = DEFAULT_SIZES,
    training: TrainConfig = DEFAULT_TRAINING,
    direct_share: float = 0.5,
    freeze_vision: bool = True,
) -> Path:
    """Train vskip-tiny from scratch on `data_dir/train.jsonl`; save it to `out_dir` like a hub checkpoint."""
    from ..synth import corpus_text

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    records = read_records(data_dir / "train.jsonl", required=("id", "image", "question", "answer", "cot"))
    tokenizer = build_tokenizer(corpus_text(records), sizes.vocab_size)
    processor = build_processor(tokenizer)
    model = build_model(tokenizer, sizes, seed=training.seed)
    if freeze_vision:
        model.model.visual.requires_grad_(False)
    images = {record["id"]: image_paths(record, data_dir)[0] for record in records}

    def sample_examples(rng: random.Random, n: int) -> list[Example]:
        examples = []
        for record in rng.choices(records, k=n):
            mode = "direct" if rng.random() < direct_share else "cot"
            prompt = chat_prompt(processor, record["question"], mode)
            reply = response(record["cot"] if mode == "cot" else "", record["answer"])
            examples.append(Example([load_image(images[record["id"]])], prompt, reply))
        return examples

    started = time.perf_counter()
    log = fit(model, processor, sample_examples, training, checkpoint_dir=out_dir / "checkpoint",
              description="vskip-tiny")
    seconds = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    save_processor(processor, out_dir)
    card = {
        "command": f"vskip tiny train --data {data_dir} --out {out_dir} --steps {training.steps}",
        "sizes": asdict(sizes),
        "training": asdict(training),
        "direct_share": direct_share,
        "freeze_vision": freeze_vision,
        "train_records": len(records),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "log": log,
    }
    (out_dir / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    shutil.rmtree(out_dir / "checkpoint")
    return out_dir
