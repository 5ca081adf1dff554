"""The visual path's attention capture: SDPA everywhere, and at the key layers the visual mass of every row.

Within `capture_visual_mass` the language model attends through an attention function registered
with transformers' `AttentionInterface`. At the key layers of a self-attention model the layer's own
SDPA call carries the image indicator as extra value channels (`attention_with_image_mass`): the
output of those channels is each row's attention mass on the image, computed by the fused kernel
with the layer's own mask and scaling, with no `heads x T x T` weights in memory and no second
attention call. Mllama's cross-attention focus (an entropy, not a weighted sum) recomputes the
chosen rows' weights from the post-RoPE query and key instead, and so does the dependency path
(self-attention only) for the answer's few rows over every key. No layer is switched to eager
attention.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from .models.families import ModelFamily

CAPTURE_ATTENTION = "vskip_visual_mass"
# Upper bound on the elements of one block of recomputed attention rows (heads x rows x keys),
# so the capture's transient memory stays small whatever the sequence length.
ROW_BLOCK_ELEMENTS = 1 << 22
# Channels the image indicator adds to a key layer's values (queries and keys get as many zeros, which leave
# every logit as it is): fused kernels want one head size for all three, a multiple of 8 on GPUs.
INDICATOR_CHANNELS = 8

@dataclass
class _Capture:
    modules: dict[torch.nn.Module, int]  # attention module -> its layer index
    cross_attention: bool
    gates: dict[int, float]
    rows: torch.Tensor | None = None  # (B, Q) query positions, padded with 0
    image_keys: torch.Tensor | None = None  # (B, T) True at image (and video) key positions (self-attention)
    mass: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (B, H, Q)
    # The dependency path: the attention weights of a few query rows (the answer's) over every key.
    answer_rows: torch.Tensor | None = None  # (B, R) query positions, padded with 0
    answer_attention: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (B, H, R, T)


_active: list[_Capture] = []


def _capture_attention(module, query, key, value, attention_mask, **kwargs):
    capture = _active[-1] if _active else None
    layer = None if capture is None or capture.rows is None else capture.modules.get(module)
    if layer is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    scaling = kwargs.pop("scaling", None)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    if capture.cross_attention:
        mass = cross_attention_focus(query, key, attention_mask, capture.rows, scaling)
        capture.mass[layer] = mass * capture.gates.get(layer, 1.0)
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    output, mass = attention_with_image_mass(
        module, query, key, value, attention_mask, capture.image_keys, scaling=scaling, **kwargs
    )
    rows = capture.rows[:, None, :].expand(-1, mass.shape[1], -1)
    capture.mass[layer] = mass.gather(2, rows)
    if capture.answer_rows is not None:
        logits, _ = _row_logits(query, key.float(), attention_mask, capture.answer_rows, scaling, causal=True)
        capture.answer_attention[layer] = logits.softmax(dim=-1)
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
        if causal:  # SDPA was handed no mask because the model relies on `is_causal`
            allowed = torch.arange(n_keys, device=rows.device)[None, None, :] <= rows[:, :, None]
            logits.masked_fill_(~allowed[:, None], torch.finfo(logits.dtype).min)
        return logits, None
    mask = attention_mask[..., :n_keys].expand(batch, -1, -1, -1)
    mask = mask.gather(2, rows[:, None, :, None].expand(batch, mask.shape[1], n_rows, n_keys))
    if mask.dtype == torch.bool:
        return logits.masked_fill_(~mask, torch.finfo(logits.dtype).min), mask
    return logits.add_(mask.float()), mask > torch.finfo(mask.dtype).min / 2


def attention_with_image_mass(module, query, key, value, attention_mask, image_keys, *, scaling: float, **kwargs):
    """The layer's SDPA attention output, and `sum_{j in image} softmax_j(q_i . k_j * scaling + mask_ij)` per head
    and query row i: (B, H, T), in the same call.

    The values gain `INDICATOR_CHANNELS` channels that are 1 at the image keys (`image_keys`, (B, T)) and 0
    elsewhere, so those output channels hold each row's attention mass on the image; queries and keys gain as many
    zero channels, which change no logit (the scaling is passed as it was). The first channels of the output are
    the layer's own, handed back as the model expects them.
    """
    dim = value.shape[-1]
    batch, groups, n_keys, _ = key.shape
    indicator = image_keys[:, None, :n_keys, None].to(value.dtype).expand(batch, groups, n_keys, INDICATOR_CHANNELS)
    output, weights = sdpa_attention_forward(
        module,
        _pad_channels(query, INDICATOR_CHANNELS),
        _pad_channels(key, INDICATOR_CHANNELS),
        torch.cat([value, indicator], dim=-1),
        attention_mask,
        scaling=scaling,
        **kwargs,
    )
    # output: (B, T, H, dim + INDICATOR_CHANNELS)
    return (output[..., :dim], weights), output[..., dim].transpose(1, 2).float()


def _pad_channels(states: torch.Tensor, channels: int) -> torch.Tensor:
    return torch.nn.functional.pad(states, (0, channels))


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
def capture_visual_mass(model: torch.nn.Module, family: ModelFamily, key_layers: list[int]) -> Iterator[_Capture]:
    """Within the block the language model attends with SDPA plus the capture at `key_layers`.

    The previous attention implementation of the language model is restored on exit.
    """
    text_config = model.config.get_text_config()
    previous = text_config._attn_implementation
    capture = _Capture(
        family.attention_modules(model, key_layers), family.cross_attention, family.layer_gates(model)
    )
    model.set_attn_implementation({"text_config": CAPTURE_ATTENTION})
    _active.append(capture)
    try:
        yield capture
    finally:
        _active.remove(capture)
        model.set_attn_implementation({"text_config": previous})
