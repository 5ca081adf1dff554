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
from pathlib import Path

import torch

from . import metrics
from .distributed import gather_objects, is_main_process, process_count, process_index
from .errors import BadInput, VSkipError, warn
from .files import write_atomic
from .generate import (
    GenerationBackend,
    backend_type,
    batch_generator,
    check_prompts,
    generation_runner,
    generation_settings,
    load_backend,
)
from .latency import Runner, paired_latency, speedup_text
from .lora import adapter_info
from .models import LoadedModel, located_path, model_identity, portable_path
from .prompts import AUTO, reference_answers
from .records import Record, iter_jsonl, write_jsonl_atomic
from .settings import DEFAULT_EVAL, MAX_NEW_TOKENS, EvalSettings
from .stage import remove_journals, run_stage, side_path

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


def check_baseline_model(baseline: dict, name: str = "the baseline") -> None:
    """Refuse, before any work, a baseline to time beside this run whose model or adapter is not where its results
    (`read_baseline`, read from `name`) record them."""
    from .lora import peft_adapter_dir
    from .models import check_model_source

    try:
        if not baseline.get("model"):
            raise BadInput("it names no model")
        check_model_source(baseline["model"])
        if baseline.get("adapter"):
            peft_adapter_dir(baseline["adapter"])
    except BadInput as err:
        raise BadInput(f"{name}: its model cannot be timed beside this run ({err}); move it back where "
                       "the results record it, or pass --latency-items 0") from None


def baseline_model(
    baseline: dict, loaded: GenerationBackend, model: str, adapter: str | Path | None = None, **load_options
) -> GenerationBackend | None:
    """The model that made the baseline's results (its recorded model and adapter, loaded with `load_options`), to
    time beside `loaded` (`model` with `adapter`): `loaded` itself where it is the same; None, with a warning, where
    it cannot run here (or `loaded`'s backend times no baseline beside it)."""

    def unmeasured(why: str) -> None:
        warn(f"no speed-up: {why}; ActRatio is the figure to read")

    if not loaded.times_baseline:
        return unmeasured(f"the {loaded.name} backend does not time a baseline beside the run")
    recorded = (model_identity(baseline["model"]), baseline.get("adapter") and model_identity(baseline["adapter"]))
    if recorded == (model_identity(model), adapter and model_identity(adapter)):
        return loaded
    try:
        return load_backend(loaded.name, baseline["model"], baseline.get("adapter"), **load_options)
    except VSkipError as err:
        return unmeasured(f"the baseline's model cannot be loaded here ({err})")


def evaluate_model(
    model: str,
    records: list[Record],
    base_dir: str | Path,
    out: str | Path,
    *,
    adapter: str | Path | None = None,
    backend: str = "transformers",
    settings: EvalSettings = DEFAULT_EVAL,
    baseline: str | Path | None = None,
    progress: bool = True,
    **load_options,
) -> dict:
    """`evaluate` of `model` (with `adapter`) on `backend`, loaded with `load_options`, as `vskip evaluate` runs it:
    the results JSON at `baseline` read and checked first (`read_baseline`, and `check_baseline_model` where it is
    to be timed beside), a warning where γ means little to the model (`ratio_warning`), and the baseline's model
    loaded beside it to time (`baseline_model`)."""
    results = read_baseline(baseline, records) if baseline else None
    timed = results is not None and settings.latency_items > 0
    if timed and backend_type(backend).times_baseline:
        check_baseline_model(results, str(baseline))
    warning = ratio_warning(model, adapter, settings.ratio)
    if warning:
        warn(warning)
    loaded = load_backend(backend, model, adapter, records=records, base_dir=base_dir, **load_options)
    beside = baseline_model(results, loaded, model, adapter, **load_options) if timed else None
    return evaluate(loaded, records, base_dir, out, settings=settings, baseline=results, baseline_model=beside,
                    adapter=adapter, progress=progress)


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
    loaded: LoadedModel | GenerationBackend,
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
        write_atomic(out, json.dumps(results, indent=2) + "\n")
    return results
