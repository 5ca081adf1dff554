import collections
import importlib
import json
import math
import random
import statistics
from dataclasses import asdict, replace

import pytest
import torch
from peft import PeftModel
from safetensors import safe_open
from safetensors.torch import load_file

from vskip import training
from vskip.distill import (
    DEFAULT_DISTILL,
    DistillSettings,
    adaptive_pairs,
    distill,
    incorrect_items,
    pair_lengths,
    pair_sampler,
    ratio_shares,
    shares_at,
    training_length,
    training_pairs,
)
from vskip.encoding import record_example
from vskip.errors import BadInput, VSkipWarning
from vskip.evaluate import ratio_warning
from vskip.lora import ADAPTER_INFO, load_student, load_with_adapter, lora_model, peft_wrapping
from vskip.models import load_model
from vskip.models.tiny import save_processor
from vskip.records import read_records
from vskip.settings import LORA_TARGETS, LoraSettings, RoundSettings
from vskip.training import TrainSettings, fit, train_step
from vskip.vllm_backend import adapter_layout_problems


@pytest.fixture(scope="module")
def base_dir(tiny_random, tmp_path_factory):
    path = tmp_path_factory.mktemp("base")
    tiny_random.model.save_pretrained(path)
    save_processor(tiny_random.processor, path)
    return path


def quick(**changes) -> DistillSettings:
    """A three-step recipe, logging every step."""
    return DistillSettings(training=TrainSettings(steps=3, batch_size=2, warmup_steps=1, log_every=1), **changes)


def compressed(records, ratios=(0.5, 1.0)):
    out = []
    for record in records:
        words = record["cot"].split()
        for ratio in ratios:
            keep = [i < len(words) * ratio for i in range(len(words))]
            kept = " ".join(w for w, k in zip(words, keep) if k)
            out.append({**record, "method": "vskip", "ratio": ratio, "compressed_cot": kept, "keep": keep})
    return out


@pytest.fixture(scope="module")
def adapter(base_dir, tmp_path_factory, request):
    data = request.getfixturevalue("image_dataset_module")
    out = tmp_path_factory.mktemp("adapter")
    distill(str(base_dir), compressed(read_records(data)), data.parent, out,
            settings=DistillSettings(training=TrainSettings(steps=3, batch_size=2, warmup_steps=1)))
    return out


@pytest.fixture(scope="module")
def image_dataset_module(tmp_path_factory):
    from conftest import write_image_dataset

    return write_image_dataset(tmp_path_factory.mktemp("data"))


def test_adapter_is_peft_format_on_every_linear_layer_of_the_language_model(adapter, base_dir):
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 32 and config["lora_alpha"] == 64 and config["peft_type"] == "LORA"
    assert config["base_model_name_or_path"] == str(base_dir)
    with safe_open(adapter / "adapter_model.safetensors", "pt") as weights:
        names = list(weights.keys())
    assert names and all("language_model" in name for name in names)  # never the vision tower
    projections = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert {name.split(".")[-3] for name in names} == projections
    assert not (adapter / "checkpoint").exists()
    info = json.loads((adapter / "vskip_adapter.json").read_text())
    assert info["method"] == "vskip" and info["ratios"] == [0.5, "auto", 1.0]
    # Each of the 3 items teaches the auto marker once, at the γ the base answered right from, or its whole CoT.
    assert sum(n for per_task in info["auto_choices"].values() for n in per_task.values()) == 3
    assert info["precision"] == {"base": "float32", "adapter": "float32", "gradient_checkpointing": False}


def test_adapter_loads_with_peft_and_merges_for_inference(adapter, base_dir):
    loaded = load_model(str(base_dir), device="cpu")
    with peft_wrapping():
        assert isinstance(PeftModel.from_pretrained(loaded.model, str(adapter)), PeftModel)
    merged = load_with_adapter(str(base_dir), adapter)
    assert not any("lora" in name for name, _ in merged.model.named_parameters())


def test_the_auto_marker_learns_the_smallest_ratio_the_base_still_answers_from(monkeypatch, image_dataset_module):
    generate = importlib.import_module("vskip.generate")  # the module: `vskip.generate` is also the API function
    pairs = training_pairs(compressed(read_records(image_dataset_module), ratios=(0.3, 0.6, 1.0)), "vskip")
    # The base answers right from r0's γ 0.6 and r1's γ 0.3 compressions, from no compression of r2.
    right = {("r0", 0.6), ("r1", 0.3), ("r1", 0.6)}
    monkeypatch.setattr(generate, "forced_correct", lambda loaded, records, base, **_: [
        (record["id"], record["ratio"]) in right for record in records])
    auto, choices = adaptive_pairs(None, pairs, image_dataset_module.parent, batch_size=2)
    by_id = {record["id"]: reply for record, ratio, reply in auto if ratio == "auto"}
    replies = {(record["id"], ratio): reply for record, ratio, reply in pairs}
    assert by_id == {"r0": replies["r0", 0.6], "r1": replies["r1", 0.3], "r2": replies["r2", 1.0]}
    assert sum(sum(per_task.values()) for per_task in choices.values()) == 3


def test_uncompressed_cot_is_always_among_the_targets(image_dataset_module):
    records = read_records(image_dataset_module)
    half = [r for r in compressed(records) if r["ratio"] == 0.5]
    pairs = training_pairs(half, "vskip")
    assert sorted({ratio for _, ratio, _ in pairs}) == [0.5, 1.0]
    assert len(pairs) == 2 * len(records)


def test_only_cots_that_led_to_the_right_answer_are_learned_by_default(image_dataset_module):
    records = compressed(read_records(image_dataset_module))
    for record in records:
        record["correct"] = record["id"] != "r1"
    assert incorrect_items(records, "vskip") == {"r1"} and incorrect_items(records, "text") == set()
    assert {record["id"] for record, _, _ in training_pairs(records, "vskip")} == {"r0", "r2"}
    everything = training_pairs(records, "vskip", include_incorrect=True)
    assert {record["id"] for record, _, _ in everything} == {"r0", "r1", "r2"}
    with pytest.raises(BadInput, match="every CoT of method 'vskip' led to a wrong answer .* --include-incorrect"):
        training_pairs([{**record, "correct": False} for record in records], "vskip")


def test_training_pairs_refuse_a_record_without_a_cot_as_the_cli_does(image_dataset_module):
    records = compressed(read_records(image_dataset_module))
    records[2]["cot"] = ""
    with pytest.raises(BadInput, match=f"record {records[2]['id']!r} has no 'cot'"):
        training_pairs(records, "vskip")


def test_no_steps_is_refused_before_the_model_loads(image_dataset_module, tmp_path):
    records = compressed(read_records(image_dataset_module))
    with pytest.raises(BadInput, match="steps 0 must be at least 1"):
        distill("./no-model-here", records, image_dataset_module.parent, tmp_path / "adapter",
                settings=DistillSettings(training=TrainSettings(steps=0)))
    assert list(tmp_path.iterdir()) == []


def test_the_steps_follow_the_data_in_passes_unless_given():
    recipe = DistillSettings(training=TrainSettings(steps=None, batch_size=16), passes=4)
    assert training_length(recipe, 7_800).steps == 1_950
    assert training_length(recipe, 7_801).steps == 1_951  # rounded up: never under the passes asked
    assert training_length(recipe, 7_800, processes=2).steps == 975  # each process draws a batch a step
    assert training_length(replace(recipe, training=TrainSettings(steps=9)), 7_800).steps == 9
    assert DEFAULT_DISTILL.training.steps is None and DEFAULT_DISTILL.passes == 4


def test_a_student_records_the_steps_its_passes_came_to_and_warns_of_a_run_inside_its_warm_up(
    base_dir, image_dataset_module, tmp_path
):
    records = compressed(read_records(image_dataset_module))
    recipe = DistillSettings(training=TrainSettings(steps=None, batch_size=2, warmup_steps=100), passes=0.5,
                             auto=False)
    with pytest.warns(VSkipWarning, match=r"0\.5 passes over \d+ examples \(\d+ steps\) ends within the 100 warm-up"):
        out = distill(str(base_dir), records, image_dataset_module.parent, tmp_path / "adapter", settings=recipe)
    info = json.loads((out / ADAPTER_INFO).read_text())
    assert info["recipe"]["passes"] == 0.5
    assert info["recipe"]["training"]["steps"] == math.ceil(0.5 * info["examples"] / 2)


def test_a_method_missing_from_the_file_is_named(image_dataset_module):
    with pytest.raises(BadInput, match="no compressed records for method 'text'"):
        training_pairs(compressed(read_records(image_dataset_module)), "text")


def test_adapter_refuses_a_base_of_another_shape(adapter, tiny_random, tmp_path):
    import dataclasses

    from conftest import SMALL

    from vskip.models.tiny import build_model

    other = build_model(tiny_random.processor.tokenizer, dataclasses.replace(SMALL, text_layers=1), seed=1)
    other.save_pretrained(tmp_path)
    save_processor(tiny_random.processor, tmp_path)
    with pytest.raises(BadInput, match="was trained on .* pass the base model it was distilled from"):
        load_with_adapter(str(tmp_path), adapter)


def test_a_bfloat16_base_trains_a_float32_adapter(base_dir, image_dataset_module, tmp_path):
    data = image_dataset_module
    out = distill(str(base_dir), compressed(read_records(data)), data.parent, tmp_path / "adapter", settings=quick(),
                  dtype="bfloat16")
    info = json.loads((out / "vskip_adapter.json").read_text())
    assert info["precision"] == {"base": "bfloat16", "adapter": "float32", "gradient_checkpointing": False}
    assert all(math.isfinite(row["loss"]) for row in info["log"]) and len(info["log"]) == 3
    with safe_open(out / "adapter_model.safetensors", "pt") as weights:
        assert {weights.get_tensor(name).dtype for name in weights.keys()} == {torch.float32}
    merged = load_with_adapter(str(base_dir), out, dtype="bfloat16")  # merges into the bf16 base
    assert merged.precision == "bfloat16"


class Killed(Exception):
    """The process killed mid-training, as the training loop sees it."""


class KillAt:
    """Takes `training.train_step`'s place: counts the steps taken, and raises `Killed` instead of taking step `at`."""

    def __init__(self, at: int | None = None):
        self.at, self.taken = at, 0

    def __call__(self, *args, **kwargs):
        if self.taken + 1 == self.at:
            raise Killed
        self.taken += 1
        return train_step(*args, **kwargs)


def test_an_interrupted_distill_resumes_to_the_student_an_uninterrupted_one_makes(
    base_dir, image_dataset_module, tmp_path, monkeypatch
):
    data, every = image_dataset_module, DEFAULT_DISTILL.training.checkpoint_every
    # The default checkpoints, and LoRA dropout: the resumed run must draw the dropout masks the whole one drew.
    training_config = replace(DEFAULT_DISTILL.training, steps=every + 2, batch_size=1, warmup_steps=1)
    settings = replace(DEFAULT_DISTILL, training=training_config, lora=LoraSettings(rank=4, alpha=8, dropout=0.1))
    records = compressed(read_records(data))
    whole = distill(str(base_dir), records, data.parent, tmp_path / "whole", settings=settings)
    monkeypatch.setattr(training, "train_step", KillAt(every + 2))  # after the checkpoint of step `every`
    with pytest.raises(Killed):
        distill(str(base_dir), records, data.parent, tmp_path / "parts", settings=settings)
    assert not (tmp_path / "parts" / ADAPTER_INFO).exists()
    assert (tmp_path / "parts" / "checkpoint" / "forced_answers.jsonl.partial").is_file()
    resumed = KillAt()
    monkeypatch.setattr(training, "train_step", resumed)

    def asked_again(*args, **kwargs):
        raise AssertionError("the auto marker's forced answers were asked again")

    # The forced answers were journaled beside the checkpoint: the rerun has them all.
    monkeypatch.setattr(importlib.import_module("vskip.generate"), "_forced_answers", asked_again)
    parts = distill(str(base_dir), records, data.parent, tmp_path / "parts", settings=settings)
    assert resumed.taken == 2  # the two steps after the checkpoint, no more
    weights, resumed_weights = (load_file(path / "adapter_model.safetensors") for path in (whole, parts))
    assert weights.keys() == resumed_weights.keys()
    assert all(torch.equal(weights[name], resumed_weights[name]) for name in weights)
    info, resumed_info = (json.loads((path / ADAPTER_INFO).read_text()) for path in (whole, parts))
    assert resumed_info["log"] == info["log"] and not (parts / "checkpoint").exists()


def _train(base_dir, data, gradient_checkpointing):
    """Two LoRA steps; returns the log, the trained adapter and how often decoder layer 0's MLP ran forward."""
    loaded = load_model(str(base_dir), device="cpu")
    torch.manual_seed(0)  # the same initial adapter
    model = lora_model(loaded, gradient_checkpointing=gradient_checkpointing)
    pairs = training_pairs(compressed(read_records(data)), "vskip")
    calls = []
    mlp = model.get_decoder().layers[0].mlp
    forward = mlp.forward

    def counted(*args, **kwargs):  # not a forward hook: torch's recompute skips module hooks
        calls.append(1)
        return forward(*args, **kwargs)

    mlp.forward = counted

    def sample(rng: random.Random, n: int, progress: float):
        chosen = rng.choices(pairs, k=n)
        return [record_example(loaded.processor, r, data.parent, ratio=g, reply=y) for r, g, y in chosen]

    log = fit(model, loaded.processor, sample, TrainSettings(steps=2, batch_size=2, warmup_steps=1, log_every=1))
    return log, {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}, len(calls)


def test_gradient_checkpointing_recomputes_layers_without_changing_the_step(base_dir, image_dataset_module):
    log, adapter, calls = _train(base_dir, image_dataset_module, None)  # a small base: off by default
    checkpointed_log, checkpointed, recomputed = _train(base_dir, image_dataset_module, True)
    assert (calls, recomputed) == (2, 4)  # each step runs layer 0 again in the backward pass
    assert [row["loss"] for row in checkpointed_log] == pytest.approx([row["loss"] for row in log], abs=1e-6)
    assert all(torch.allclose(checkpointed[name], adapter[name], atol=1e-6) for name in adapter)


ALL_LINEAR = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_all_linear_lora_covers_the_language_model_and_vllm_serves_it(base_dir, image_dataset_module, tmp_path):
    data = image_dataset_module
    lora = LoraSettings(rank=8, alpha=16, target_modules="all-linear")
    out = distill(str(base_dir), compressed(read_records(data)), data.parent, tmp_path / "adapter",
                  settings=quick(lora=lora))
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (8, 16)
    with safe_open(out / "adapter_model.safetensors", "pt") as weights:
        names = list(weights.keys())
    assert all("language_model" in name for name in names)  # never the vision tower, whose MLP has linear layers
    assert {name.split(".")[-3] for name in names} == ALL_LINEAR
    assert len(names) == 2 * len(ALL_LINEAR) * load_model(str(base_dir)).model.config.text_config.num_hidden_layers
    assert adapter_layout_problems(out, max_lora_rank=8, base_model=base_dir) == []
    info = json.loads((out / "vskip_adapter.json").read_text())
    assert info["kind"] == "lora" and info["recipe"]["lora"] == {**asdict(lora)}
    assert load_student(str(base_dir), out).model is not None


def test_full_fine_tune_trains_the_language_model_only_and_saves_a_model(base_dir, image_dataset_module, tmp_path):
    data = image_dataset_module
    distill(str(base_dir), compressed(read_records(data)), data.parent, tmp_path / "student", settings=quick())
    out = distill(str(base_dir), compressed(read_records(data)), data.parent, tmp_path / "student",
                  settings=quick(lora=None))  # over the LoRA student, as `--overwrite` does
    assert not (out / "adapter_config.json").exists() and not (out / "checkpoint").exists()
    base, student = load_model(str(base_dir)), load_model(str(out))  # a checkpoint like any other
    before, after = dict(base.model.named_parameters()), dict(student.model.named_parameters())
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    language = {f"model.language_model.{name}" for name, _ in base.model.get_decoder().named_parameters()}
    assert changed and changed <= language | {"lm_head.weight"}  # the vision tower and its merger are frozen
    assert any("layers.0.mlp" in name for name in changed)  # every weight of the LM, not only attention
    info = json.loads((out / "vskip_adapter.json").read_text())
    assert info["kind"] == "full" and info["recipe"]["lora"] is None
    assert info["precision"] == {"base": "float32", "gradient_checkpointing": False}
    assert ratio_warning(str(out), None, 0.5) is None and "γ 0.5, auto, 1.0 only" in ratio_warning(str(out), None, 0.7)
    assert load_student(str(base_dir), out).path == str(out)
    with pytest.raises(BadInput, match="a full fine-tune trains float32 weights, not bfloat16"):
        distill(str(base_dir), compressed(read_records(data)), data.parent, tmp_path / "bf16",
                settings=quick(lora=None), dtype="bfloat16")


def test_ratio_shares_follow_tokenskip_by_default_or_the_shares_asked_for():
    assert ratio_shares([0.5, 0.7, 1.0]) == pytest.approx({0.5: 1 / 3, 0.7: 1 / 3, 1.0: 1 / 3})
    assert ratio_shares([0.5, 0.7, 1.0], [(1.0, 0.5)]) == pytest.approx({0.5: 0.25, 0.7: 0.25, 1.0: 0.5})
    assert ratio_shares([0.5, 0.7, 1.0], [(1.0, 0.0)]) == pytest.approx({0.5: 0.5, 0.7: 0.5})  # γ = 1 not learned
    assert ratio_shares([0.5, 0.7, "auto", 1.0], [(0.5, 0.4)]) == pytest.approx(
        {0.5: 0.4, 0.7: 0.2, "auto": 0.2, 1.0: 0.2})  # the hardest γ drawn twice as often
    assert ratio_shares([0.5, 1.0], [(0.5, 0.25), (1, 0.75)]) == pytest.approx({0.5: 0.25, 1.0: 0.75})
    assert ratio_shares([1.0]) == {1.0: 1.0}
    assert list(ratio_shares([1.0, "auto", 0.7, 0.5])) == [0.5, 0.7, "auto", 1.0]  # auto is one more γ
    with pytest.raises(BadInput, match="shares name γ 0.9, which are not learned; learned: 0.5, 1.0"):
        ratio_shares([0.5, 1.0], [(0.9, 0.2)])
    with pytest.raises(BadInput, match="shares name every γ learned, so they must sum to 1, not 0.6"):
        ratio_shares([0.5, 1.0], [(0.5, 0.3), (1.0, 0.3)])


def test_examples_are_drawn_in_the_ratio_shares(image_dataset_module):
    pairs = training_pairs(compressed(read_records(image_dataset_module), (0.5, 0.7, 0.9)), "vskip")
    shares = ratio_shares({ratio for _, ratio, _ in pairs}, [(1.0, 0.4)])
    drawn = pair_sampler(pairs, shares)(random.Random(0), 20_000, 0.0)
    for ratio, share in shares.items():
        assert abs(sum(r == ratio for _, r, _ in drawn) / len(drawn) - share) < 0.015, ratio
    assert {record["id"] for record, _, _ in drawn} == {"r0", "r1", "r2"}


def test_length_groups_batch_pairs_of_like_length_and_draw_each_pair_as_before():
    # 60 pairs whose lengths are their place; γ 0.5 and 1 alike.
    pairs = [({"id": f"r{index}"}, 0.5 if index % 2 else 1.0, "x") for index in range(60)]
    shares, lengths = ratio_shares([0.5, 1.0]), list(range(60))
    grouped = pair_sampler(pairs, shares, lengths=lengths, length_groups=8)
    batches = [grouped(random.Random(seed), 4, 0.0) for seed in range(3_000)]
    spread = statistics.fmean(max(map(lengths.__getitem__, idx)) - min(map(lengths.__getitem__, idx))
                              for idx in ([int(record["id"][1:]) for record, _, _ in batch] for batch in batches))
    assert spread < 15  # a random batch of 4 of 60 spans ~36
    counts = collections.Counter(record["id"] for batch in batches for record, _, _ in batch)
    assert len(counts) == 60 and max(counts.values()) / min(counts.values()) < 1.6  # every pair ~200 times
    assert abs(sum(ratio == 0.5 for batch in batches for _, ratio, _ in batch) / 12_000 - 0.5) < 0.02
    # One group: the batches a sampler without lengths draws, the RNG used alike.
    assert pair_sampler(pairs, shares, lengths=lengths)(random.Random(1), 16, 0.0) == pair_sampler(
        pairs, shares)(random.Random(1), 16, 0.0)


def test_pair_lengths_count_the_question_and_reply_tokens(image_dataset_module, tiny_random):
    pairs = training_pairs(compressed(read_records(image_dataset_module), (0.5,)), "vskip")
    lengths = pair_lengths(tiny_random.processor.tokenizer, pairs)
    assert len(lengths) == len(pairs) and all(length > 0 for length in lengths)
    mean = {ratio: statistics.fmean(n for n, (_, r, _) in zip(lengths, pairs, strict=True) if r == ratio)
            for ratio in (0.5, 1.0)}
    assert mean[0.5] < mean[1.0]


def test_a_curriculum_brings_the_ratios_in_from_1_down_then_draws_them_all():
    shares = ratio_shares([0.5, 0.7, 0.9, "auto", 1.0])  # a fifth each
    assert shares_at(shares, 0.0) == shares  # no curriculum
    assert shares_at(shares, 0.0, curriculum=0.6) == {1.0: 1.0}
    assert shares_at(shares, 0.25, curriculum=0.6) == pytest.approx({1.0: 0.5, 0.9: 0.5})
    assert shares_at(shares, 0.45, curriculum=0.6) == pytest.approx({1.0: 1 / 3, 0.9: 1 / 3, 0.7: 1 / 3})
    assert shares_at(shares, 0.6, curriculum=0.6) == shares  # the smallest γ and auto only once all are in
    uneven = ratio_shares([0.5, 1.0], [(1.0, 0.8)])
    assert shares_at(uneven, 0.1, curriculum=0.5) == {1.0: 1.0} and shares_at(uneven, 0.5, curriculum=0.5) == uneven


def test_the_curriculum_draws_by_the_progress_it_is_given(image_dataset_module):
    pairs = training_pairs(compressed(read_records(image_dataset_module), (0.5, 0.7)), "vskip")
    draw = pair_sampler(pairs, ratio_shares({ratio for _, ratio, _ in pairs}), curriculum=0.5)
    assert {ratio for _, ratio, _ in draw(random.Random(0), 200, 0.1)} == {1.0}
    assert {ratio for _, ratio, _ in draw(random.Random(0), 200, 0.3)} == {1.0, 0.7}
    assert {ratio for _, ratio, _ in draw(random.Random(0), 200, 0.5)} == {1.0, 0.7, 0.5}


def test_the_ratio_set_is_a_subset_of_the_file(image_dataset_module):
    records = compressed(read_records(image_dataset_module), (0.5, 0.7))
    assert {ratio for _, ratio, _ in training_pairs(records, "vskip", ratios=[0.7])} == {0.7, 1.0}
    with pytest.raises(BadInput, match="no 'vskip' records at γ 0.9; the file has γ 0.5, 0.7"):
        training_pairs(records, "vskip", ratios=[0.7, 0.9])
    records[0]["ratio"] = 0.123
    with pytest.raises(BadInput, match="record 'r0': ratio 0.123 has more than 2 decimals"):
        training_pairs(records, "vskip")


def test_every_lora_target_is_named_in_one_table():
    assert DEFAULT_DISTILL.lora.target_modules in LORA_TARGETS and set(LORA_TARGETS) == {"attention", "all-linear"}


def test_rounds_train_a_student_per_round_from_its_own_candidates_and_resume_without_training_again(
    base_dir, image_dataset_module, tmp_path, monkeypatch
):
    data = image_dataset_module
    records = [{**record, "words": record["cot"].split(), "word_tokens": [1] * len(record["cot"].split())}
               for record in compressed(read_records(data))]
    settings = quick(rounds=RoundSettings(count=1, samples=2))
    out = distill(str(base_dir), records, data.parent, tmp_path / "student", settings=settings)
    first = out / "rounds" / "0"
    assert (first / ADAPTER_INFO).is_file() and (first / "adapter_model.safetensors").is_file()
    # One greedy and one sampled pass per γ (the auto marker learns from theirs), each a resumable stage.
    assert sorted(path.name for path in (first / "candidates").glob("*.jsonl")) == ["0.5-0.jsonl", "0.5-1.jsonl"]
    info = json.loads((out / ADAPTER_INFO).read_text())
    assert info["round"] == 1 and info["recipe"]["rounds"]["count"] == 1
    asked = {ratio: sum(counts[ratio]["items"] for counts in info["rounds"][0]["yield"].values())
             for ratio in ("0.5", "auto")}
    assert asked == {"0.5": 3, "auto": 3}
    assert "| on-policy rounds | round 1: " in (out / "README.md").read_text()
    steps = KillAt()
    monkeypatch.setattr(training, "train_step", steps)
    distill(str(base_dir), records, data.parent, tmp_path / "student", settings=settings)
    assert steps.taken == 0  # every round was made from the same pairs and recipe: nothing trained again


def test_rounds_need_the_gates_words(base_dir, image_dataset_module, tmp_path):
    records = compressed(read_records(image_dataset_module))
    with pytest.raises(BadInput, match="words"):
        distill(str(base_dir), records, image_dataset_module.parent, tmp_path / "s",
                settings=quick(rounds=RoundSettings(count=1)))


def test_the_adapter_has_a_model_card_in_place_of_pefts_blank_one(adapter, base_dir):
    card = (adapter / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: peft\n") and "# vskip student: `vskip` chains of thought for " in card
    assert str(base_dir) not in card and f"for {base_dir.name}" in card  # its base by name, not this machine's path
    assert "| γ learned (share of examples) | 0.5 (33%), auto (33%), 1 (33%) |" in card
    assert "| recipe | 3 steps × 2 sequences, AdamW at peak lr 0.001 (cosine, 1 warm-up steps), seed 0 |" in card
    assert "| final training loss | not logged (fewer than 50 steps) |" in card
