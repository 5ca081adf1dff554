import importlib
import json

import pytest
import torch

from vskip.generate import forced_correct, generate, generation_settings
from vskip.metrics import is_correct
from vskip.models import load_model
from vskip.records import read_records
from vskip.stage import SETTINGS_KEY, partial_path, read_journal
from vskip.synth import build


def test_generate_writes_one_record_per_input_with_its_fields(tiny_random, image_dataset, tmp_path):
    records = read_records(image_dataset)
    out = tmp_path / "generated.jsonl"
    results = generate(tiny_random, records, image_dataset.parent, out, batch_size=2, max_new_tokens=6, progress=False)
    assert [r["id"] for r in results] == [r["id"] for r in records]
    assert [r["id"] for r in read_records(out)] == [r["id"] for r in records]
    for record, result in zip(records, results):
        assert result["reference_cot"] == record["cot"]
        assert result["question"] == record["question"]
        assert result["correct"] == is_correct(result["prediction"], record)
        assert 0 <= result["cot_tokens"] <= 6 and result["latency_s"] > 0
        assert result["precision"] == {"generate": "float32"}
    assert not list(tmp_path.glob("*.partial*"))


def test_batching_does_not_change_greedy_outputs(tiny_random, image_dataset, tmp_path):
    records = read_records(image_dataset)
    one = generate(tiny_random, records, image_dataset.parent, tmp_path / "a.jsonl", batch_size=1,
                   max_new_tokens=8, progress=False)
    three = generate(tiny_random, records, image_dataset.parent, tmp_path / "b.jsonl", batch_size=3,
                     max_new_tokens=8, progress=False)
    assert [r["cot"] for r in one] == [r["cot"] for r in three]


def test_correctness_accepts_any_reference_answer():
    assert is_correct(" Yes.", {"answer": "yes"})
    assert is_correct("4.50", {"answers": ["$4.50", "4.50"]})
    assert not is_correct(None, {"answer": "yes"})
    assert is_correct("Yes, there is a red star.", {"answer": "yes"})
    assert is_correct("The answer is (B).", {"answer": "B", "options": ["cat", "dog"]})


def test_records_say_at_which_precision_they_were_written(saved_tiny, image_dataset, tmp_path):
    loaded = load_model(str(saved_tiny), device="cpu", dtype="bfloat16")
    assert loaded.model.dtype == torch.bfloat16 and loaded.precision == "bfloat16"
    records = [{**record, "precision": {"earlier": "float16"}} for record in read_records(image_dataset)]
    results = generate(loaded, records, image_dataset.parent, tmp_path / "bf16.jsonl", max_new_tokens=3,
                       progress=False)
    assert [r["precision"] for r in results] == [{"earlier": "float16", "generate": "bfloat16"}] * len(records)


def test_a_journal_written_at_another_precision_is_not_resumed(saved_tiny, image_dataset, tmp_path, capsys):
    records = read_records(image_dataset)
    fp32 = load_model(str(saved_tiny), device="cpu", dtype="float32")
    bf16 = load_model(str(saved_tiny), device="cpu", dtype="bfloat16")
    settings = generation_settings(fp32, "cot", None, 3)
    assert settings == {**generation_settings(bf16, "cot", None, 3), "precision": "float32"}
    # An fp32 run that stopped after its first record.
    first = generate(fp32, records[:1], image_dataset.parent, tmp_path / "first.jsonl", max_new_tokens=3,
                     progress=False)
    out = tmp_path / "generated.jsonl"
    partial_path(out).write_text(json.dumps({SETTINGS_KEY: settings}) + "\n" + json.dumps(first[0]) + "\n")
    capsys.readouterr()
    results = generate(bf16, records, image_dataset.parent, out, max_new_tokens=3, progress=False)
    assert [r["precision"] for r in results] == [{"generate": "bfloat16"}] * len(records)
    assert "(precision 'float32' → 'bfloat16'); starting afresh" in capsys.readouterr().err


def test_sampled_generation_is_drawn_from_its_seed_and_journaled_with_it(tiny_random, image_dataset, tmp_path):
    records = read_records(image_dataset)

    def sampled(name: str, seed: int) -> list[str]:
        out = generate(tiny_random, records, image_dataset.parent, tmp_path / name, batch_size=2, max_new_tokens=8,
                       temperature=1.0, seed=seed, progress=False)
        return [record["cot"] for record in out]

    assert sampled("a.jsonl", 0) == sampled("b.jsonl", 0) != sampled("c.jsonl", 1)
    greedy = generation_settings(tiny_random, "cot", None, 8)
    assert "temperature" not in greedy  # a greedy journal reads as it did before sampling existed
    assert generation_settings(tiny_random, "cot", None, 8, temperature=1.0, seed=3) == {
        **greedy, "temperature": 1.0, "seed": 3}


def test_each_backend_name_is_a_backend_and_a_loaded_model_is_the_transformers_one(tiny_random):
    from vskip.errors import BadInput
    from vskip.generate import TransformersBackend, backend_type, generation_backend
    from vskip.settings import BACKENDS

    assert [backend_type(name).name for name in BACKENDS] == list(BACKENDS)
    with pytest.raises(BadInput, match="unknown backend 'onnx'; valid: transformers, vllm"):
        backend_type("onnx")
    backend = generation_backend(tiny_random)
    assert isinstance(backend, TransformersBackend) and generation_backend(backend) is backend
    assert (backend.name, backend.path, backend.precision, backend.adapter) == (
        "transformers", tiny_random.path, tiny_random.precision, None)


def test_forced_answers_follow_the_handed_cot(tmp_path):
    """The shipped teacher, handed each item's reference CoT, answers what the CoT concludes."""
    build(tmp_path, seed=9, n_train=0, n_val=3, n_test=0, progress=False)
    records = read_records(tmp_path / "val.jsonl")
    teacher = load_model("vskip-tiny")
    handed = [{**record, "compressed_cot": record["cot"]} for record in records]
    assert all(forced_correct(teacher, handed, tmp_path, batch_size=4))
    # Given the CoT of another item of the same family, it answers what that CoT concludes, not its own item.
    swapped = [{**record, "compressed_cot": other["cot"]}
               for record, other in zip(records, records[1:] + records[:1]) if record["answer"] != other["answer"]
               and record["task"] == other["task"]]
    assert swapped and sum(forced_correct(teacher, swapped, tmp_path, batch_size=4)) < len(swapped) / 2



def test_forced_answers_journaled_resume_where_they_stopped(tiny_random, image_dataset, tmp_path, monkeypatch, capsys):
    module = importlib.import_module("vskip.generate")  # the module: `vskip.generate` is also the API function
    records = read_records(image_dataset)
    # Each item compressed at two γ: records that share an id.
    handed = [{**record, "compressed_cot": record["cot"], "ratio": ratio} for ratio in (0.5, 0.7) for record in records]
    plain = forced_correct(tiny_random, handed, image_dataset.parent, batch_size=2, progress=False)
    journal = tmp_path / "checkpoint" / "forced_answers.jsonl"
    asked, answer = [], module._forced_answers

    def counted(loaded, batch, **options):
        if len(asked) == 1 and stop:
            raise KeyboardInterrupt
        asked.append([record["id"] for record in batch])
        return answer(loaded, batch, **options)

    monkeypatch.setattr(module, "_forced_answers", counted)
    stop = True
    with pytest.raises(KeyboardInterrupt):
        forced_correct(tiny_random, handed, image_dataset.parent, batch_size=2, progress=False, journal=journal)
    assert len(read_journal(partial_path(journal))) == 2
    stop = False
    assert forced_correct(tiny_random, handed, image_dataset.parent, batch_size=2, progress=False,
                          journal=journal) == plain
    assert asked == [["r0", "r1"], ["r2", "r0"], ["r1", "r2"]]  # the first batch once
    # Done, the journal stays (its caller removes it) and a rerun asks nothing again.
    assert forced_correct(tiny_random, handed, image_dataset.parent, batch_size=2, progress=False,
                          journal=journal) == plain
    assert len(asked) == 3 and not journal.exists() and len(read_journal(partial_path(journal))) == len(handed)
    # Other records (or model, or γ) are asked afresh.
    forced_correct(tiny_random, handed[:2], image_dataset.parent, batch_size=2, progress=False, journal=journal)
    assert len(asked) == 4 and "comes from a run with other settings (records " in capsys.readouterr().err
