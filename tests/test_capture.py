import pytest
import torch

from vskip import capture
from vskip.capture import capture_visual_mass, image_attention_mass


def _naive_mass(query, key, rows, image_keys, scaling):
    """Grouped keys repeated for their query heads, causal softmax over every key, image columns summed."""
    heads, groups = query.shape[1], key.shape[1]
    key = key.repeat_interleave(heads // groups, dim=1)
    logits = query @ key.transpose(-1, -2) * scaling
    n = logits.shape[-1]
    logits = logits.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    mass = (logits.softmax(-1) * image_keys[:, None, None, :]).sum(-1)  # (B, H, T)
    return mass.gather(2, rows[:, None, :].expand(-1, heads, -1))


def test_image_mass_of_grouped_queries_equals_the_naive_computation(monkeypatch):
    torch.manual_seed(0)
    query, key = torch.randn(2, 4, 12, 8), torch.randn(2, 2, 12, 8)
    rows = torch.tensor([[5, 7, 11], [3, 4, 9]])
    image_keys = torch.zeros(2, 12, dtype=torch.bool)
    image_keys[:, 1:4] = True
    expected = _naive_mass(query, key, rows, image_keys.float(), 0.35)
    whole = image_attention_mass(query, key, None, rows, image_keys, 0.35)
    assert torch.allclose(whole, expected, atol=1e-6)
    # Blocks of one row at a time give the same rows: blocking only bounds the transient memory.
    monkeypatch.setattr(capture, "ROW_BLOCK_ELEMENTS", 2 * 4 * 12)
    assert len(list(capture.row_blocks(2 * 4, 3, 12))) == 3
    assert torch.allclose(image_attention_mass(query, key, None, rows, image_keys, 0.35), expected, atol=1e-6)


def test_capture_restores_the_attention_implementation_after_an_error(tiny_random):
    model, adapter = tiny_random.model, tiny_random.adapter
    with pytest.raises(RuntimeError), capture_visual_mass(model, adapter, [1]):
        raise RuntimeError("boom")
    assert model.config.get_text_config()._attn_implementation == "sdpa"
