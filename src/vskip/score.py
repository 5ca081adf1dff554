"""Score every chain-of-thought token on two paths, in one teacher-forced forward pass.

- text path, `surprisal(i) = -log p(c_i | image, question, c_<i)`, from the logits;
- visual path, `visual_mass(i) = max_h mean_{l in L_key} sum_{j in image} A^{l,h}[i, j]`, the
  attention mass from the token's query to the image keys;
- optionally (`blind=True`) the visual information gain, `gain(i) = NLL_blind(i) - NLL(i)`, from a
  second pass with the image removed: how much more likely the image makes the token.

The visual path never runs eager attention. The language model is switched to an attention
function that calls SDPA and, at the key layers only, recomputes the rows of the CoT queries from
the post-RoPE query and key it is given (softmax over all keys, then the image columns summed), so
memory grows with key layers x heads x CoT tokens, never layers x heads x T^2.

Token scores are aggregated to the CoT's whitespace words (the units the gate keeps or prunes) by
max over the word's tokens: a word matters as much as its most informative piece, and max keeps a
long number or name from being diluted by its predictable continuation tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from .encoding import Example, chat_prompt, encode, token_word_index, word_spans
from .errors import BadInput
from .models.adapters import Adapter
from .prompts import require_answer, response
from .records import Record, image_paths, load_image, require_fields

CAPTURE_ATTENTION = "vskip_visual_mass"
# Share of the layers that see the image, counted from the bottom, whose attention makes the visual
# path. The key-layer ablation of benchmarks/bench_compression.py chose the lower half: on
# vskip-synth it keeps more visual words than the upper half or all layers (BENCHMARKS.md), as
# FastV (arXiv 2403.06764) found image tokens drawing attention in shallow layers, little in deep ones.
DEFAULT_KEY_LAYER_SHARE = 0.5
# Upper bound on the elements of one block of recomputed attention rows (heads x rows x keys),
# so the capture's transient memory stays small whatever the sequence length.
ROW_BLOCK_ELEMENTS = 1 << 22
TOKEN_FIELDS = ("tokens", "text_score", "visual_score", "gain_score")
# What a record needs to be scored (the CLI asks the same of the file it reads).
SCORE_FIELDS = ("id", "image", "question", "cot")


def default_key_layers(adapter: Adapter, config) -> list[int]:
    """The lower `DEFAULT_KEY_LAYER_SHARE` of the layers that see the image (at least one)."""
    layers = adapter.image_layers(config)
    keep = max(1, math.ceil(len(layers) * DEFAULT_KEY_LAYER_SHARE))
    return layers[:keep]


# ---------------------------------------------------------------------------------------------
# The capture: an attention function that is SDPA plus the visual mass of chosen rows.


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


def _row_blocks(batch_heads: int, n_rows: int, n_keys: int) -> Iterator[slice]:
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
    for block in _row_blocks(batch * heads, rows.shape[1], key.shape[2]):
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
    for block in _row_blocks(batch * heads, rows.shape[1], key.shape[2]):
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


# ---------------------------------------------------------------------------------------------
# One batch: surprisal and visual mass of the given positions.


@dataclass
class BatchScores:
    surprisal: list[list[float]]
    visual_mass: list[list[float]] | None = None


@torch.no_grad()
def score_batch(
    model: torch.nn.Module,
    adapter: Adapter,
    inputs: dict[str, torch.Tensor],
    positions: list[list[int]],
    *,
    key_layers: list[int] | None = None,
    visual: bool = True,
) -> BatchScores:
    """Surprisal (nats) and visual mass of the tokens at `positions[b]` of each sequence b.

    Logits are computed only where a scored token is predicted. With `visual=False` (the blind
    pass) the model runs as it is, without the capture.
    """
    device = next(model.parameters()).device
    inputs = {name: value.to(device) for name, value in inputs.items()}
    ids = inputs["input_ids"]
    width = max(1, max(len(p) for p in positions))
    rows = torch.zeros(len(positions), width, dtype=torch.long, device=device)
    for b, p in enumerate(positions):
        rows[b, : len(p)] = torch.tensor(p, dtype=torch.long)
    predictors = (rows - 1).clamp_min(0)
    if visual:
        key_layers = default_key_layers(adapter, model.config) if key_layers is None else key_layers
        with capture_visual_mass(model, adapter, key_layers) as capture:
            capture.rows = rows
            image_id = adapter.image_token_id(model.config)
            capture.image_keys = None if image_id is None else (ids == image_id)
            logits = model(**inputs, logits_to_keep=predictors, use_cache=False).logits
            # A layer that never ran its capture (Mllama skips cross-attention without an image) saw no image.
            seen = next(iter(capture.mass.values()), torch.zeros(rows.shape[0], 1, width, device=device))
            masses = torch.stack([capture.mass.get(layer, torch.zeros_like(seen)) for layer in key_layers])
        visual_mass = masses.mean(dim=0).amax(dim=1)  # mean over key layers, max over heads: (B, Q)
        if "cross_attention_mask" in inputs:
            # Mllama hands rows that see no image an all-zero mask, the same as rows that see every key.
            sees_image = inputs["cross_attention_mask"].flatten(2).any(dim=-1)
            visual_mass = visual_mass * sees_image.gather(1, rows)
    else:
        logits = model(**inputs, logits_to_keep=predictors, use_cache=False).logits
    targets = ids.gather(1, rows)
    surprisal = torch.empty(rows.shape, dtype=torch.float32, device=device)
    for block in _row_blocks(1, width, logits.shape[-1] * len(positions)):
        chunk = logits[:, block].float()
        surprisal[:, block] = chunk.logsumexp(-1) - chunk.gather(-1, targets[:, block, None]).squeeze(-1)
    return BatchScores(
        [surprisal[b, : len(p)].tolist() for b, p in enumerate(positions)],
        [visual_mass[b, : len(p)].tolist() for b, p in enumerate(positions)] if visual else None,
    )


# ---------------------------------------------------------------------------------------------
# Records.


@dataclass
class _Item:
    record: Record
    cot: str
    reply: str
    word_of_token: list[int]  # CoT word index of each reply token, -1 outside the CoT
    tokens: list[str] = field(default_factory=list)


def _prepare(record: Record, tokenizer) -> _Item:
    require_fields(record, SCORE_FIELDS, named=True)
    answer = record["prediction"] if "prediction" in record else record.get("answer")
    answer = require_answer(record["id"], record.get("cot", ""), answer)
    cot = str(record.get("cot") or "").strip()
    reply = response(cot, answer)
    word_of_token = token_word_index(tokenizer, reply, cot)
    offsets = tokenizer(reply, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    tokens = [reply[start:end] for (start, end), word in zip(offsets, word_of_token, strict=True) if word >= 0]
    return _Item(record, cot, reply, word_of_token, tokens)


def aggregate_words(token_scores: list[float], token_words: list[int], n_words: int) -> list[float]:
    """Word score = max over the word's tokens (0.0 for a word that owns no token)."""
    words = [-math.inf] * n_words
    for score, word in zip(token_scores, token_words, strict=True):
        words[word] = max(words[word], score)
    return [0.0 if score == -math.inf else score for score in words]


def score_records(
    loaded_model,
    records: list[Record],
    base_dir: str | Path,
    *,
    key_layers: list[int] | None = None,
    blind: bool = False,
    batch_size: int = 8,
    progress: bool = True,
) -> list[dict]:
    """Scores records: each input record plus its CoT `tokens`, per-token `text_score` (surprisal) and
    `visual_score` (visual mass), its `words` and their `word_text_score`, `word_visual_score` and
    `word_tokens`; with `blind`, also `gain_score` and `word_gain_score` (NLL without the image minus NLL
    with it). Records without a CoT or without an answer (`prediction`, else `answer`) raise `BadInput`.
    """
    model, processor, adapter = loaded_model.model, loaded_model.processor, loaded_model.adapter
    if batch_size < 1:
        raise BadInput(f"batch size {batch_size} must be at least 1")
    if key_layers is not None:
        valid = adapter.image_layers(model.config)
        wrong = [layer for layer in key_layers if layer not in valid]
        if wrong or not key_layers:
            raise BadInput(f"key layers {key_layers} must be a non-empty subset of {valid}")
    items = [_prepare(record, processor.tokenizer) for record in records]
    results: list[dict] = []
    batches = range(0, len(items), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="score", unit="batch")
    for start in batches:
        batch = items[start : start + batch_size]
        examples = [
            Example(
                [load_image(path) for path in image_paths(item.record, base_dir)],
                chat_prompt(
                    processor,
                    item.record["question"],
                    "cot",
                    n_images=len(image_paths(item.record, base_dir)),
                ),
                item.reply,
            )
            for item in batch
        ]
        scores = _score_examples(model, adapter, processor, examples, batch, key_layers=key_layers, visual=True)
        if blind:
            blind_examples = [
                Example([], chat_prompt(processor, item.record["question"], "cot", n_images=0), item.reply)
                for item in batch
            ]
            blind_scores = _score_examples(model, adapter, processor, blind_examples, batch, visual=False)
        for b, item in enumerate(batch):
            token_words = [word for word in item.word_of_token if word >= 0]
            words = [item.cot[s:e] for s, e in word_spans(item.cot)]
            out = {
                **{k: v for k, v in item.record.items() if k not in TOKEN_FIELDS},
                "tokens": item.tokens,
                "text_score": scores.surprisal[b],
                "visual_score": scores.visual_mass[b],
            }
            if blind:
                out["gain_score"] = [
                    nb - n for nb, n in zip(blind_scores.surprisal[b], scores.surprisal[b], strict=True)
                ]
            out["words"] = words
            out["word_tokens"] = [token_words.count(w) for w in range(len(words))]
            out["word_text_score"] = aggregate_words(out["text_score"], token_words, len(words))
            out["word_visual_score"] = aggregate_words(out["visual_score"], token_words, len(words))
            if blind:
                out["word_gain_score"] = aggregate_words(out["gain_score"], token_words, len(words))
            results.append(out)
    return results


def _score_examples(model, adapter, processor, examples, items, **kwargs) -> BatchScores:
    encoded = encode(processor, examples)
    positions = [
        [span.start + i for i, word in enumerate(item.word_of_token) if word >= 0]
        for span, item in zip(encoded.reply_spans, items, strict=True)
    ]
    return score_batch(model, adapter, encoded.inputs, positions, **kwargs)


def score(
    loaded_model,
    records: list[Record],
    base_dir: str | Path,
    out: str | Path,
    *,
    key_layers: list[int] | None = None,
    blind: bool = False,
    batch_size: int = 8,
    progress: bool = True,
) -> list[dict]:
    """`score_records` over a dataset, written to `out`: resumable and sharded (see `stage.run_stage`).

    Every record is checked first: its fields, and that prompt and CoT fit the model's context. The written
    (and returned) records' images resolve from `out`'s directory.
    """
    from dataclasses import replace

    from .encoding import check_context
    from .generate import example_for
    from .models import model_identity
    from .stage import run_stage

    prepared = [(record, _prepare(record, loaded_model.processor.tokenizer)) for record in records]
    check_context(
        loaded_model.processor, loaded_model.model.config,
        ((r["id"], replace(example_for(loaded_model, r, base_dir, "cot"), reply=item.reply)) for r, item in prepared),
    )
    return run_stage(
        records,
        lambda batch: score_records(
            loaded_model, batch, base_dir, key_layers=key_layers, blind=blind, batch_size=batch_size, progress=False
        ),
        out,
        base_dir=base_dir,
        settings={"model": model_identity(loaded_model.path), "key_layers": key_layers, "blind": blind},
        batch_size=batch_size,
        description="score",
        progress=progress,
    )
