"""The recipe that makes vskip-tiny: tokenizer, processor and weights, from vskip-synth alone.

    vskip synth --out runs/synth --seed 0 --n-train 5000 --n-val 300 --n-test 300
    vskip tiny train --data runs/synth --out src/vskip/models/vskip-tiny

Two stages, each resumable from its own checkpoint under `--out`:

1. **Vision.** The vision tower (patch embedding, blocks and merger) learns, for every merged image
   token, what its cell holds and where it is (`vision_pretrain`): dense labels from the records'
   ground truth. Trained jointly with the language model from scratch instead, the tower collapsed
   to an image-independent constant in every run we tried; left at its random initialisation, the
   teacher answered about half the questions right and was unsure of every colour, shape and price.
2. **Language.** With the tower frozen, the language model (and nothing else) learns to answer:
   each step draws a batch of training records and, for each, one of the two prompt modes (answer
   directly, or think step by step then answer; `direct_share` of them answer directly), so one model
   serves both.

Runs on a GPU when there is one; the same command on CPU gives the same recipe (BENCHMARKS.md has
the time of each).

`--init DIR` continues a trained vskip-tiny instead of starting from scratch: its tokenizer, processor
and frozen tower are kept (no vision stage), and its language model trains `--steps` more under a
fresh warm-up and cosine schedule (a warm restart). The card records the run it continued.
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
from ..errors import BadInput
from ..media import load_image
from ..prompts import response
from ..records import image_paths, read_records
from ..settings import (
    TINY_DIRECT_SHARE,
    TINY_SIZES,
    TINY_TRAINING,
    TINY_VISION_TRAINING,
    TinySettings,
    TrainSettings,
)
from ..training import fit
from .loading import default_device, resolve
from .tiny import build_model, build_processor, build_tokenizer, save_processor, wrap_tokenizer
from .vision_pretrain import held_out_accuracy, pretrain_vision


def train_tiny(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    sizes: TinySettings = TINY_SIZES,
    vision_training: TrainSettings = TINY_VISION_TRAINING,
    training: TrainSettings = TINY_TRAINING,
    direct_share: float = TINY_DIRECT_SHARE,
    init: str | Path | None = None,
    device: str | None = None,
) -> Path:
    """Train vskip-tiny on `data_dir/train.jsonl`; save it to `out_dir` like a hub checkpoint.

    From scratch, or with `init` (a vskip-tiny directory) its language stage continued from those weights.
    `device`: where to train (default: `loading.default_device`, a GPU when there is one).
    """
    from ..synth import corpus_text

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    device = torch.device(device) if device is not None else default_device()
    records = read_records(data_dir / "train.jsonl", required=("id", "image", "question", "answer", "cot"))
    if not records:
        raise BadInput(f"{data_dir / 'train.jsonl'}: no records to train on (the file is empty); "
                       "write one with `vskip synth --n-train` above 0")
    if init is None:
        tokenizer = build_tokenizer(corpus_text(records), sizes.vocab_size)
        processor = build_processor(tokenizer)
        model = build_model(tokenizer, sizes, seed=training.seed).to(device)
        settings = {"data": str(data_dir.resolve()), "sizes": asdict(sizes), "direct_share": direct_share}
        started = time.perf_counter()
        vision_log, objective = pretrain_vision(
            model, processor, records, data_dir, vision_training,
            checkpoint_dir=out_dir / "checkpoint-vision", settings={**settings, "training": asdict(vision_training)},
        )
        vision = {
            "vision_training": asdict(vision_training),
            "vision_seconds": round(time.perf_counter() - started, 1),
            "vision_held_out_accuracy": _held_out_accuracy(objective, processor, data_dir),
            "vision_log": vision_log,
        }
    else:
        init_dir = Path(resolve(str(init)))
        model, processor, continued = _continued(init_dir, device)
        sizes = TinySettings(**continued["sizes"])
        vision = {"init": {"model": str(init), "card": continued}, "vision_training": continued["vision_training"]}
        settings = {"data": str(data_dir.resolve()), "init": _weights_digest(init_dir), "direct_share": direct_share}

    model.model.visual.requires_grad_(False)
    images = {record["id"]: image_paths(record, data_dir)[0] for record in records}

    def sample_examples(rng: random.Random, n: int, progress: float) -> list[Example]:
        examples = []
        for record in rng.choices(records, k=n):
            image = load_image(images[record["id"]])
            mode = "direct" if rng.random() < direct_share else "cot"
            prompt = chat_prompt(processor, record["question"], mode)
            reply = response(record["cot"] if mode == "cot" else "", record["answer"])
            examples.append(Example([image], prompt, reply))
        return examples

    started = time.perf_counter()
    log = fit(
        model, processor, sample_examples, training, checkpoint_dir=out_dir / "checkpoint",
        description="vskip-tiny language",
        # The tower it learns to read is part of its settings: a new tower starts this stage afresh.
        settings={**settings, "vision_training": vision["vision_training"], "training": asdict(training)},
    )
    seconds = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(out_dir)
    save_processor(processor, out_dir)
    start = f"--init {init} " if init is not None else f"--vision-steps {vision_training.steps} "
    card = {
        "command": f"vskip tiny train --data {data_dir} --out {out_dir} {start}--steps {training.steps} "
        f"--lr {training.learning_rate:g} --text-layers {sizes.text_layers} --text-hidden {sizes.text_hidden} "
        f"--direct-share {direct_share}",
        "sizes": asdict(sizes),
        "training": asdict(training),
        "direct_share": direct_share,
        "train_records": len(records),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
        "machine": _machine(device),
        **vision,
        "log": log,
    }
    (out_dir / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    for checkpoint in ("checkpoint-vision", "checkpoint"):  # a continued run has no vision stage
        if (out_dir / checkpoint).exists():
            shutil.rmtree(out_dir / checkpoint)
    return out_dir


def _continued(init: Path, device: torch.device):
    """The model, processor and training card of a vskip-tiny to continue: its vocabulary, with this vskip's
    processor and chat template around it (a model trained before a template change learns the current one)."""
    from tokenizers import Tokenizer

    from .loading import load_model

    card_path = init / "training.json"
    if not card_path.is_file():
        raise BadInput(f"--init {init}: not a vskip-tiny directory (no training.json); "
                       "give one written by `vskip tiny train`")
    loaded = load_model(str(init), device=device, dtype=torch.float32)
    processor = build_processor(wrap_tokenizer(Tokenizer.from_file(str(init / "tokenizer.json"))))
    card = json.loads(card_path.read_text())
    logs = ("log", "vision_log")  # the curves stay in the continued model's own card
    return loaded.model, processor, {key: value for key, value in card.items() if key not in logs}


def _weights_digest(directory: Path) -> str:
    """What a continued run's checkpoint is keyed to: the weights it started from, not where they lie."""
    import hashlib

    return hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()


def _held_out_accuracy(objective, processor, data_dir: Path) -> dict[str, float] | None:
    """The tower's per-head accuracy on the validation split (none when the data has none)."""
    path = data_dir / "val.jsonl"
    val = read_records(path, required=("image",)) if path.is_file() else []
    return held_out_accuracy(objective, processor, val, data_dir) if val else None


def _machine(device: torch.device) -> str:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    return f"{platform.machine()}, {where}, torch {torch.__version__}"
