"""A generated reply as an output record: what every generation backend (transformers, vLLM) writes."""

from __future__ import annotations

from .metrics import is_correct
from .precision import stage_precision
from .prompts import Mode, split_response
from .records import Record


def generated_record(record: Record, mode: Mode, text: str, tokenizer, latency_s: float, precision: str) -> Record:
    """The output record of one generation: the input's fields (its `cot` kept as `reference_cot`, without the
    flags that index the reference CoT's words, `essential` and `roles`) plus `mode`, `cot`, `prediction`,
    `correct`, `cot_tokens`, `latency_s`, and the model's `precision` under `precision["generate"]`."""
    cot, prediction = split_response(text)
    result = {key: value for key, value in record.items() if key not in ("cot", "essential", "roles")}
    if record.get("cot") is not None:
        result["reference_cot"] = record["cot"]
    result.update(
        mode=mode,
        cot=cot,
        prediction=prediction,
        correct=is_correct(prediction, record),
        cot_tokens=len(tokenizer(cot, add_special_tokens=False)["input_ids"]) if cot else 0,
        latency_s=latency_s,
        precision=stage_precision(record, "generate", precision),
    )
    return result

