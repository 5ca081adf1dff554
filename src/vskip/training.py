"""The training loop shared by vskip-tiny's pre-training and LoRA distillation.

Both recipes train a model on (image, prompt) → reply with the loss on the reply tokens only;
they differ in which parameters are trainable and which examples they draw, not in the loop.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .encoding import Encoded, Example, encode
from .errors import BadInput, warn
from .files import atomic_path
from .settings import TrainSettings

IGNORE_INDEX = -100
# Process r seeds its RNGs with seed + r * RANK_SEED_STRIDE: process 0 draws what a single process draws.
RANK_SEED_STRIDE = 1_000_003


def batch_inputs(processor, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
    """Teacher-forcing inputs with `labels` set on the reply tokens and ignored elsewhere."""
    return with_labels(encode(processor, list(examples)))


def with_labels(encoded: Encoded) -> dict[str, torch.Tensor]:
    """An encoded teacher-forcing batch's inputs with `labels` set on the reply tokens and ignored elsewhere."""
    labels = torch.full_like(encoded.inputs["input_ids"], IGNORE_INDEX)
    for row, span in enumerate(encoded.reply_spans):
        labels[row, span] = encoded.inputs["input_ids"][row, span]
    return {**encoded.inputs, "labels": labels}


def warn_if_short(length: str, config: TrainSettings) -> None:
    """Warn when `config`'s run (`length`: its steps as the user gave them) ends before its learning rate has warmed
    up to its peak."""
    if config.steps < config.warmup_steps:
        warn(f"{length} ends within the {config.warmup_steps} warm-up steps: the learning rate never reaches its "
             f"peak ({config.learning_rate:g})")


def cosine_schedule(step: int, config: TrainSettings) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def fit(
    model: torch.nn.Module,
    processor,
    sample_examples: Callable[[random.Random, int, float], list[Example]],
    config: TrainSettings,
    *,
    checkpoint_dir: str | Path | None = None,
    description: str = "train",
    settings: Mapping[str, Any] | None = None,
) -> list[dict]:
    """Train on (image, prompt) → reply examples drawn by `sample_examples(rng, batch_size, progress)`; see `train`."""
    return train(
        model,
        lambda rng, n, progress: batch_inputs(processor, sample_examples(rng, n, progress)),
        config,
        checkpoint_dir=checkpoint_dir,
        description=description,
        settings=settings,
    )


def train(
    model: torch.nn.Module,
    sample_batch: Callable[[random.Random, int, float], dict[str, torch.Tensor]],
    config: TrainSettings,
    *,
    checkpoint_dir: str | Path | None = None,
    description: str = "train",
    settings: Mapping[str, Any] | None = None,
) -> list[dict]:
    """Train for `config.steps` steps on `model(**sample_batch(rng, batch_size, progress)).loss`, `progress` being
    the share of the steps done before this one (the clock of a sampler that follows a schedule, as distillation's
    curriculum over γ does; others ignore it).

    With a `checkpoint_dir`, the model, optimizer, RNG and log are saved every
    `checkpoint_every` steps and a rerun continues from the last checkpoint, drawing the same
    batches an uninterrupted run would have drawn. Returns the log (one row per `log_every`).
    `settings` (JSON values: model, data, recipe) are saved with the checkpoint; a checkpoint
    saved with other settings is not resumed but trained over afresh, with one line saying so.

    Under a multi-process launch (see `distributed`) the model is wrapped in DistributedDataParallel:
    each process draws its own `batch_size` examples from its own RNG (process 0 the ones a single
    process would draw), gradients are averaged, so a step sees `processes x batch_size` examples;
    the main process writes the checkpoints and every process returns the same trained model.
    """
    from .distributed import barrier, gather_objects, is_main_process, mean_over_processes, process_count, process_index

    if config.steps is None:
        raise ValueError("config.steps is None: a run sets them from its data first (as `distill` does)")
    rank, world = process_index(), process_count()
    seed = config.seed + RANK_SEED_STRIDE * rank
    torch.manual_seed(seed)
    rng = random.Random(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    device = trainable[0].device
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_schedule(step, config))
    log: list[dict] = []
    start = 0
    state_path = Path(checkpoint_dir) / "trainer_state.pt" if checkpoint_dir else None
    settings = json.loads(json.dumps(settings)) if settings is not None else None  # as saved: tuples are lists
    found = state_path is not None and state_path.is_file()
    state = torch.load(state_path, weights_only=False, map_location="cpu") if found else None
    if state is not None and state.get("settings") != settings:
        if is_main_process():
            print(f"vskip: {state_path} comes from a run with other settings; starting afresh", file=sys.stderr)
        state = None
    if state is not None:
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        # Older vskip saved a single process's generators on their own.
        rngs = state["process_rngs"] if "process_rngs" in state else [(state["rng"], state["torch_rng"])]
        if len(rngs) != world:
            raise BadInput(
                f"{state_path} was written by {len(rngs)} process(es); resume with as many, or remove it to restart"
            )
        _set_rng_states(rng, device, rngs[rank])
        start, log = state["step"], state["log"]

    forward = _data_parallel(model)
    model.train()
    running = 0.0
    bar = tqdm(
        range(start, config.steps), initial=start, total=config.steps, desc=description, disable=not is_main_process()
    )
    for step in bar:
        batch = sample_batch(rng, config.batch_size, step / config.steps)
        running += train_step(forward, batch, trainable, optimizer, config.max_grad_norm)
        scheduler.step()
        if (step + 1) % config.log_every == 0:
            loss_mean = mean_over_processes(running / config.log_every)
            log.append({"step": step + 1, "loss": loss_mean, "lr": scheduler.get_last_lr()[0]})
            bar.set_postfix(loss=f"{log[-1]['loss']:.3f}")
            running = 0.0
        done = step + 1 == config.steps
        if state_path and (done or (config.checkpoint_every and (step + 1) % config.checkpoint_every == 0)):
            rngs = gather_objects(_rng_states(rng, device))
            if is_main_process():
                _save_state(state_path, model, optimizer, scheduler, rngs, step + 1, log, settings)
            barrier()
    model.eval()
    return log


def train_step(forward, batch: dict[str, torch.Tensor], trainable: list, optimizer, max_grad_norm: float) -> float:
    """One optimizer step of `forward` (the model, or its data-parallel wrapper) on a batch with `labels`;
    gradients of the `trainable` parameters are clipped to `max_grad_norm`. Returns the loss."""
    device = next(iter(trainable)).device
    # No KV cache: a training forward never decodes, and the cache would hold every layer's keys and values.
    loss = forward(**{key: value.to(device) for key, value in batch.items()}, use_cache=False).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def _data_parallel(model: torch.nn.Module) -> torch.nn.Module:
    """The model wrapped for data-parallel training when there are several processes, else the model."""
    from .distributed import process_count

    if process_count() == 1:
        return model
    from accelerate import Accelerator

    # Only the model goes through accelerate: a prepared scheduler would step once per process.
    return Accelerator(cpu=model.device.type == "cpu").prepare_model(model, device_placement=False)


def _rng_states(rng: random.Random, device: torch.device) -> tuple:
    """Every generator a step draws from: the batches' (`rng`), torch's on the CPU and, on a GPU, that GPU's
    (dropout there): restored on resume, a run draws what an uninterrupted one would have drawn."""
    return rng.getstate(), torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_states(rng: random.Random, device: torch.device, states: Sequence) -> None:
    python, cpu, *gpu = states  # checkpoints of older vskip kept no GPU state
    rng.setstate(python)
    torch.set_rng_state(cpu)
    if gpu and gpu[0] is not None:
        torch.cuda.set_rng_state(gpu[0], device)


def _save_state(path: Path, model, optimizer, scheduler, rngs: list, step: int, log: list[dict], settings) -> None:
    trainable_names = {name for name, p in model.named_parameters() if p.requires_grad}
    state = {
        # Only what training changes: a LoRA checkpoint stays the size of the adapter.
        "model": {k: v for k, v in model.state_dict().items() if k in trainable_names},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "process_rngs": rngs,
        "step": step,
        "log": log,
        "settings": settings,
    }
    with atomic_path(path) as partial:
        torch.save(state, partial)
