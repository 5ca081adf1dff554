"""Data parallel stages and training on several processes, and training that resumes where it stopped."""

import json
import os
import random
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import without_timing

from vskip.distributed import launch_command
from vskip.encoding import Example, chat_prompt
from vskip.errors import BadInput
from vskip.media import load_image
from vskip.prompts import response
from vskip.records import image_paths, iter_jsonl, read_records
from vskip.training import TrainSettings, fit


def launch(processes: int, *vskip_args: str) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes N -m vskip.cli ...`: N processes (on CPU here) over gloo."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(launch_command(processes, list(vskip_args)), env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from conftest import write_image_dataset

    path = write_image_dataset(tmp_path_factory.mktemp("data"))
    records = read_records(path)
    # Seven records, so the two shards differ in size.
    more = [{**record, "id": f"{record['id']}-{copy}"} for copy in range(2) for record in records] + records[:1]
    path.write_text("".join(json.dumps(record) + "\n" for record in more))
    return path


def run_one_process(*vskip_args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vskip.cli", *vskip_args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["generate", "score", "evaluate"])
def test_a_stage_on_two_processes_writes_what_one_process_writes(stage, dataset, tmp_path):
    # The shipped model, seven records: the two shards differ in size.
    args = [stage, "--model", "vskip-tiny", "--data", str(dataset), "--batch-size", "2"]
    args += ["--max-new-tokens", "12"] if stage == "generate" else []
    suffix = ".json" if stage == "evaluate" else ".jsonl"
    for name, run in [("one", run_one_process), ("two", partial(launch, 2))]:
        result = run(*args, "--out", str(tmp_path / f"{name}{suffix}"))
        assert result.returncode == 0, result.stderr
        assert name == "one" or "0/4" in result.stderr  # the main process's shard: every other record of seven
    per_item = ".json.items.jsonl" if stage == "evaluate" else ".jsonl"  # evaluate's results come beside them
    records = {name: list(iter_jsonl(tmp_path / f"{name}{per_item}")) for name in ("one", "two")}
    expected = {"one.jsonl", "two.jsonl"}
    if stage == "evaluate":
        results = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in ("one", "two")}
        assert without_timing(results["two"]) == without_timing(results["one"]) and results["one"]["n"] == 7
        expected = {"one.json", "two.json", "one.json.items.jsonl", "two.json.items.jsonl"}
    assert len(records["one"]) == 7 and [r["id"] for r in records["two"]] == [r["id"] for r in records["one"]]
    for one, two in zip(map(without_timing, records["one"]), map(without_timing, records["two"])):
        assert two.keys() == one.keys()
        for key, value in one.items():
            # Shards batch (and so pad) records differently: scores agree to float rounding, the rest exactly.
            scores = isinstance(value, list) and value and isinstance(value[0], float)
            assert two[key] == (pytest.approx(value, rel=1e-5, abs=1e-6) if scores else value), key
    expected |= {f"{name}{suffix}.made.json" for name in ("one", "two")}  # what made each, written once
    assert {path.name for path in tmp_path.iterdir()} == expected  # no journal or temporary file left


@pytest.mark.slow
def test_distill_on_two_processes_saves_one_adapter(saved_tiny, dataset, tmp_path):
    from vskip.lora import load_with_adapter

    compressed = tmp_path / "compressed.jsonl"
    rows = [{**record, "prediction": record["answer"], "method": "vskip", "ratio": ratio,
             "compressed_cot": " ".join(record["cot"].split()[:3]) if ratio < 1 else record["cot"]}
            for record in read_records(dataset) for ratio in (0.5, 1.0)]
    rows = [{**row, "image": str(Path("..") / dataset.parent.name / row["image"])} for row in rows]
    compressed.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "adapter"
    result = launch(2, "distill", "--model", str(saved_tiny), "--data", str(compressed), "--out", str(out),
                    "--steps", "2", "--allow-outside-paths")
    assert result.returncode == 0, result.stderr
    assert (out / "adapter_model.safetensors").is_file() and not (out / "checkpoint").exists()
    info = json.loads((out / "vskip_adapter.json").read_text())
    # 7 items at γ 0.5 and 1, and each item's auto example.
    assert info["recipe"]["training"]["steps"] == 2 and info["examples"] == 21
    loaded = load_with_adapter(str(saved_tiny), out)
    assert not any("lora" in name for name, _ in loaded.model.named_parameters())  # merged


def test_a_one_process_cpu_launch_says_how_to_get_more(tmp_path):
    env = {**os.environ, "ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    env.pop("WORLD_SIZE", None)
    code = "from vskip.distributed import process_count; print(process_count())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "1"
    assert "--multi_gpu --num_processes N" in result.stderr


# ---------------------------------------------------------------------------------------------
# Training resumes where it stopped.


class Stop(Exception):
    pass


def train(tiny_processor, dataset, config: TrainSettings, checkpoint_dir, stop_at: int | None = None, settings=None):
    """Train a fresh tiny model; `stop_at`: raise when drawing that step's batch, as a kill would."""
    from conftest import SMALL

    from vskip.models.tiny import build_model

    records = read_records(dataset)
    model = build_model(tiny_processor.tokenizer, SMALL, seed=0)
    draws = []

    def sample_examples(rng: random.Random, n: int, progress: float) -> list[Example]:
        if len(draws) == stop_at:
            raise Stop
        draws.append(None)
        chosen = rng.choices(records, k=n)
        return [
            Example([load_image(image_paths(r, dataset.parent)[0])],
                    chat_prompt(tiny_processor, r["question"], "cot"), response(r["cot"], r["answer"]))
            for r in chosen
        ]

    log = fit(model, tiny_processor, sample_examples, config, checkpoint_dir=checkpoint_dir, settings=settings)
    return model, log, len(draws)


def test_training_stopped_and_resumed_ends_where_an_uninterrupted_run_ends(tiny_processor, dataset, tmp_path):
    config = TrainSettings(steps=5, batch_size=2, learning_rate=1e-2, warmup_steps=1, log_every=1, checkpoint_every=2)
    whole, whole_log, _ = train(tiny_processor, dataset, config, tmp_path / "whole")
    with pytest.raises(Stop):
        train(tiny_processor, dataset, config, tmp_path / "parts", stop_at=3)  # checkpoint at step 2
    resumed, resumed_log, draws = train(tiny_processor, dataset, config, tmp_path / "parts")
    assert draws == 3  # steps 3 to 5 only
    assert resumed_log == whole_log
    whole_state, resumed_state = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(whole_state[name], resumed_state[name]) for name in whole_state)


def test_a_checkpoint_of_an_older_vskip_still_resumes(tiny_processor, dataset, tmp_path):
    config = TrainSettings(steps=3, batch_size=1, warmup_steps=1, log_every=1, checkpoint_every=1)
    whole, whole_log, _ = train(tiny_processor, dataset, config, tmp_path / "whole")
    with pytest.raises(Stop):
        train(tiny_processor, dataset, config, tmp_path / "parts", stop_at=2)
    state = torch.load(tmp_path / "parts" / "trainer_state.pt", weights_only=False)
    (python, cpu, _), = state.pop("process_rngs")
    torch.save({**state, "rng": python, "torch_rng": cpu}, tmp_path / "parts" / "trainer_state.pt")  # its layout
    resumed, resumed_log, draws = train(tiny_processor, dataset, config, tmp_path / "parts")
    assert draws == 1 and resumed_log == whole_log
    assert all(torch.equal(whole.state_dict()[name], value) for name, value in resumed.state_dict().items())


def test_a_checkpoint_made_with_other_settings_is_trained_over_afresh(tiny_processor, dataset, tmp_path, capsys):
    config = TrainSettings(steps=4, batch_size=1, warmup_steps=1, log_every=1, checkpoint_every=2)
    whole, whole_log, _ = train(tiny_processor, dataset, config, tmp_path / "whole", settings={"data": "b"})
    with pytest.raises(Stop):
        train(tiny_processor, dataset, config, tmp_path / "parts", stop_at=3, settings={"data": "a"})
    capsys.readouterr()
    model, log, draws = train(tiny_processor, dataset, config, tmp_path / "parts", settings={"data": "b"})
    assert draws == 4 and log == whole_log  # all four steps again, as a fresh run on data b
    assert "comes from a run with other settings; starting afresh" in capsys.readouterr().err
    _, _, draws = train(tiny_processor, dataset, config, tmp_path / "parts", settings={"data": "b"})
    assert draws == 0  # the same settings resume (here: from the end)


def test_a_checkpoint_of_another_process_count_is_refused(tiny_processor, dataset, tmp_path):
    config = TrainSettings(steps=2, batch_size=1, warmup_steps=1, checkpoint_every=1)
    train(tiny_processor, dataset, config, tmp_path)
    state = torch.load(tmp_path / "trainer_state.pt", weights_only=False)
    state["step"] = 1
    state["process_rngs"] *= 2
    torch.save(state, tmp_path / "trainer_state.pt")
    with pytest.raises(BadInput, match="written by 2 process"):
        train(tiny_processor, dataset, config, tmp_path)
