"""Evaluation: accuracy, CoT length, latency and visual grounding of a model (with or without an adapter).

Accuracy comes from batched greedy generation over every item; throughput is items per second of
that batched pass. Latency is measured at batch 1 (greedy, KV cache) on a fixed, seeded sample of
items, the same items for every run, since timing every item one by one would dominate the run. Given
a baseline it can run (`baseline_model`), the baseline and this model are timed side by side on each
sampled item (`latency.paired_latency`), and the speed-up is the ratio of their median latencies, per
family over that family's items, with its bootstrap interval (`latency.paired_speedup`). A run timed
alone has latencies but no speed-up: a ratio of timings taken minutes apart on a shared machine says
more about the machine than the model.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import torch

from . import metrics
from .distributed import gather_objects, is_main_process, process_count, process_index
from .errors import BadInput
from .generate import batch_generator, check_prompts, generation_runner, generation_settings
from .latency import Runner, paired_latency, speedup_text
from .lora import adapter_info
from .models import LoadedModel, located_path, model_identity, portable_path
from .prompts import AUTO, reference_answers
from .records import Record, iter_jsonl, write_jsonl_atomic
from .settings import DEFAULT_EVAL, MAX_NEW_TOKENS, EvalSettings
from .stage import fingerprint, remove_journals, run_stage, side_path

# The runners of a paired timing: this run, and the baseline beside it.
CANDIDATE, BASELINE = "candidate", "baseline"
# What a results file says of the run itself, beside the figures summarised from its items.
RUN_FIELDS = ("model", "adapter", "precision", "mode", "ratio", "max_new_tokens", "throughput_items_per_s")


def ratio_warning(model: str, adapter: str | Path | None, ratio: float | str | None) -> str | None:
    """Why asking for γ = `ratio` of this model may mean little, if it does: the model was never taught that γ
    (the ratios in the `vskip_adapter.json` of its adapter, or of the model itself for a fully distilled one),
    or was never distilled at all."""
    from .models import resolve

    if ratio is None or (ratio != AUTO and ratio >= 1.0):
        return None
    student = adapter if adapter is not None else resolve(model)
    info = adapter_info(student)
    if not info and adapter is None:
        return f"γ {ratio} asked of a model that was not distilled: only a distilled model has learned the γ marker"
    trained = info.get("ratios", [])
    if trained and not any(ratio == seen if AUTO in (ratio, seen) else abs(ratio - seen) < 1e-9 for seen in trained):
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
    """The results JSON at `path`, checked against `records` (`check_baseline`), with its model and adapter as
    paths from here (recorded relative to the file: `models.located_path`)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    data = path.read_bytes()
    try:
        baseline = json.loads(data)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        what = "a JSONL file of records" if _is_jsonl(data) else f"not JSON ({getattr(err, 'msg', err)})"
        raise BadInput(f"{path}: {what}; pass the results JSON that `vskip evaluate` wrote to --out") from None
    check_baseline(baseline, records, str(path))
    return {**baseline, **{key: located_path(baseline[key], path.parent) for key in ("model", "adapter")
                           if isinstance(baseline.get(key), str)}}


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
    if record.get("task") in metrics.ANLS_TASKS:
        item["anls"] = metrics.anls(generated.get("prediction") or "", reference_answers(record))
    if record.get("visual_words"):
        retained = metrics.visual_word_retention(record["visual_words"], generated["cot"])
        item["varr_kept"] = {kind: kept for kind, (kept, _) in retained.items()}
        item["varr_total"] = {kind: total for kind, (_, total) in retained.items()}
    if record.get("scene") is not None or record.get("document") is not None:
        item["attribute_mentions"], item["hallucinated"] = hallucinated_words(record, generated["cot"])
    return item


def forced_correct(
    loaded: LoadedModel,
    records: list[Record],
    base_dir: str | Path,
    *,
    ratio: float | None = None,
    batch_size: int = 16,
    progress: bool = True,
    journal: str | Path | None = None,
) -> list[bool]:
    """Per record, whether `loaded` answers right when handed the record's `compressed_cot` (after the prompt,
    with γ = `ratio`'s marker, or none) and asked only for the answer: what a compression leaves to answer from,
    with the writing of it taken out. With `progress`, a progress bar.

    With a `journal` path, the answers are journaled there as a stage's records are (`stage.run_stage`, keyed by
    the model, its precision, `ratio` and the records' content) and the journal is kept when all are done: an
    interrupted run resumes from it, and the caller removes it once it has used them.
    """
    from tqdm.auto import tqdm

    answer = partial(_forced_answers, loaded, base_dir=base_dir, ratio=ratio)
    if journal is None:
        starts = range(0, len(records), batch_size)
        bar = tqdm(starts, desc="forced answers", unit="batch", disable=not progress or len(starts) < 2)
        return [right for start in bar for right in answer(records[start : start + batch_size])]

    # Records may share an id (an item compressed at several γ): each is keyed by its place in `records`, which
    # their fingerprint in the settings ties to them.
    def journaled(keys: list[Record]) -> list[Record]:
        right = answer([records[int(key["id"])] for key in keys])
        return [{"id": key["id"], "correct": correct} for key, correct in zip(keys, right, strict=True)]

    done = run_stage(
        [{"id": str(index)} for index in range(len(records))],
        journaled,
        journal,
        settings={"model": model_identity(loaded.path), "precision": loaded.precision, "ratio": ratio,
                  "records": fingerprint(records)},
        batch_size=batch_size,
        description="forced answers",
        progress=progress,
        keep_journal=True,
    )
    return [result["correct"] for result in done]


def _forced_answers(
    loaded: LoadedModel, batch: list[Record], *, base_dir: str | Path, ratio: float | None
) -> list[bool]:
    """`forced_correct` of one batch."""
    from .encoding import encode, record_example
    from .generate import decode
    from .prompts import ANSWER_PREFIX, split_response

    examples = [record_example(loaded.processor, record, base_dir, ratio=ratio) for record in batch]
    for example, record in zip(examples, batch, strict=True):
        example.prompt += f"{record['compressed_cot']}\n{ANSWER_PREFIX}"
    inputs = encode(loaded.processor, examples, for_generation=True).inputs
    inputs = {key: value.to(loaded.model.device) for key, value in inputs.items()}
    output = decode(loaded, inputs, max_new_tokens=8)[:, inputs["input_ids"].shape[1] :]
    tokenizer = loaded.processor.tokenizer
    return [metrics.is_correct(split_response(ANSWER_PREFIX + tokenizer.decode(tokens, skip_special_tokens=True))[1],
                               record)
            for record, tokens in zip(batch, output, strict=True)]


def latency_sample(records: list[Record], settings: EvalSettings) -> list[Record]:
    """The items timed at batch 1: a seeded sample of `settings.latency_items`, the same for every run on these
    records; under a multi-process launch, this process's share of it (each times its share on its own device)."""
    sample = random.Random(settings.seed).sample(records, min(settings.latency_items, len(records)))
    return sample[process_index() :: process_count()]


@torch.inference_mode()
def timed_generation(
    runners: Mapping[str, Runner], records: list[Record], settings: EvalSettings, *, progress: bool = True
):
    """`latency.paired_latency` of the runners on the `latency_sample`, gathered over the processes:
    {runner name: {record id: seconds}}. With `progress`, the main process shows a bar of its items."""
    sample = latency_sample(records, settings)
    shown = progress and is_main_process()
    times = paired_latency(runners, sample, progress=shown) if sample else {name: {} for name in runners}
    parts = gather_objects(times)
    return {name: {key: value for part in parts for key, value in part[name].items()} for name in runners}


def evaluate(
    loaded: LoadedModel,
    records: list[Record],
    base_dir: str | Path,
    out: str | Path,
    *,
    settings: EvalSettings = DEFAULT_EVAL,
    baseline: dict | None = None,
    baseline_model=None,
    adapter: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate and write `out` (results JSON) and `OUT.items.jsonl` (per-item predictions).

    `baseline` is the results of the uncompressed run on the same items: it gives ActRatio (CoT tokens
    over the baseline's, per item). `baseline_model`, the model that made them (the same object as
    `loaded` where it is the same model), is run again with the baseline's mode, γ and length, side by
    side with `loaded` on the latency sample: that gives the speed-up. `adapter` names the adapter
    merged into `loaded`, for the results and the journal. `settings.latency_items` = 0 times nothing.
    """
    out = Path(out)
    items_path = side_path(out, ".items.jsonl")
    if baseline is not None:
        check_baseline(baseline, records)
    if baseline_model is not None and baseline is None:
        raise BadInput("a baseline model needs the baseline's results (its mode, γ and CoT lengths)")
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
        keep_journal=True,  # until the results are written: an interrupted latency pass resumes with them done
    )
    # Each batch's wall time is shared among its items, so their sum is the batched pass.
    batched_seconds = sum(result["latency_s"] for result in generated)
    runners = {CANDIDATE: generation_runner(loaded, base_dir, settings.mode, ratio=settings.ratio,
                                            max_new_tokens=settings.max_new_tokens)}
    if baseline_model is not None:
        runners[BASELINE] = generation_runner(baseline_model, base_dir, baseline.get("mode", "cot"),
                                              ratio=baseline.get("ratio"),
                                              max_new_tokens=baseline.get("max_new_tokens", MAX_NEW_TOKENS))
    times = timed_generation(runners, records, settings, progress=progress) if settings.latency_items else {}
    baseline_tokens = (baseline or {}).get("cot_tokens_by_id", {})
    items = []
    for result in generated:
        item = item_metrics(by_id[result["id"]], result)
        item["latency_s"] = times.get(CANDIDATE, {}).get(result["id"])
        item["latency_s_baseline"] = times.get(BASELINE, {}).get(result["id"])
        item["full_cot_tokens"] = baseline_tokens.get(result["id"])
        items.append(item)
    run = {
        # Recorded relative to the results, so that they work as a --baseline from anywhere (`read_baseline`).
        "model": portable_path(loaded.path, out.parent),
        "adapter": portable_path(adapter, out.parent) if adapter is not None else None,
        "precision": loaded.precision,
        "mode": settings.mode,
        "ratio": settings.ratio if settings.ratio is not None else 1.0,
        "max_new_tokens": settings.max_new_tokens,
        "throughput_items_per_s": len(items) / batched_seconds if batched_seconds else None,
    }
    results = _write_results(out, items, run)
    remove_journals(items_path)
    return results


def attach_latency(out: str | Path, latency: Mapping[str, float], baseline: Mapping[str, float] | None) -> dict:
    """The results at `out` (and their items) again, with batch-1 latencies timed elsewhere, per record id: this
    run's, and its baseline's timed beside it (`latency.paired_latency`, over several models at once)."""
    out = Path(out)
    results = json.loads(out.read_text())
    items = list(iter_jsonl(side_path(out, ".items.jsonl")))
    for item in items:
        item["latency_s"] = latency.get(item["id"])
        item["latency_s_baseline"] = (baseline or {}).get(item["id"])
    return _write_results(out, items, {key: results.get(key) for key in RUN_FIELDS})


def summary_line(results: Mapping) -> str:
    """The results in one line, every headline figure named, "–" where it was not measured: accuracy, CoT tokens,
    ActRatio (given a baseline), median latency (timed) and the speed-up with what it stands on (timed beside a
    baseline: `latency.speedup_text`)."""

    def figure(key: str, form: str) -> str:
        return form.format(results[key]) if results.get(key) is not None else "–"

    return (f"accuracy {figure('accuracy', '{:.3f}')}, CoT tokens {figure('cot_tokens_mean', '{:.1f}')}, "
            f"ActRatio {figure('act_ratio', '{:.3f}')}, latency {figure('latency_s_median', '{:.3f} s')}, "
            f"speed-up {speedup_text(results) or '–'}")


def _write_results(out: Path, items: list[Record], run: dict) -> dict:
    """Write the items to OUT.items.jsonl and `run` with their summary to `out`; return the results."""
    summary = metrics.summarize(items)
    results = {
        **run,
        **summary["overall"],
        "tasks": summary["tasks"],
        "cot_tokens_by_id": {item["id"]: item["cot_tokens"] for item in items},
    }
    if is_main_process():
        write_jsonl_atomic(side_path(out, ".items.jsonl"), items)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        tmp.replace(out)
    return results
