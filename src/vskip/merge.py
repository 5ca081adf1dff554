"""A LoRA student merged into its base for good: a model directory for stacks that load models, not adapters.

vLLM without LoRA, lmms-eval and serving stacks take a checkpoint directory. `merge_student` merges the
adapter as every vskip stage does in memory (`lora.load_with_adapter`) and saves the result the way
`vskip distill --full` saves a student (`models.save_checkpoint`): config, safetensors weights, the base's
processor files, and a `vskip_adapter.json` of kind "merged", so that `vskip evaluate --model DIR` still
knows which γ the student learned.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from .errors import BadInput
from .lora import (
    adapter_info,
    base_signature,
    load_with_adapter,
    peft_adapter_dir,
    write_adapter_info,
    write_model_card,
)
from .models import located_path, portable_path, save_checkpoint
from .stage import check_output, side_path


def merge_student(
    adapter: str | Path,
    out: str | Path,
    *,
    model: str | None = None,
    dtype: torch.dtype | str = "auto",
    replace: bool = False,
) -> Path:
    """Merge the LoRA student in `adapter` into its base and save it as a model directory `out`; return `out`.

    The base is `model`, else the one the adapter's `vskip_adapter.json` names. The weights are merged and
    saved in `dtype` (`models.load_model`'s policy for "auto"), so the merged model computes exactly what
    `load_with_adapter` gives at that dtype. Refused (`BadInput`, nothing written): a directory that is not a
    PEFT adapter or is already a model, an adapter of another base, an `out` that exists and is not empty unless
    `replace` (then it is replaced once the merged model is complete).
    """
    adapter, out = peft_adapter_dir(adapter), check_output(out, directory=True)
    if out.exists() and any(out.iterdir()) and not replace:
        raise BadInput(f"{out}: exists and is not empty; remove it or choose another --out")
    trained = adapter_info(adapter)
    if model is None and "base_model" not in trained:
        raise BadInput(f"{adapter}: names no base model (no vskip_adapter.json); pass the base as --model")
    loaded = load_with_adapter(model or located_path(trained["base_model"], adapter), adapter, dtype=dtype)
    info = {
        **trained,
        "kind": "merged",
        # Relative to the merged model (`models.portable_path`), as `vskip distill` records its base.
        "adapter": portable_path(adapter, out),
        "base_model": portable_path(loaded.path, out),
        "base_signature": base_signature(loaded.model.config),
        # How it was trained, and the dtype its merged weights were saved in.
        "precision": {**trained.get("precision", {}), "merged": loaded.precision},
    }
    # Written beside `out` and renamed into place: an interrupted merge leaves no half model that a rerun refuses.
    partial = side_path(out, ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save_checkpoint(loaded.model, loaded.path, partial)
    write_adapter_info(partial, info)
    write_model_card(partial, info)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return out
