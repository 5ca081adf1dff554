from types import SimpleNamespace

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from vskip import capture
from vskip.capture import attention_with_image_mass, capture_visual_mass


def _naive_mass(query, key, rows, image_keys, scaling):
    """Grouped keys repeated for their query heads, causal softmax over every key, image columns summed."""
    heads, groups = query.shape[1], key.shape[1]
    key = key.repeat_interleave(heads // groups, dim=1)
    logits = query @ key.transpose(-1, -2) * scaling
    n = logits.shape[-1]
    logits = logits.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    mass = (logits.softmax(-1) * image_keys[:, None, None, :]).sum(-1)  # (B, H, T)
    return mass.gather(2, rows[:, None, :].expand(-1, heads, -1))


def test_image_mass_of_grouped_queries_equals_the_naive_computation():
    torch.manual_seed(0)
    query, key, value = torch.randn(2, 4, 12, 8), torch.randn(2, 2, 12, 8), torch.randn(2, 2, 12, 8)
    rows = torch.tensor([[5, 7, 11], [3, 4, 9]])
    image_keys = torch.zeros(2, 12, dtype=torch.bool)
    image_keys[:, 1:4] = True
    layer = SimpleNamespace(num_key_value_groups=2, is_causal=True)
    (output, _), mass = attention_with_image_mass(layer, query, key, value, None, image_keys, scaling=0.35)
    expected = _naive_mass(query, key, rows, image_keys.float(), 0.35)
    assert torch.allclose(mass.gather(2, rows[:, None, :].expand(-1, 4, -1)), expected, atol=1e-6)
    # The layer's own output is what plain SDPA gives: the indicator channels change no logit.
    plain, _ = sdpa_attention_forward(layer, query, key, value, None, scaling=0.35)
    assert torch.allclose(output, plain, atol=1e-6)


def test_row_blocks_bound_the_rows_recomputed_at_once(monkeypatch):
    monkeypatch.setattr(capture, "ROW_BLOCK_ELEMENTS", 2 * 4 * 12)
    assert [(b.start, b.stop) for b in capture.row_blocks(2 * 4, 3, 12)] == [(0, 1), (1, 2), (2, 3)]


def test_capture_restores_the_attention_implementation_after_an_error(tiny_random):
    model, family = tiny_random.model, tiny_random.family
    with pytest.raises(RuntimeError), capture_visual_mass(model, family, [1]):
        raise RuntimeError("boom")
    assert model.config.get_text_config()._attn_implementation == "sdpa"
