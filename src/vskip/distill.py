"""Policy distillation: teach the model to write the compressed chain of thought itself.

The student is trained on `prompt(image, question, γ) → compressed_γ(CoT) + answer`, with γ taken from
the ratios present in the compressed file (or the subset `DistillSettings.ratios` names) and 1.0 (the
uncompressed CoT) among them, so one student serves every γ. The γ marker is the instruction's last
sentence, "Compress the reasoning to ratio 0.5." (`prompts.instruction`); γ = 1.0 has no marker. Each
training example draws its γ first, each γ in its share (`DistillSettings.shares`; by default every γ
alike), then an item compressed at that γ; with a curriculum (`DistillSettings.curriculum`), the γ come in
from 1 down during the first part of training (`shares_at`).

What is trained (`DistillSettings.lora`): a LoRA adapter on the language model's attention projections
or on all its linear layers (`settings.LORA_TARGETS`), saved in PEFT format; or, with `lora=None`,
every weight of the language model, saved as a checkpoint directory that loads as any model does. The
vision tower stays frozen either way. Beside the weights, `vskip_adapter.json` records the method, the
ratios and the recipe (`lora.ADAPTER_INFO`).

Only CoTs that led the teacher to the right answer are learned (records `generate` marked
`correct: false` are left out) unless asked to include the rest: a student copies its targets.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from pathlib import Path

import torch
from peft.utils import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME

from .distributed import barrier, is_main_process, process_count
from .encoding import Example, check_context, record_example
from .errors import BadInput
from .generate import generate
from .lora import (
    adapter_info,
    base_signature,
    language_model_trainable,
    load_student,
    lora_model,
    write_adapter_info,
    write_model_card,
)
from .models import load_model, model_identity, portable_path, save_checkpoint
from .precision import dtype_name
from .prompts import AUTO, check_ratio, require_answer, response
from .records import Record, iter_jsonl, require_fields, write_jsonl_atomic
from .rounds import on_policy_pairs
from .settings import DEFAULT_DISTILL, DistillSettings, RoundSettings, TrainSettings
from .stage import fingerprint
from .training import fit, warn_if_short

# What a record needs to be learned from (the CLI asks the same of the file it reads).
DISTILL_FIELDS = ("id", "image", "question", "cot", "compressed_cot", "method", "ratio")
# The student's training targets, one line per (item, γ) learned, beside its weights.
TARGETS = "targets.jsonl"
# What on-policy rounds read of a compressed record besides: the gate's words and budget (`vskip.rounds`).
ROUND_FIELDS = ("words", "word_tokens", "keep")
# (record, γ or `prompts.AUTO`, reply to learn)
Pair = tuple[Record, float | str, str]


def incorrect_items(records: list[Record], method: str) -> set[str]:
    """Ids of the method's records whose CoT led the teacher to a wrong answer (`correct: false`)."""
    return {record["id"] for record in records if record.get("method") == method and record.get("correct") is False}


def training_pairs(
    records: list[Record], method: str, *, include_incorrect: bool = False, ratios: Iterable[float] | None = None
) -> list[Pair]:
    """(record, γ, CoT to learn) for the given method at each γ of `ratios` (default: every γ the records
    have), plus each item's uncompressed CoT at γ = 1; without `include_incorrect`, none of the
    `incorrect_items`."""
    wrong = set() if include_incorrect else incorrect_items(records, method)
    pairs, full = [], {}
    for record in records:
        if record.get("method") != method or record["id"] in wrong:
            continue
        require_fields(record, DISTILL_FIELDS, named=True)
        answer = require_answer(record)
        try:
            ratio = check_ratio(record["ratio"])
        except BadInput as err:
            raise BadInput(f"record {record['id']!r}: {err}") from None
        pairs.append((record, ratio, response(record["compressed_cot"], answer)))
        full.setdefault(record["id"], (record, 1.0, response(record["cot"], answer)))
    if not pairs and wrong:
        raise BadInput(f"every CoT of method {method!r} led to a wrong answer ({len(wrong)} items); "
                       "include them with --include-incorrect")
    if not pairs:
        methods = sorted({str(record.get("method")) for record in records})
        raise BadInput(f"no compressed records for method {method!r}; the file has: {', '.join(methods)}")
    if ratios is not None:
        wanted, present = {check_ratio(ratio) for ratio in ratios} - {1.0}, {ratio for _, ratio, _ in pairs}
        if wanted - present:
            raise BadInput(f"no {method!r} records at γ {', '.join(map(str, sorted(wanted - present)))}; "
                           f"the file has γ {', '.join(map(str, sorted(present)))}")
        pairs = [pair for pair in pairs if pair[1] in wanted or pair[1] == 1.0]
    have_full = {record["id"] for record, ratio, _ in pairs if ratio == 1.0}
    return pairs + [pair for item, pair in full.items() if item not in have_full]


def adaptive_pairs(
    loaded, pairs: list[Pair], base_dir: str | Path, batch_size: int, journal: Path | None = None
) -> tuple[list[Pair], dict]:
    """The pairs the `auto` marker learns from, one per item: its compression at the smallest γ whose compressed CoT
    `loaded` (the base: the teacher) still answers right when handed it (`generate.forced_correct`, journaled in
    `journal` if given), or its whole CoT where none does; and the γ chosen, counted per task."""
    from .generate import forced_correct

    compressed = sorted((pair for pair in pairs if pair[1] != 1.0), key=lambda pair: pair[1])
    right = forced_correct(loaded, [record for record, _, _ in compressed], base_dir, batch_size=batch_size,
                           journal=journal)
    chosen: dict[str, tuple[float, str]] = {}
    for (record, ratio, reply), correct in zip(compressed, right, strict=True):
        if correct:
            chosen.setdefault(record["id"], (ratio, reply))  # the smallest γ first
    out, counts = [], {}
    for record, ratio, reply in pairs:
        if ratio == 1.0:
            ratio, reply = chosen.get(record["id"], (ratio, reply))
            out.append((record, AUTO, reply))
            per_task = counts.setdefault(str(record.get("task", "all")), {})
            per_task[str(ratio)] = per_task.get(str(ratio), 0) + 1
    return out, counts


def ratio_shares(
    ratios: Iterable[float | str], shares: Iterable[tuple[float | str, float]] = ()
) -> dict[float | str, float]:
    """The share of training examples drawn at each γ of `ratios`: each (γ, share) pair of `shares` (as
    `DistillSettings.shares` checks them) gives its γ's, and the γ not named split the rest equally (`AUTO` counting
    as one γ); with none named, every γ (1 included) alike, as TokenSkip draws them. A γ with no share is left out."""
    ratios, named = set(ratios), dict(shares)
    if set(named) - ratios:
        raise BadInput(f"shares name γ {', '.join(map(str, _ordered(set(named) - ratios)))}, which are not learned; "
                       f"learned: {', '.join(map(str, _ordered(ratios)))}")
    rest = [ratio for ratio in _ordered(ratios) if ratio not in named]
    left = 1 - sum(named.values())
    if not rest and abs(left) > 1e-9:
        raise BadInput(f"shares name every γ learned, so they must sum to 1, not {1 - left:g}")
    drawn = {**named, **{ratio: left / len(rest) for ratio in rest}}
    return {ratio: drawn[ratio] for ratio in _ordered(ratios) if drawn[ratio] > 0}


def _ordered(ratios: set[float | str]) -> list[float | str]:
    """γ in the order shares list them: the compressed ones from the smallest, then `AUTO`, then 1."""
    return sorted(ratios - {1.0, AUTO}) + [AUTO] * (AUTO in ratios) + [1.0] * (1.0 in ratios)


def shares_at(shares: dict[float | str, float], progress: float, curriculum: float = 0.0) -> dict[float | str, float]:
    """The shares of γ to draw from once `progress` of the training is done: `shares` from `curriculum` on; before,
    a curriculum from γ = 1 down (stepwise internalization, arXiv 2405.14838): the largest γ alone, then the γ below
    it coming in one at a time in equal parts of the first `curriculum` of training, each γ in drawn in its share
    renormalised; the smallest γ (and `auto`, which learns a mix of them) only once every γ is in."""
    order = sorted((ratio for ratio in shares if ratio != AUTO), reverse=True)
    if progress >= curriculum or len(order) < 2:
        return shares
    present = order[: 1 + int(progress / curriculum * (len(order) - 1))]
    total = sum(shares[ratio] for ratio in present)
    return {ratio: shares[ratio] / total for ratio in present}


def pair_sampler(
    pairs: list[Pair], shares: dict[float | str, float], curriculum: float = 0.0,
    lengths: list[int] | None = None, length_groups: int = 1,
) -> Callable[[random.Random, int, float], list[Pair]]:
    """Draws n pairs once `progress` of the training is done: each one's γ by `shares_at`, then one of the pairs at
    that γ, uniformly. With `lengths` (one per pair) and `length_groups` g > 1, it draws g × n pairs that way, sorts
    them by length and returns one of the g runs of n, chosen uniformly: each pair is drawn as often as before, but
    a batch holds pairs of like length, so less of it is padding (as `group_by_length` does in transformers)."""
    by_ratio: dict[float | str, list[int]] = {}
    for index, pair in enumerate(pairs):
        by_ratio.setdefault(pair[1], []).append(index)

    def draw(rng: random.Random, n: int, progress: float) -> list[int]:
        now = shares_at(shares, progress, curriculum)
        return [rng.choice(by_ratio[ratio]) for ratio in rng.choices(list(now), list(now.values()), k=n)]

    def sample(rng: random.Random, n: int, progress: float) -> list[Pair]:
        if lengths is None or length_groups == 1:
            return [pairs[index] for index in draw(rng, n, progress)]
        pool = sorted(draw(rng, n * length_groups, progress), key=lengths.__getitem__)
        start = n * rng.randrange(length_groups)
        return [pairs[index] for index in pool[start : start + n]]

    return sample


def pair_lengths(tokenizer, pairs: list[Pair]) -> list[int]:
    """Each pair's question and reply in tokens: what sets its length in a batch, the image's tokens aside."""
    return [len(ids) for ids in tokenizer([f"{record['question']}\n{reply}" for record, _, reply in pairs],
                                          add_special_tokens=False)["input_ids"]]


def distill(
    model_name: str,
    records: list[Record],
    base_dir: str | Path,
    out_dir: str | Path,
    *,
    method: str = "vskip",
    settings: DistillSettings = DEFAULT_DISTILL,
    include_incorrect: bool = False,
    gradient_checkpointing: bool | None = None,
    **load_options,
) -> Path:
    """Train a student for `method` on a fresh copy of the base model and save it in `out_dir`: a LoRA
    adapter in PEFT format, or, with `settings.lora` None, the whole model as a checkpoint directory.

    Learns from the correct CoTs only unless `include_incorrect` (see `training_pairs`), at the γ of
    `settings.ratios` in the shares `ratio_shares` gives. `load_options` go to `load_model` (`dtype`,
    `allow_pickle`, `trust_remote_code`); see `lora.lora_model` for the adapter's precision and
    `gradient_checkpointing`. A full fine-tune trains float32 weights (`dtype` auto or float32): AdamW's
    updates would round away in bfloat16. Every training sequence is checked against the model's context
    before training. A checkpoint in `out_dir/checkpoint` is kept every `settings.training.checkpoint_every`
    steps (the latest only; removed once the student is saved): rerunning after an interruption continues from
    it, if it was made with the same settings (precision and checkpointing included), to the very student an
    uninterrupted run makes. The `auto` marker's forced answers are journaled there too, so an interruption
    while they are asked, or later, keeps those already given.

    With `settings.rounds.count` = R > 0, R on-policy rounds follow (`vskip.rounds`): the student of round r,
    saved in `out_dir/rounds/r`, writes `settings.rounds.samples` candidates per item and γ (journaled in
    `out_dir/rounds/r/candidates`), and a fresh student learns the chosen ones; the last is saved in `out_dir`.
    A round already made from the same pairs and recipe is not made again, so an interrupted run resumes.
    """
    out_dir = Path(out_dir)
    if settings.lora is None:
        if load_options.get("dtype", "auto") not in ("auto", "float32", torch.float32):
            raise BadInput(f"a full fine-tune trains float32 weights, not {load_options['dtype']}; "
                           "drop --dtype or pass float32")
        load_options = {**load_options, "dtype": "float32"}
    gate_pairs = training_pairs(records, method, include_incorrect=include_incorrect, ratios=settings.ratios)
    learned = {ratio for _, ratio, _ in gate_pairs} | ({AUTO} if settings.auto else set())
    ratio_shares(learned, settings.shares)  # refused before any work, not after the model is loaded
    if settings.rounds.count:
        for record, ratio, _ in gate_pairs:
            if ratio != 1.0:
                require_fields(record, ROUND_FIELDS, named=True)
    loaded = load_model(model_name, **load_options)
    auto_choices = None
    if settings.auto:
        auto, auto_choices = adaptive_pairs(loaded, gate_pairs, base_dir, settings.training.batch_size,
                                            journal=out_dir / "checkpoint" / "forced_answers.jsonl")
        gate_pairs += auto
    # A round's student depends on the rounds' settings only through its pairs: the first round of a run with
    # rounds is a run without, and is not made again when its directory is reused.
    made_by = [model_identity(model_name), {key: str(value) for key, value in load_options.items()},
               asdict(replace(settings, rounds=RoundSettings()))]
    pairs, history = gate_pairs, []
    for round_ in range(settings.rounds.count + 1):
        final = round_ == settings.rounds.count
        student_dir = out_dir if final else out_dir / "rounds" / str(round_)
        made_from = fingerprint([*made_by, _digest(pairs)])
        if adapter_info(student_dir).get("made_from") != made_from:
            shutil.rmtree(student_dir / "candidates", ignore_errors=True)  # written by a student no longer there
            loaded = loaded or load_model(model_name, **load_options)
            _train(loaded, pairs, base_dir, student_dir, method=method, settings=settings,
                   gradient_checkpointing=gradient_checkpointing,
                   info={"auto_choices": auto_choices, "round": round_, "rounds": history, "made_from": made_from})
            loaded = None  # its modules now hold this round's adapter: a next round starts from a fresh base
        if final:
            break
        # The student is held only while it writes: the next round's base is loaded after it is gone.
        candidates = written_candidates(load_student(model_name, student_dir, **load_options), gate_pairs, base_dir,
                                        student_dir / "candidates", settings)
        pairs, yields = on_policy_pairs(gate_pairs, candidates, selection=settings.rounds.selection,
                                        fallback=settings.rounds.fallback)
        history.append({"round": round_ + 1, "yield": yields})
    return out_dir


def written_candidates(
    student, pairs: list[Pair], base_dir: str | Path, out_dir: Path, settings: DistillSettings
) -> dict[tuple[str, float], list[Record]]:
    """What `student` writes for each compressed pair's item when asked for its γ: per (id, γ), the greedy reply
    and `settings.rounds.samples` − 1 sampled ones, each pass journaled as a stage in `out_dir`. (The `auto` marker
    learns from these: `rounds.on_policy_pairs`.)"""
    rounds, training = settings.rounds, settings.training
    by_ratio: dict[float, list[Record]] = {}
    for record, ratio, _ in pairs:
        if ratio not in (1.0, AUTO):
            by_ratio.setdefault(ratio, []).append(record)
    written: dict[tuple[str, float], list[Record]] = {}
    for ratio, items in by_ratio.items():
        for sample in range(rounds.samples):
            temperature = rounds.temperature if sample else 0.0
            generate(student, items, base_dir, out_dir / f"{ratio}-{sample}.jsonl", ratio=ratio,
                     batch_size=training.batch_size, temperature=temperature, seed=training.seed + sample)
            barrier()  # every process's share is merged before any reads it
            for candidate in iter_jsonl(out_dir / f"{ratio}-{sample}.jsonl"):
                written.setdefault((candidate["id"], ratio), []).append(candidate)
    return written


def training_length(settings: DistillSettings, examples: int, processes: int = 1) -> TrainSettings:
    """`settings.training` with its steps set: as given, or `settings.passes` passes over `examples`, each step
    drawing `batch_size` examples in each of `processes`."""
    training = settings.training
    if training.steps is not None:
        return training
    return replace(training, steps=max(1, math.ceil(settings.passes * examples / (training.batch_size * processes))))


def _train(
    loaded, pairs: list[Pair], base_dir: str | Path, out_dir: Path, *, method: str, settings: DistillSettings,
    gradient_checkpointing: bool | None, info: dict,
) -> None:
    """Train one student on `pairs` from `loaded` (the base, which its adapter wraps in place) and save it, with
    its `vskip_adapter.json` (`info` added), in `out_dir`; every process returns once it is saved."""
    training = training_length(settings, len(pairs), process_count())
    if settings.training.steps is None:
        warn_if_short(f"{settings.passes:g} passes over {len(pairs):,} examples ({training.steps} steps)", training)
    settings = replace(settings, training=training)  # the recipe records the steps it ran
    processor = loaded.processor
    shares = ratio_shares({ratio for _, ratio, _ in pairs}, settings.shares)
    check_context(processor, loaded.model.config, (
        (record["id"], record_example(processor, record, base_dir, ratio=ratio, reply=reply))
        for record, ratio, reply in pairs
    ))
    torch.manual_seed(training.seed)  # the adapter's initial weights: one recipe and data, one student
    if settings.lora is None:
        model = language_model_trainable(loaded, gradient_checkpointing=gradient_checkpointing)
        precision = {"base": loaded.precision}
    else:
        model = lora_model(loaded, settings.lora, gradient_checkpointing=gradient_checkpointing)
        precision = {"base": loaded.precision,
                     "adapter": dtype_name(next(p.dtype for p in model.parameters() if p.requires_grad))}
    precision["gradient_checkpointing"] = any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lengths = pair_lengths(processor.tokenizer, pairs) if settings.length_groups > 1 else None
    draw = pair_sampler(pairs, shares, settings.curriculum, lengths, settings.length_groups)

    def sample_examples(rng: random.Random, n: int, progress: float) -> list[Example]:
        return [record_example(processor, record, base_dir, ratio=ratio, reply=reply)
                for record, ratio, reply in draw(rng, n, progress)]

    recipe = asdict(settings)
    log = fit(model, processor, sample_examples, training, checkpoint_dir=out_dir / "checkpoint",
              description=f"distill {method}" + (f", round {info['round']}" if settings.rounds.count else ""),
              settings={"model": model_identity(loaded.path), "method": method, "recipe": recipe,
                        "precision": precision, "data": _digest(pairs)})
    if is_main_process():
        if settings.lora is None:
            # A LoRA student this directory held before (`--overwrite`) would be read back instead (`load_student`).
            for name in (CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME):
                (out_dir / name).unlink(missing_ok=True)
            save_checkpoint(model, loaded.path, out_dir)
        else:
            model.save_pretrained(out_dir)
        student = {
            "base_model": portable_path(loaded.path, out_dir),  # read back by `models.located_path`
            "base_signature": base_signature(loaded.model.config),
            "method": method,
            "kind": "full" if settings.lora is None else "lora",
            "ratios": list(shares),
            "ratio_shares": {str(ratio): share for ratio, share in shares.items()},
            **info,  # auto_choices: per task, how many items the `auto` marker learned at each γ; the rounds' yield
            "examples": len(pairs),
            "recipe": recipe,
            "trainable_parameters": trainable,
            "precision": precision,
            "log": log,
        }
        write_adapter_info(out_dir, student)
        write_model_card(out_dir, student)
        # What this student learned, for inspection and for benchmarks/bench_writing.py (its training targets).
        write_jsonl_atomic(out_dir / TARGETS, ({"id": record["id"], "ratio": ratio, "reply": reply}
                                              for record, ratio, reply in pairs))
        shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
    barrier()


def _digest(pairs: list[Pair]) -> str:
    """A short fingerprint of the training pairs: a checkpoint made on other data is not resumed, a round made from
    other pairs is made again."""
    text = json.dumps([(record["id"], record["question"], ratio, reply) for record, ratio, reply in pairs])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
