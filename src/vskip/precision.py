"""One precision policy for every stage that loads a model (`--dtype`).

`auto`, the default, is bfloat16 on a CUDA GPU that supports it and float32 elsewhere: Qwen2-VL and
its peers are trained and published in bf16, a 7B model in fp32 is 28 GB before activations, and on
a CPU bf16 matrix products are slower than fp32 and the runs are small. A GPU without bf16 (V100,
T4) also gets float32: float16 halves the memory but overflows in some Qwen2 layers, so it is only
taken when asked for. The teacher's generation and its scoring follow the same policy, so a chain of
thought is scored at the precision that wrote it.

torch is imported inside the functions: the CLI builds its parser from `DTYPES` without loading it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import BadInput, warn

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "bfloat16", "float16", "float32")


def resolve_dtype(name: str, device: torch.device | str) -> torch.dtype:
    """The torch dtype `name` (one of `DTYPES`) stands for on `device`."""
    import torch

    if name not in DTYPES:
        raise BadInput(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    if name == "bfloat16" and torch.device(device).type == "cpu" and not cpu_multiplies_bfloat16():
        warn("this CPU has no bfloat16 arithmetic (AVX512-BF16 or AMX), so torch emulates it: ~20x slower than "
             "float32 in a distillation step (docs/precision.md); --dtype auto keeps float32")
    if name != "auto":
        return getattr(torch, name)
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def cpu_multiplies_bfloat16() -> bool:
    """Whether this CPU multiplies in bfloat16 natively (AVX512-BF16 or AMX), by torch's own checks; they are
    private in torch 2.13, so where a torch lacks them the answer is yes (no warning rather than a wrong one)."""
    import torch.cpu

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is None or check() for check in checks)


def dtype_name(dtype: torch.dtype) -> str:
    """"bfloat16" for torch.bfloat16: the name outputs record and `--dtype` takes."""
    return str(dtype).removeprefix("torch.")


def stage_precision(record: Mapping[str, Any], stage: str, precision: str) -> dict[str, str]:
    """The record's `precision` map with `stage` set: each stage that ran a model on it adds its own entry,
    so a scored record says at which precision its CoT was written and at which it was scored."""
    return {**(record.get("precision") or {}), stage: precision}
