"""Scored records in, compressed chains of thought out: one record per method and ratio."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from .errors import BadInput
from .gate import METHODS, UNION_SPLIT, compress_text, keep_mask
from .prompts import check_ratio
from .records import Record, require_fields
from .settings import TOKEN_FIELDS

WORD_FIELDS = ("words", "word_text_score", "word_visual_score", "word_tokens")


def compress_records(
    scored: Iterable[Record],
    methods: Iterable[str],
    ratios: Iterable[float],
    seed: int = 0,
    union_split: tuple[int, int] = UNION_SPLIT,
) -> list[dict]:
    """For each scored record × method × ratio: the record's fields (per-token arrays dropped), `method`,
    `ratio`, `compressed_cot` and `keep` (one bool per CoT word). `union_split` is the turns the `vskip`
    union gives its visual and its text ranking in each cycle (see `gate.select`); records that carry
    `essential` flags (vskip-synth) can be compressed by `oracle`, records scored with an LLMLingua-2 classifier
    (`word_llmlingua2_score`) by `llmlingua2`.

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
        record_seed = zlib.crc32(f"{seed}:{record.get('id')}".encode())
        for method in methods:
            for ratio in ratios:
                try:
                    keep = keep_mask(
                        method,
                        text=record["word_text_score"],
                        visual=record["word_visual_score"],
                        gain=record.get("word_gain_score"),
                        word_tokens=record["word_tokens"],
                        lead_tokens=record.get("word_lead_tokens"),
                        essential=record.get("essential"),
                        dependency=record.get("word_dependency_score"),
                        llmlingua2=record.get("word_llmlingua2_score"),
                        turns=union_split if method == "vskip" else None,
                        ratio=ratio,
                        seed=record_seed,
                    )
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
