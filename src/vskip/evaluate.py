"""Evaluation: accuracy, CoT length, latency and visual grounding of a model (with or without an adapter).

Accuracy comes from batched greedy generation over every item. Latency is measured at batch 1
(greedy, KV cache) on a fixed, seeded sample of items — the same items for every run — since
timing every item one by one would dominate the run; throughput is items per second of the
batched pass.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import metrics
from .distributed import gather_objects, is_main_process, process_count, process_index
from .errors import BadInput
from .generate import batch_generator, check_prompts, generation_settings
from .lora import adapter_info
from .models import LoadedModel
from .prompts import Mode, reference_answers
from .records import Record, write_jsonl_atomic
from .replies import MAX_NEW_TOKENS
from .stage import run_stage, side_path


@dataclass
class EvalSettings:
    mode: Mode = "cot"
    ratio: float | None = None
    batch_size: int = 32
    latency_items: int = 48
    max_new_tokens: int = MAX_NEW_TOKENS
    seed: int = 0


DEFAULT_SETTINGS = EvalSettings()


def ratio_warning(model: str, adapter: str | Path | None, ratio: float | None) -> str | None:
    """Why asking for γ = `ratio` of this model may mean little, if it does: the model was never taught that γ
    (the ratios in the `vskip_adapter.json` of its adapter, or of the model itself for a fully distilled one),
    or was never distilled at all."""
    from .models import resolve

    if ratio is None or ratio >= 1.0:
        return None
    student = adapter if adapter is not None else resolve(model)
    info = adapter_info(student)
    if not info and adapter is None:
        return f"γ {ratio} asked of a model that was not distilled: only a distilled model has learned the γ marker"
    trained = info.get("ratios", [])
    if trained and not any(abs(ratio - seen) < 1e-9 for seen in trained):
        return f"γ {ratio} asked of {student}, which was trained on γ {', '.join(map(str, trained))} only"
    return None


def check_baseline(baseline: dict, records: list[Record], name: str = "the baseline") -> dict:
    """`baseline`, if it is the results of `evaluate` on (at least) these records; else `BadInput`."""
    by_id = baseline.get("cot_tokens_by_id") if isinstance(baseline, dict) else None
    if not isinstance(by_id, dict):
        raise BadInput(f"{name}: not the results of `vskip evaluate` (no cot_tokens_by_id); pass the --out of one")
    missing = [record["id"] for record in records if record["id"] not in by_id]
    if missing:
        raise BadInput(
            f"{name}: measured on other items ({len(missing)} of the {len(records)} ids here are not in it, "
            f"e.g. {missing[0]!r}); pass the results of the uncompressed run on this dataset"
        )
    return baseline


def read_baseline(path: str | Path, records: list[Record]) -> dict:
    """The results JSON at `path`, checked against `records` (`check_baseline`)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    data = path.read_bytes()
    try:
        baseline = json.loads(data)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        what = "a JSONL file of records" if _is_jsonl(data) else f"not JSON ({getattr(err, 'msg', err)})"
        raise BadInput(f"{path}: {what}; pass the results JSON that `vskip evaluate` wrote to --out") from None
    return check_baseline(baseline, records, str(path))


def _is_jsonl(data: bytes) -> bool:
    lines = data.splitlines()
    try:
        return len(lines) > 1 and isinstance(json.loads(lines[0]), dict)
    except (ValueError, RecursionError):
        return False


def item_metrics(record: Record, generated: Record) -> Record:
    """Per-item figures that need the ground truth: ANLS, VARR, hallucinated attribute words."""
    from .synth import hallucinated_words

    item = dict(generated)
    if record.get("task") in ("doc", "docvqa"):
        item["anls"] = metrics.anls(generated.get("prediction") or "", reference_answers(record))
    if record.get("visual_words"):
        retained = metrics.visual_word_retention(record["visual_words"], generated["cot"])
        item["varr_kept"] = {kind: kept for kind, (kept, _) in retained.items()}
        item["varr_total"] = {kind: total for kind, (_, total) in retained.items()}
    if record.get("scene") is not None or record.get("document") is not None:
        item["attribute_mentions"], item["hallucinated"] = hallucinated_words(record, generated["cot"])
    return item


@torch.inference_mode()
def batch1_latency(loaded: LoadedModel, records: list[Record], base_dir, settings: EvalSettings) -> dict[str, float]:
    """Wall time of batch-1 greedy generation per sampled item (after one warm-up call).

    Under a multi-process launch each process times its share of the sample on its own device.
    """
    sample = random.Random(settings.seed).sample(records, min(settings.latency_items, len(records)))
    sample = sample[process_index() :: process_count()]
    latencies = {}
    if sample:
        run = batch_generator(loaded, base_dir, settings.mode, ratio=settings.ratio,
                              max_new_tokens=settings.max_new_tokens)
        run(sample[:1])
        for record in sample:
            start = time.perf_counter()
            run([record])
            latencies[record["id"]] = time.perf_counter() - start
    return {key: value for part in gather_objects(latencies) for key, value in part.items()}


def evaluate(
    loaded: LoadedModel,
    records: list[Record],
    base_dir: str | Path,
    out: str | Path,
    *,
    settings: EvalSettings = DEFAULT_SETTINGS,
    baseline: dict | None = None,
    adapter: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate and write `out` (results JSON) and `OUT.items.jsonl` (per-item predictions).

    `baseline` is the results of the uncompressed run on the same items: it gives ActRatio
    (CoT tokens over the baseline's, per item) and the speed-up (baseline latency over this one).
    `adapter` names the adapter merged into `loaded`, for the results and the journal.
    """
    out = Path(out)
    items_path = side_path(out, ".items.jsonl")
    if baseline is not None:
        check_baseline(baseline, records)
    check_prompts(loaded, records, base_dir, settings.mode, settings.ratio)
    by_id = {record["id"]: record for record in records}
    generated = run_stage(
        records,
        batch_generator(loaded, base_dir, settings.mode, ratio=settings.ratio, max_new_tokens=settings.max_new_tokens),
        items_path,
        base_dir=base_dir,
        settings=generation_settings(loaded, settings.mode, settings.ratio, settings.max_new_tokens, adapter),
        batch_size=settings.batch_size,
        description=f"evaluate {settings.mode} γ={settings.ratio or 1.0}",
        progress=progress,
    )
    # Each batch's wall time is shared among its items, so their sum is the batched pass.
    batched_seconds = sum(result["latency_s"] for result in generated)
    latencies = batch1_latency(loaded, records, base_dir, settings)
    baseline_tokens = (baseline or {}).get("cot_tokens_by_id", {})
    items = []
    for result in generated:
        item = item_metrics(by_id[result["id"]], result)
        item["latency_s"] = latencies.get(result["id"])
        item["full_cot_tokens"] = baseline_tokens.get(result["id"])
        items.append(item)
    if is_main_process():
        write_jsonl_atomic(items_path, items)
    summary = metrics.summarize(items)
    for block in [summary["overall"], *summary["tasks"].values()]:
        block["speedup"] = (
            metrics.speedup(block["latency_s_mean"], baseline["latency_s_mean"]) if baseline else 1.0
        )
    summary["overall"]["throughput_items_per_s"] = len(items) / batched_seconds if batched_seconds else None
    results = {
        "model": loaded.path,
        "adapter": str(adapter) if adapter is not None else None,
        "precision": loaded.precision,
        "mode": settings.mode,
        "ratio": settings.ratio if settings.ratio is not None else 1.0,
        **summary["overall"],
        "tasks": summary["tasks"],
        "cot_tokens_by_id": {item["id"]: item["cot_tokens"] for item in items},
    }
    if is_main_process():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        tmp.replace(out)
    return results
