"""Scored records in, compressed chains of thought out: one record per method and ratio."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .errors import BadInput
from .gate import METHODS, SCORE_PATHS, TOKEN_FIELDS, WordScores, compress_text, keep_mask
from .prompts import check_ratio
from .records import Record, relocate, require_fields, write_jsonl_atomic

# What every scored record has, whichever methods compress it.
WORD_FIELDS = ("words", SCORE_PATHS["text"].field, SCORE_PATHS["visual"].field, "word_tokens")


def compress_records(
    scored: Iterable[Record],
    methods: Iterable[str],
    ratios: Iterable[float],
    seed: int = 0,
    turns: Mapping[str, Sequence[int]] | None = None,
) -> list[dict]:
    """For each scored record × method × ratio: the record's fields (per-token arrays dropped), `method`,
    `ratio`, `compressed_cot` and `keep` (one bool per CoT word). `turns`: per method, the turns each of its
    rankings takes in a cycle (see `gate.select`; default one each), e.g. `{"vskip": (2, 1)}` for a union that
    gives its visual ranking two turns to the text ranking's one. A method ranks by the score paths it needs
    (`gate.SCORE_PATHS`): records that carry `essential` flags (vskip-synth) can be compressed by `oracle`,
    records scored with an LLMLingua-2 classifier (`word_llmlingua2_score`) by `llmlingua2`.

    The `random` method draws from a generator seeded by `seed` and the record's id, so a record's
    mask does not depend on which other records are in the file.
    """
    methods, ratios = list(methods), [check_ratio(ratio) for ratio in ratios]
    unknown = [method for method in methods if method not in METHODS]
    if unknown or not methods:
        raise BadInput(f"unknown method(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(sorted(METHODS))}")
    if not ratios:
        raise BadInput("no ratio given; pass kept shares such as 0.5")
    out = []
    for record in scored:
        require_fields(record, ("words",), named=True)  # one no scorer wrote: the message says which stage did
        missing = [name for name in WORD_FIELDS if name not in record]
        if missing:
            raise BadInput(f"record {record.get('id')}: no {', '.join(missing)}; score the records first")
        base = {key: value for key, value in record.items() if key not in TOKEN_FIELDS}
        try:
            scores = WordScores.from_record(record)
        except BadInput as err:
            raise BadInput(f"record {record.get('id')}: {err}") from None
        record_seed = zlib.crc32(f"{seed}:{record.get('id')}".encode())
        for method in methods:
            for ratio in ratios:
                try:
                    keep = keep_mask(method, scores, ratio, turns=(turns or {}).get(method), seed=record_seed)
                except BadInput as err:
                    raise BadInput(f"record {record.get('id')}: {err}") from None
                out.append(
                    {
                        **base,
                        "method": method,
                        "ratio": ratio,
                        "compressed_cot": compress_text(record["words"], keep),
                        "keep": keep,
                    }
                )
    return out


def compress(
    scored: Iterable[Record],
    base_dir: str | Path,
    out: str | Path,
    methods: Iterable[str],
    ratios: Iterable[float],
    *,
    seed: int = 0,
    turns: Mapping[str, Sequence[int]] | None = None,
) -> list[dict]:
    """`compress_records`, written to `out` at once, their images resolving from `out`'s directory (the scored
    records' from `base_dir`); returns them as `compress_records` does."""
    results = compress_records(scored, methods, ratios, seed=seed, turns=turns)
    write_jsonl_atomic(out, relocate(results, base_dir, Path(out).parent))
    return results
