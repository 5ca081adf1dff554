"""Score every chain-of-thought token on two paths, in one teacher-forced forward pass.

- text path, `surprisal(i) = -log p(c_i | image, question, c_<i)`, from the logits;
- visual path, `visual_mass(i) = max_h mean_{l in L_key} sum_{j in image} A^{l,h}[i, j]`, the
  attention mass from the token's query to the image keys (`VisualPath` holds the choices an ablation
  varies: the key layers, the row read, `i` or the row `i - 1` that predicted the token as the text
  path's logits do, and the order of the mean over layers and the max over heads);
- the dependency path (self-attention models), `dependency(i) = mean_{r in answer} max_h mean_{l in L_key}
  A^{l,h}[r, i]`: the attention the rows that predict the answer pay to the token, read at the same key layers
  and combined over layers and heads as the visual path is. The counters, running totals and comparisons an
  answer is computed from are sure for the model (low surprisal) and look little at the image (low visual
  mass); what marks them is that the answer reads them;
- optionally (`blind=True`) the visual information gain, `gain(i) = NLL_blind(i) - NLL(i)`, from a
  second pass with the image removed: how much more likely the image makes the token.

The visual path never runs eager attention: `capture.capture_visual_mass` recomputes the rows of
the CoT queries at the key layers only, so memory grows with key layers x heads x CoT tokens, never
layers x heads x T^2.

Token scores are aggregated to the CoT's whitespace words (the units the gate keeps or prunes) by
max over the word's tokens: a word matters as much as its most informative piece, and max keeps a
long number or name from being diluted by its predictable continuation tokens. A word's tokens are
all those it writes, a token of whitespace alone before it included (`encoding.token_word_index`).

Each path's record fields are named in one table, `gate.SCORE_PATHS` (the per-token field, the per-word field it
is aggregated to, and how a record gets it): `score_records` aggregates every token path it wrote by that table,
and `gate.TOKEN_FIELDS`, what later stages drop, is read from it. Adding a score path touches two places (see
`vskip.gate`): one entry in `gate.SCORE_PATHS` and one gate function; besides them, the scorer that computes it —
here, a `BatchScores` field written to the record under the entry's token field, or a module of its own that
writes the word field, as `vskip.llmlingua2` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .capture import capture_visual_mass, row_blocks
from .encoding import (
    Example,
    check_context,
    encode_within_context,
    lead_tokens,
    offsets_word_index,
    record_example,
    word_spans,
)
from .errors import BadInput
from .gate import SCORE_PATHS, TOKEN_FIELDS
from .llmlingua2 import Classifier, word_keep_probabilities
from .models.families import ModelFamily
from .precision import stage_precision
from .prompts import require_answer, response
from .records import Record, require_fields
from .settings import BATCH_SIZE, VisualPath

# What a record needs to be scored (the CLI asks the same of the file it reads).
SCORE_FIELDS = ("id", "image", "question", "cot")


def check_visual_path(visual: VisualPath, family: ModelFamily, config) -> None:
    """`BadInput` for key layers that do not see the image (`VisualPath` checks its other options itself)."""
    if visual.key_layers is not None:
        valid = family.image_layers(config)
        if not visual.key_layers or any(layer not in valid for layer in visual.key_layers):
            raise BadInput(f"key layers {list(visual.key_layers)} must be a non-empty subset of {valid}")


def default_key_layers(family: ModelFamily, config) -> list[int]:
    """Every layer that sees the image."""
    return family.image_layers(config)


# ---------------------------------------------------------------------------------------------
# One batch: surprisal and visual mass of the given positions.


@dataclass
class BatchScores:
    surprisal: list[list[float]]
    visual_mass: list[list[float]] | None = None
    dependency: list[list[float]] | None = None


def _combine(per_layer: torch.Tensor, aggregation: str) -> torch.Tensor:
    """(layers, B, heads, ...) -> (B, ...): mean over layers then max over heads, or the other order."""
    if aggregation == "layer-mean-head-max":
        return per_layer.mean(dim=0).amax(dim=1)
    return per_layer.amax(dim=2).mean(dim=0)


@torch.no_grad()
def score_batch(
    model: torch.nn.Module,
    family: ModelFamily,
    inputs: dict[str, torch.Tensor],
    positions: list[list[int]],
    *,
    visual: VisualPath | None = VisualPath(),
    answer_rows: list[list[int]] | None = None,
) -> BatchScores:
    """Surprisal (nats) and visual mass (read as `visual` says) of the tokens at `positions[b]` of each sequence b;
    with `answer_rows` (self-attention models), also their dependency: the attention the rows `answer_rows[b]` pay
    to each token, combined over the key layers and heads as the visual path is, then averaged over those rows.

    Logits are computed only where a scored token is predicted. With `visual=None` (the blind pass) the
    model runs as it is, without the capture.
    """
    device = next(model.parameters()).device
    inputs = {name: value.to(device) for name, value in inputs.items()}
    ids = inputs["input_ids"]
    rows, _ = _padded(positions, device)
    width = rows.shape[1]
    predictors = (rows - 1).clamp_min(0)
    dependency = None
    if visual is not None:
        key_layers = default_key_layers(family, model.config) if visual.key_layers is None else visual.key_layers
        read = rows if visual.row == "own" else predictors
        with capture_visual_mass(model, family, list(key_layers)) as capture:
            capture.rows = read
            capture.image_keys = torch.isin(ids, ids.new_tensor(family.visual_token_ids(model.config)))
            if answer_rows is not None and not family.cross_attention:
                capture.answer_rows, answer_valid = _padded(answer_rows, device)
            logits = model(**inputs, logits_to_keep=predictors, use_cache=False).logits
            # A layer that never ran its capture (Mllama skips cross-attention without an image) saw no image.
            seen = next(iter(capture.mass.values()), torch.zeros(rows.shape[0], 1, width, device=device))
            masses = torch.stack([capture.mass.get(layer, torch.zeros_like(seen)) for layer in key_layers])
            if capture.answer_attention:
                # (key layers, B, heads, R, T) -> (B, R, T) -> the mean over each sequence's answer rows -> (B, T)
                paid = _combine(torch.stack([capture.answer_attention[layer] for layer in key_layers]),
                                visual.aggregation)
                paid = (paid * answer_valid[..., None]).sum(dim=1) / answer_valid.sum(dim=1, keepdim=True).clamp_min(1)
                dependency = paid.gather(1, rows)
        visual_mass = _combine(masses, visual.aggregation)  # (key layers, B, heads, Q) -> (B, Q)
        if "cross_attention_mask" in inputs:
            # Mllama hands rows that see no image an all-zero mask, the same as rows that see every key.
            sees_image = inputs["cross_attention_mask"].flatten(2).any(dim=-1)
            visual_mass = visual_mass * sees_image.gather(1, read)
    else:
        logits = model(**inputs, logits_to_keep=predictors, use_cache=False).logits
    targets = ids.gather(1, rows)
    surprisal = torch.empty(rows.shape, dtype=torch.float32, device=device)
    for block in row_blocks(1, width, logits.shape[-1] * len(positions)):
        chunk = logits[:, block].float()
        surprisal[:, block] = chunk.logsumexp(-1) - chunk.gather(-1, targets[:, block, None]).squeeze(-1)

    def per_sequence(values: torch.Tensor | None) -> list[list[float]] | None:
        return None if values is None else [values[b, : len(p)].tolist() for b, p in enumerate(positions)]

    return BatchScores(
        per_sequence(surprisal), per_sequence(visual_mass if visual is not None else None), per_sequence(dependency)
    )


def _padded(positions: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, width) positions padded with 0, and (B, width) 1.0 where a position is real."""
    width = max(1, max(len(p) for p in positions))
    rows = torch.zeros(len(positions), width, dtype=torch.long, device=device)
    valid = torch.zeros(len(positions), width, device=device)
    for b, p in enumerate(positions):
        rows[b, : len(p)] = torch.tensor(p, dtype=torch.long)
        valid[b, : len(p)] = 1.0
    return rows, valid


# ---------------------------------------------------------------------------------------------
# Records.


@dataclass
class _Item:
    record: Record
    cot: str
    example: Example  # the record's images, decoded once, with its prompt and reply
    word_of_token: list[int]  # CoT word index of each reply token, -1 outside the CoT
    tokens: list[str]
    answer_tokens: list[int]  # indices of the reply tokens that write the answer


def check_scorable(records: Iterable[Record]) -> None:
    """`BadInput` naming the first record that cannot be scored: one without a CoT (or another of `SCORE_FIELDS`),
    or whose CoT has no answer (`prompts.cot_answer`)."""
    for record in records:
        require_fields(record, SCORE_FIELDS, named=True)
        require_answer(record)


def _prepare(record: Record, processor, base_dir: str | Path) -> _Item:
    """The record ready to score: its images decoded and its reply tokenised, once for every use of them."""
    cot = str(record["cot"]).strip()
    answer = require_answer(record)
    reply = response(cot, answer)
    offsets = processor.tokenizer(reply, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    word_of_token = offsets_word_index(offsets, reply, cot)
    tokens = [reply[start:end] for (start, end), word in zip(offsets, word_of_token, strict=True) if word >= 0]
    example = record_example(processor, record, base_dir, reply=reply)
    return _Item(record, cot, example, word_of_token, tokens, answer_token_indices(offsets, reply, answer))


def answer_token_indices(offsets: list[tuple[int, int]], reply: str, answer: str) -> list[int]:
    """The indices of the reply's tokens (character `offsets`) that write the answer, which ends the reply: those
    whose first non-space character is the answer's."""
    answer_start = len(reply) - len(answer)
    return [i for i, (start, end) in enumerate(offsets)
            if start + len(reply[start:end]) - len(reply[start:end].lstrip()) >= answer_start]


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
    visual: VisualPath = VisualPath(),
    blind: bool = False,
    llmlingua2: Classifier | None = None,
    batch_size: int = BATCH_SIZE,
    progress: bool = True,
) -> list[dict]:
    """Scores records: each input record plus its CoT `tokens`, per-token `text_score` (surprisal) and
    `visual_score` (visual mass, read as `visual` says), its `words` and their `word_text_score`,
    `word_visual_score`, `word_tokens` (a word's tokens in the CoT, the whitespace token before it included:
    they sum to the CoT's tokens) and
    `word_lead_tokens` (its tokens when it starts a compressed CoT); for self-attention models also
    `dependency_score` and `word_dependency_score` (the dependency path); with `blind`, also `gain_score` and
    `word_gain_score` (NLL without the image minus NLL with it); with an `llmlingua2` classifier, also
    `word_llmlingua2_score` (its keep probability, `llmlingua2.word_keep_probabilities`); and the model's
    precision under `precision["score"]`. Records without a CoT, or whose CoT has no answer
    (`prompts.cot_answer`), raise `BadInput` before any record is scored; a record the model cannot take
    (`encoding.encode_within_context`), when its batch comes (`score` checks them all first).
    """
    model, processor, family = loaded_model.model, loaded_model.processor, loaded_model.family
    if batch_size < 1:
        raise BadInput(f"batch size {batch_size} must be at least 1")
    check_visual_path(visual, family, model.config)
    check_scorable(records)
    results: list[dict] = []
    batches = range(0, len(records), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="score", unit="batch")
    for start in batches:
        # Prepared batch by batch: a dataset's decoded images are never all held at once.
        batch = [_prepare(record, processor, base_dir) for record in records[start : start + batch_size]]
        scores = _score_examples(model, family, processor, [item.example for item in batch], batch, visual=visual)
        if blind:
            blind_examples = [
                record_example(processor, item.record, base_dir, reply=item.example.reply, blind=True)
                for item in batch
            ]
            blind_scores = _score_examples(model, family, processor, blind_examples, batch, visual=None)
        for b, item in enumerate(batch):
            token_words = [word for word in item.word_of_token if word >= 0]
            words = [item.cot[s:e] for s, e in word_spans(item.cot)]
            out = {
                **{k: v for k, v in item.record.items() if k not in TOKEN_FIELDS},
                "precision": stage_precision(item.record, "score", loaded_model.precision),
                "tokens": item.tokens,
                "text_score": scores.surprisal[b],
                "visual_score": scores.visual_mass[b],
            }
            if blind:
                out["gain_score"] = [
                    nb - n for nb, n in zip(blind_scores.surprisal[b], scores.surprisal[b], strict=True)
                ]
            if scores.dependency is not None:
                out["dependency_score"] = scores.dependency[b]
            out["words"] = words
            out["word_tokens"] = [token_words.count(w) for w in range(len(words))]
            out["word_lead_tokens"] = lead_tokens(processor.tokenizer, words)
            for path in SCORE_PATHS.values():  # each path's token scores, aggregated to its word scores
                if path.token_field in out:
                    out[path.field] = aggregate_words(out[path.token_field], token_words, len(words))
            if llmlingua2 is not None:
                out["word_llmlingua2_score"] = word_keep_probabilities(llmlingua2, item.cot)
            results.append(out)
    return results


def _score_examples(model, family, processor, examples, items, **kwargs) -> BatchScores:
    # The context is checked on the very encoding that is scored: the batch is encoded once.
    encoded = encode_within_context(
        processor, model.config, [(item.record["id"], example) for item, example in zip(items, examples, strict=True)]
    )
    positions = [
        [span.start + i for i, word in enumerate(item.word_of_token) if word >= 0]
        for span, item in zip(encoded.reply_spans, items, strict=True)
    ]
    # The rows that predict the answer's tokens: where the model reads what it needs to write the answer.
    answer_rows = [[span.start + i - 1 for i in item.answer_tokens]
                   for span, item in zip(encoded.reply_spans, items, strict=True)]
    return score_batch(model, family, encoded.inputs, positions, answer_rows=answer_rows, **kwargs)


def score(
    loaded_model,
    records: list[Record],
    base_dir: str | Path,
    out: str | Path,
    *,
    visual: VisualPath = VisualPath(),
    blind: bool = False,
    llmlingua2: Classifier | None = None,
    batch_size: int = BATCH_SIZE,
    progress: bool = True,
) -> list[dict]:
    """`score_records` over a dataset, written to `out`: resumable and sharded (see `stage.run_stage`).

    Every record's fields and answer (`check_scorable`), the visual path, and that each record's prompt and CoT
    fit the model's context are checked before any work, a few records at a time (so a bad record never costs a
    run: the one thing each image is decoded twice for; scoring then decodes and tokenises it once). The written
    (and returned) records' images resolve from `out`'s directory.
    """
    from .models import model_identity
    from .stage import run_stage

    check_visual_path(visual, loaded_model.family, loaded_model.model.config)
    check_scorable(records)
    processor = loaded_model.processor
    check_context(processor, loaded_model.model.config,
                  ((record["id"], _prepare(record, processor, base_dir).example) for record in records))
    return run_stage(
        records,
        lambda batch: score_records(
            loaded_model, batch, base_dir, visual=visual, blind=blind, llmlingua2=llmlingua2, batch_size=batch_size,
            progress=False,
        ),
        out,
        base_dir=base_dir,
        settings={
            "model": model_identity(loaded_model.path),
            "visual": asdict(visual),
            "blind": blind,
            "llmlingua2": None if llmlingua2 is None else model_identity(llmlingua2.path),
            "precision": loaded_model.precision,
        },
        batch_size=batch_size,
        description="score",
        progress=progress,
    )


def score_model(
    model: str,
    records: list[Record],
    base_dir: str | Path,
    out: str | Path,
    *,
    visual: VisualPath = VisualPath(),
    blind: bool = False,
    llmlingua2_model: str | None = None,
    batch_size: int = BATCH_SIZE,
    progress: bool = True,
    **load_options,
) -> list[dict]:
    """`score` with `model` loaded (`models.load_model`; `load_options`: `dtype`, `allow_pickle`,
    `trust_remote_code`) and, given `llmlingua2_model`, its LLMLingua-2 classifier (`llmlingua2.load_classifier`,
    under the same `allow_pickle` and `trust_remote_code`): what `vskip score` runs."""
    from .llmlingua2 import load_classifier
    from .models import load_model

    permissions = {key: load_options.get(key, False) for key in ("allow_pickle", "trust_remote_code")}
    classifier = None if llmlingua2_model is None else load_classifier(llmlingua2_model, **permissions)
    return score(load_model(model, **load_options), records, base_dir, out, visual=visual, blind=blind,
                 llmlingua2=classifier, batch_size=batch_size, progress=progress)
