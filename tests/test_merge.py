import json
import re

import pytest
import torch
from conftest import without_timing
from transformers import AutoModelForImageTextToText

from vskip import generate, merge_student
from vskip.cli import main
from vskip.distill import distill
from vskip.lora import load_student, load_with_adapter
from vskip.models import TINY_NAME, load_model
from vskip.records import read_records
from vskip.synth import build


def _distilled(tmp_path_factory, **changes):
    """A student of vskip-tiny (whose replies are chains of thought), three steps on γ 0.5 and 1."""
    from conftest import write_image_dataset
    from test_distill import compressed, quick

    data = write_image_dataset(tmp_path_factory.mktemp("data"))
    return distill(TINY_NAME, compressed(read_records(data)), data.parent, tmp_path_factory.mktemp("student"),
                   settings=quick(**changes))


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return _distilled(tmp_path_factory)


@pytest.fixture(scope="module")
def merged(student, tmp_path_factory):
    """`student` merged by the command line, its base taken from its vskip_adapter.json."""
    out = tmp_path_factory.mktemp("merged") / "model"
    assert main(["merge", str(student), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def synth_val(tmp_path_factory):
    """20 vskip-synth items (5 per family)."""
    return build(tmp_path_factory.mktemp("synth"), seed=7, n_train=0, n_val=5, n_test=0, progress=False)["val"]


def test_the_merged_model_replies_as_the_adapter_does(student, merged, synth_val, tmp_path):
    records = read_records(synth_val)
    replies = {
        name: generate(loaded, records, synth_val.parent, tmp_path / f"{name}.jsonl", ratio=0.5, max_new_tokens=24,
                       progress=False)
        for name, loaded in [("adapter", load_with_adapter(TINY_NAME, student)),
                             ("merged", load_model(str(merged)))]
    }
    assert len(replies["merged"]) == 20 and any(reply["cot"] for reply in replies["merged"])  # not a random model's
    assert without_timing(replies["merged"]) == without_timing(replies["adapter"])


def test_the_merged_model_loads_as_any_model_and_keeps_what_the_student_learned(
    student, merged, synth_val, tmp_path, capsys
):
    in_memory = load_with_adapter(TINY_NAME, student).model.state_dict()
    base = load_model(TINY_NAME).model.state_dict()
    weights = AutoModelForImageTextToText.from_pretrained(merged).state_dict()
    assert weights.keys() == in_memory.keys() and all(torch.equal(weights[k], in_memory[k]) for k in weights)
    assert any(not torch.equal(weights[k], base[k]) for k in weights)  # the adapter's update is in it
    assert not (merged / "adapter_config.json").exists() and (merged / "model.safetensors").is_file()
    assert {"chat_template.jinja", "tokenizer.json", "processor_config.json"} <= {p.name for p in merged.iterdir()}
    assert load_student(TINY_NAME, merged).path == str(merged)  # a model, as a --full student is
    info, trained = (json.loads((path / "vskip_adapter.json").read_text()) for path in (merged, student))
    assert info["kind"] == "merged" and info["base_model"] == TINY_NAME and info["adapter"] == str(student)
    assert {key: info[key] for key in ("method", "ratios", "recipe")} == {
        key: trained[key] for key in ("method", "ratios", "recipe")}
    assert info["precision"] == {**trained["precision"], "merged": "float32"}
    card = (merged / "README.md").read_text()  # its model card says it is merged, and in which precision
    assert "vskip-tiny with a LoRA student merged into its weights" in card and "merged float32 |" in card
    # `vskip evaluate --model DIR` still warns of a γ the student never learned.
    argv = ["evaluate", "--model", str(merged), "--data", str(synth_val), "--latency-items", "0",
            "--max-new-tokens", "8"]
    assert main([*argv, "--ratio", "0.5", "--out", str(tmp_path / "0.5.json")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main([*argv, "--ratio", "0.7", "--out", str(tmp_path / "0.7.json")]) == 0
    assert f"γ 0.7 asked of {merged}, which was trained on γ 0.5, auto, 1.0 only" in capsys.readouterr().err


def test_merging_into_an_existing_directory_that_is_empty_is_fine(student, tmp_path):
    (tmp_path / "model").mkdir()
    assert merge_student(student, tmp_path / "model") == tmp_path / "model"
    assert (tmp_path / "model" / "model.safetensors").is_file() and sorted(tmp_path.iterdir()) == [tmp_path / "model"]


def _refused(name, tmp_path, tmp_path_factory, saved_tiny, student, merged):
    """(ADAPTER, further arguments, message) of one refusal; --out is tmp_path/out."""
    if name == "not an adapter":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty", [], "not a PEFT adapter directory"
    if name in ("a --full student", "a merged student"):
        model = _distilled(tmp_path_factory, lora=None) if name == "a --full student" else merged
        return model, [], "already a model, not a LoRA adapter"
    if name == "another base":
        return student, ["--model", str(saved_tiny)], "trained on .*, not on a model like"
    if name == "no base named":  # an adapter trained elsewhere, without vskip_adapter.json
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "adapter_config.json").write_text("{}")
        return tmp_path / "elsewhere", [], "names no base model .* pass the base as --model"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    return student, [], "exists and is not empty"


REFUSALS = ["not an adapter", "a --full student", "a merged student", "another base", "no base named",
            "out not empty"]


@pytest.mark.parametrize("name", REFUSALS)
def test_refusals_are_one_line_and_write_nothing(name, saved_tiny, student, merged, tmp_path, tmp_path_factory,
                                                 capsys):
    adapter, further, message = _refused(name, tmp_path, tmp_path_factory, saved_tiny, student, merged)
    before = sorted(tmp_path.rglob("*"))
    assert main(["merge", str(adapter), "--out", str(tmp_path / "out"), *further]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]  # after any progress bar
    assert lines[-1].startswith("vskip: error: ") and re.search(message, lines[-1])
    assert sum("error" in line for line in lines) == 1
    assert sorted(tmp_path.rglob("*")) == before
