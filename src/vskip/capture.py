"""The visual path's attention capture: SDPA everywhere, plus the visual mass of chosen query rows.

Within `capture_visual_mass` the language model attends through an attention function registered
with transformers' `AttentionInterface`: it calls SDPA as the model would and, at the key layers
only, recomputes the rows of the chosen queries from the post-RoPE query and key it is given
(softmax over all keys, then the image columns summed, or Mllama's cross-attention focus). Memory
grows with key layers x heads x rows x keys, never layers x heads x T^2, and no layer is switched to
eager attention.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from .models.adapters import Adapter

CAPTURE_ATTENTION = "vskip_visual_mass"
# Upper bound on the elements of one block of recomputed attention rows (heads x rows x keys),
# so the capture's transient memory stays small whatever the sequence length.
ROW_BLOCK_ELEMENTS = 1 << 22



@dataclass
class _Capture:
    modules: dict[torch.nn.Module, int]  # attention module -> its layer index
    cross_attention: bool
    gates: dict[int, float]
    rows: torch.Tensor | None = None  # (B, Q) query positions, padded with 0
    image_keys: torch.Tensor | None = None  # (B, T) True at image key positions (self-attention)
    mass: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (B, H, Q)


_active: list[_Capture] = []


def _capture_attention(module, query, key, value, attention_mask, *args, **kwargs):
    output = sdpa_attention_forward(module, query, key, value, attention_mask, *args, **kwargs)
    capture = _active[-1] if _active else None
    if capture is not None and module in capture.modules and capture.rows is not None:
        scaling = kwargs.get("scaling")
        scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
        layer = capture.modules[module]
        if capture.cross_attention:
            mass = cross_attention_focus(query, key, attention_mask, capture.rows, scaling)
            mass = mass * capture.gates.get(layer, 1.0)
        else:
            mass = image_attention_mass(query, key, attention_mask, capture.rows, capture.image_keys, scaling)
        capture.mass[layer] = mass
    return output


AttentionInterface.register(CAPTURE_ATTENTION, _capture_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(CAPTURE_ATTENTION, sdpa_mask)


def row_blocks(batch_heads: int, n_rows: int, n_keys: int) -> Iterator[slice]:
    """Slices of the `n_rows` rows, each block at most `ROW_BLOCK_ELEMENTS` of batch_heads x rows x n_keys."""
    size = max(1, ROW_BLOCK_ELEMENTS // max(1, batch_heads * n_keys))
    for start in range(0, n_rows, size):
        yield slice(start, min(n_rows, start + size))


def _row_logits(query, key, attention_mask, rows: torch.Tensor, scaling: float, causal: bool):
    """Logits (B, H, q, S) of the query rows `rows` (B, q) against every key, masked as the model does.

    Grouped-query keys are shared by reshaping the queries, not by repeating the keys. Returns the
    logits and, where the model gave a mask, which keys each row may see (else None).
    """
    batch, heads, _, dim = query.shape
    groups, n_keys, n_rows = key.shape[1], key.shape[2], rows.shape[1]
    q = query.gather(2, rows[:, None, :, None].expand(batch, heads, n_rows, dim)).float() * scaling
    q = q.view(batch, groups, heads // groups * n_rows, dim)
    logits = (q @ key.transpose(-1, -2)).view(batch, heads, n_rows, n_keys)
    if attention_mask is None:
        if causal:
            allowed = torch.arange(n_keys, device=rows.device)[None, None, :] <= rows[:, :, None]
            logits.masked_fill_(~allowed[:, None], torch.finfo(logits.dtype).min)
        return logits, None
    mask = attention_mask[..., :n_keys].expand(batch, -1, -1, -1)
    mask = mask.gather(2, rows[:, None, :, None].expand(batch, mask.shape[1], n_rows, n_keys))
    if mask.dtype == torch.bool:
        return logits.masked_fill_(~mask, torch.finfo(logits.dtype).min), mask
    return logits.add_(mask.float()), mask > torch.finfo(mask.dtype).min / 2


def image_attention_mass(query, key, attention_mask, rows, image_keys, scaling: float) -> torch.Tensor:
    """`sum_{j in image} softmax_j(q_i . k_j * scaling + mask_ij)` per head and row i in `rows`: (B, H, Q).

    `query` (B, H, T, D) and `key` (B, KV, T, D) are post-RoPE, grouped keys serve their query
    heads, and the softmax runs over all keys, as the model's own attention does.
    """
    batch, heads = query.shape[:2]
    key = key.float()
    image = image_keys[:, None, : key.shape[2], None].float()  # (B, 1, S, 1)
    out = []
    for block in row_blocks(batch * heads, rows.shape[1], key.shape[2]):
        logits, _ = _row_logits(query, key, attention_mask, rows[:, block], scaling, causal=True)
        out.append((logits.softmax(dim=-1) @ image).squeeze(-1))
    return torch.cat(out, dim=-1)


def cross_attention_focus(query, key, attention_mask, rows, scaling: float) -> torch.Tensor:
    """Mllama's visual path: the focus of each row's cross-attention, `1 - H(A_i) / log n_i`: (B, H, Q).

    A cross-attention row sums to one over the vision keys, and, restricted to the real (not
    padding) tiles, still sums to one: the raw mass is 1 for every token that can see the image and
    says nothing about the token. What differs between tokens is where the forced unit of mass goes:
    a token that reads particular evidence concentrates it on a few patches, a token that needs
    nothing from the image spreads it (a near-uniform read adds the image's average, the same for
    every token). So the score is the normalised negative entropy over the row's `n_i` real keys:
    0 for a uniform read, 1 for a single patch, 0 for rows that see no image (text before the image
    token, padding). The caller weights each layer by |tanh(gate)|, the share of its output that
    reaches the residual stream, so a closed layer contributes nothing.
    """
    batch, heads = query.shape[:2]
    key = key.float()
    out = []
    for block in row_blocks(batch * heads, rows.shape[1], key.shape[2]):
        logits, real = _row_logits(query, key, attention_mask, rows[:, block], scaling, causal=False)
        if real is None:
            real = torch.ones_like(logits, dtype=torch.bool)[:, :1]
        weights = logits.softmax(dim=-1) * real
        total = weights.sum(dim=-1, keepdim=True)
        weights = weights / total.clamp_min(1e-30)
        entropy = -(weights * weights.clamp_min(1e-30).log()).sum(dim=-1)
        n_real = real.sum(dim=-1).float()
        focus = torch.where(n_real > 1, 1 - entropy / n_real.clamp_min(2).log(), (n_real == 1).float())
        out.append(focus)
    return torch.cat(out, dim=-1)


@contextmanager
def capture_visual_mass(model: torch.nn.Module, adapter: Adapter, key_layers: list[int]) -> Iterator[_Capture]:
    """Within the block the language model attends with SDPA plus the capture at `key_layers`.

    The previous attention implementation of the language model is restored on exit.
    """
    text_config = model.config.get_text_config()
    previous = text_config._attn_implementation
    capture = _Capture(
        adapter.attention_modules(model, key_layers), adapter.cross_attention, adapter.layer_gates(model)
    )
    model.set_attn_implementation({"text_config": CAPTURE_ATTENTION})
    _active.append(capture)
    try:
        yield capture
    finally:
        _active.remove(capture)
        model.set_attn_implementation({"text_config": previous})
