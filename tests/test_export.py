"""`vskip data export --format lmms-eval`: the task's files, its YAML, its prompt and its scoring, without lmms-eval
(tests/test_lmms_eval.py runs the harness itself)."""

import importlib.util
import json
import random

import pytest
import yaml
from PIL import Image

from vskip import lmms_task
from vskip.cli import main
from vskip.errors import BadInput
from vskip.export import export_lmms_eval, harness_view, lmms_model_args, task_name, write_harness_view
from vskip.metrics import anls, pope_scores
from vskip.models import TINY_DIR, load_model
from vskip.records import read_records


class _Loader(yaml.SafeLoader):
    """YAML as lmms-eval reads a task: `!function utils.NAME` kept as its text."""


_Loader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def _yaml(path):
    return yaml.load(path.read_text(), Loader=_Loader)


def _utils(task_dir):
    """The task's utils.py, imported as lmms-eval imports it: from its file."""
    spec = importlib.util.spec_from_file_location("task_utils", task_dir / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def exported(image_dataset, tmp_path):
    out = tmp_path / "task"
    assert main(["data", "export", "--data", str(image_dataset), "--out", str(out), "--ratios", "0.5,1,auto",
                 "--name", "mine"]) == 0
    return out


def test_export_writes_items_images_utils_and_a_yaml_per_ratio(exported, image_dataset):
    assert sorted(p.name for p in exported.iterdir()) == [
        "images", "items.jsonl", "mine_auto.yaml", "mine_full.yaml", "mine_r0_5.yaml", "utils.py"]
    rows = [json.loads(line) for line in (exported / "items.jsonl").read_text().splitlines()]
    records = read_records(image_dataset)
    assert [row["id"] for row in rows] == [record["id"] for record in records]
    assert [json.loads(row["record"]) for row in rows] == records
    for row, record in zip(rows, records):
        assert (exported / row["images"][0]).read_bytes() == (image_dataset.parent / record["image"]).read_bytes()


def test_the_yaml_asks_vskip_s_question_greedily_and_scores_with_vskip_s_metrics(exported):
    task = _yaml(exported / "mine_r0_5.yaml")
    assert task["task"] == "mine_r0_5" and task["output_type"] == "generate_until"
    assert task["dataset_path"] == "json"
    assert task["dataset_kwargs"]["data_files"]["test"] == str((exported / "items.jsonl").resolve())
    assert task["generation_kwargs"] == {"max_new_tokens": 160, "temperature": 0, "top_p": 1.0, "num_beams": 1,
                                         "do_sample": False}
    assert task["lmms_eval_specific_kwargs"] == {"default": {"mode": "cot", "ratio": 0.5}}
    # image_dataset has no family: accuracy alone.
    assert [metric["metric"] for metric in task["metric_list"]] == ["accuracy"]
    assert _yaml(exported / "mine_full.yaml")["lmms_eval_specific_kwargs"]["default"]["ratio"] is None
    assert _yaml(exported / "mine_auto.yaml")["lmms_eval_specific_kwargs"]["default"]["ratio"] == "auto"
    utils = _utils(exported)
    for name in ("doc_to_visual", "doc_to_text", "process_results"):
        assert callable(getattr(utils, name))


def test_the_prompt_carries_the_gamma_marker(exported):
    row = json.loads((exported / "items.jsonl").read_text().splitlines()[0])
    prompts = {name: lmms_task.doc_to_text(row, _yaml(exported / f"mine_{name}.yaml")["lmms_eval_specific_kwargs"]
                                          ["default"]) for name in ("r0_5", "full", "auto")}
    assert prompts["r0_5"] == ("Is there a red circle?\nThink step by step, then answer. "
                               "Compress the reasoning to ratio 0.5.")
    assert prompts["full"] == "Is there a red circle?\nThink step by step, then answer."
    assert "as far as it stays correct" in prompts["auto"]
    (image,) = _utils(exported).doc_to_visual(row)
    assert image.mode == "RGB" and image.size == (112, 112)


def test_families_choose_the_metrics_and_the_task_scores_as_vskip_does(tmp_path):
    Image.new("RGB", (56, 56), "red").save(tmp_path / "a.png")
    records = [
        {"id": "d", "image": "a.png", "question": "Total?", "answer": "123", "task": "doc"},
        {"id": "p1", "image": "a.png", "question": "Is there a cat?", "answer": "yes", "task": "pope"},
        {"id": "p2", "image": "a.png", "question": "Is there a dog?", "answer": "no", "task": "pope"},
    ]
    (path,) = export_lmms_eval(records, tmp_path, tmp_path / "task", ratios=[0.25], name="t")
    assert path.name == "t_r0_25.yaml"
    metrics = {m["metric"]: m["aggregation"] for m in _yaml(path)["metric_list"]}
    assert metrics == {"accuracy": "mean", "anls": "mean", "pope_accuracy": "!function utils.pope_accuracy",
                       "pope_f1": "!function utils.pope_f1", "pope_yes_ratio": "!function utils.pope_yes_ratio"}
    rows = [json.loads(line) for line in (tmp_path / "task" / "items.jsonl").read_text().splitlines()]
    doc = lmms_task.process_results(rows[0], ["Adding them, 123.\nAnswer: 124"])
    assert doc == {"accuracy": 0.0, "anls": anls("124", ["123"])} and 0 < doc["anls"] < 1
    replies = ["I see a cat.\nAnswer: yes", "There is a dog.\nAnswer: yes"]
    pairs = [lmms_task.process_results(row, [reply])["pope_f1"] for row, reply in zip(rows[1:], replies)]
    expected = pope_scores(["yes", "yes"], ["yes", "no"])
    assert lmms_task.pope_f1(pairs) == expected["f1"] and lmms_task.pope_yes_ratio(pairs) == 1.0
    assert lmms_task.pope_accuracy(pairs) == expected["accuracy"] == 0.5


@pytest.mark.parametrize(
    "records, options, message",
    [
        ([], {}, "no records"),
        ([{"id": "v", "video": ["f.png"], "question": "q"}], {}, "has a video"),
        ([{"id": "a", "image": "a.png", "question": "q"}], {"name": "my-task"}, "task name"),
    ],
)
def test_export_refuses(tmp_path, records, options, message):
    with pytest.raises(BadInput, match=message):
        export_lmms_eval(records, tmp_path, tmp_path / "out", **options)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "{tmp}/none.jsonl"], "no such file"),
        (["--ratios", "0.123"], "more than 2 decimals"),
        (["--format", "vlmevalkit"], "invalid choice"),
    ],
)
def test_export_errors_are_one_line_and_exit_2(image_dataset, tmp_path, capsys, argv, message):
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    if "--data" not in argv:
        argv = ["--data", str(image_dataset), *argv]
    try:
        code = main(["data", "export", *argv, "--out", str(tmp_path / "out")])
    except SystemExit as exit:  # argparse's own refusal
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_model_args_carry_the_model_s_pixel_bounds():
    assert lmms_model_args(TINY_DIR) == f"pretrained={TINY_DIR},min_pixels=12544,max_pixels=12544"


def test_the_tiny_template_leaves_out_lmms_eval_s_default_system_turn():
    """Qwen2-VL's template writes that turn where none is given; vskip-tiny's leaves it out where it is: either way a
    prompt with the default system turn is the prompt without one. Any other system turn is kept."""
    processor = load_model("vskip-tiny").processor
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]}]

    def prompt(system):
        return processor.apply_chat_template(([{"role": "system", "content": system}] if system else []) + user,
                                             add_generation_prompt=True, tokenize=False)

    assert prompt("You are a helpful assistant.") == prompt(None)
    assert prompt("Be brief.").startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_harness_view_is_the_jpeg_the_harness_makes(image_dataset, tmp_path):
    image = Image.frombytes("RGB", (32, 32), random.Random(0).randbytes(32 * 32 * 3))
    seen = harness_view(image)
    assert seen.size == image.size and seen.tobytes() != image.tobytes()
    viewed = write_harness_view(read_records(image_dataset), image_dataset.parent, tmp_path / "v" / "test.jsonl")
    (record, *_) = read_records(viewed)
    assert Image.open(viewed.parent / record["image"][0]).convert("RGB").tobytes() == harness_view(
        Image.open(image_dataset.parent / "images" / "0.png")).tobytes()


def test_task_name():
    assert [task_name("v", r) for r in (None, 1.0, 0.5, 0.05, "auto")] == ["v_full", "v_full", "v_r0_5", "v_r0_05",
                                                                         "v_auto"]
