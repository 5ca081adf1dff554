"""Every bad input through the CLI: one line naming the file or record and what to do, exit code 2,
no traceback, an earlier output file left as it was and no stray temporary or partial file. Each bad input is
given `--overwrite` too: it is refused before anything is written, whatever the output may replace; the outputs
that may not be replaced follow, as typed. The table of them all, benchmarks/results/bad_inputs.md, must be what
the run gives: `VSKIP_WRITE_RESULTS=1` writes it afresh."""

from __future__ import annotations

import codecs
import dataclasses
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vskip.cli import main

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "bad_inputs.md"
EARLIER = '{"id": "earlier", "note": "written by an earlier run"}\n'
GOOD = {"id": "a", "image": "images/a.png", "question": "Is there a red circle?", "answer": "yes"}
COT = {**GOOD, "cot": "I see a red circle.", "prediction": "yes"}


def png(colour: str = "red", mode: str = "RGB", size: int = 112) -> Image.Image:
    return Image.new(mode, (size, size), colour)


def sixteen_bit() -> Image.Image:
    return Image.fromarray((np.arange(112 * 112).reshape(112, 112) * 5 % 65535).astype(np.uint16))


def png_bytes(image: Image.Image | None = None) -> bytes:
    import io

    buffer = io.BytesIO()
    (image or png()).save(buffer, format="PNG")
    return buffer.getvalue()


class Workspace:
    """Files for one case under `root`: a dataset directory, models, and the output."""

    def __init__(self, root: Path, model: Path):
        self.root, self.model = root, model
        self.data = root / "data"
        (self.data / "images").mkdir(parents=True)

    def dataset(self, records=(GOOD,), images=None, raw: bytes | None = None, name="data.jsonl") -> str:
        for image, content in {"a.png": png(), **(images or {})}.items():
            path = self.data / "images" / image
            path.write_bytes(content) if isinstance(content, bytes) else content.save(path)
        path = self.data / name
        path.write_bytes(raw if raw is not None else "".join(json.dumps(r) + "\n" for r in records).encode())
        return str(path)

    def out(self, name="out.jsonl") -> str:
        path = self.root / name
        path.write_text(EARLIER)
        return str(path)

    def model_copy(self, drop: tuple[str, ...] = ()) -> str:
        path = self.root / "model"
        shutil.copytree(self.model, path)
        for name in drop:
            (path / name).unlink()
        return str(path)

    def generate(self, *extra: str, **dataset) -> list[str]:
        return ["generate", "--data", self.dataset(**dataset), "--out", self.out(), "--max-new-tokens", "4", *extra]


def pickle_only(ws: Workspace) -> list[str]:
    import torch
    from safetensors.torch import load_file

    model = Path(ws.model_copy())
    torch.save(load_file(model / "model.safetensors"), model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    return ws.generate("--model", str(model))


def config_only(ws: Workspace, config: dict) -> list[str]:
    (ws.root / "model").mkdir()
    (ws.root / "model" / "config.json").write_text(json.dumps(config))
    return ws.generate("--model", str(ws.root / "model"))


def foreign_adapter(ws: Workspace) -> list[str]:
    """A LoRA adapter made for a Qwen2-VL of another width."""
    from conftest import CORPUS, SMALL
    from peft import LoraConfig, get_peft_model

    from vskip.lora import peft_wrapping
    from vskip.models import family_for
    from vskip.models.tiny import build_model, build_processor, build_tokenizer

    processor = build_processor(build_tokenizer(CORPUS * 20, SMALL.vocab_size))
    other = build_model(processor.tokenizer, dataclasses.replace(SMALL, text_hidden=32, text_intermediate=64), seed=1)
    lora = LoraConfig(r=4, target_modules=family_for(other.config).lora_target_regex(), task_type="CAUSAL_LM")
    with peft_wrapping():
        get_peft_model(other, lora).save_pretrained(ws.root / "adapter")
    return ["evaluate", "--model", str(ws.model), "--adapter", str(ws.root / "adapter"), "--data", ws.dataset(),
            "--out", ws.out("results.json")]


def evaluate(ws: Workspace, *extra: str) -> list[str]:
    return ["evaluate", "--data", ws.dataset(), "--out", ws.out("results.json"), *extra]


def baseline(ws: Workspace, text: str) -> list[str]:
    (ws.root / "baseline.json").write_text(text)
    return evaluate(ws, "--baseline", str(ws.root / "baseline.json"))


def distill(ws: Workspace, *extra: str, **changes) -> list[str]:
    record = {**COT, "compressed_cot": "red circle", "method": "vskip", "ratio": 0.5, **changes}
    return ["distill", "--data", ws.dataset(records=[record]), "--out", str(ws.root / "adapter"), *extra]


def offline(patch) -> None:
    from huggingface_hub import constants

    patch.setattr(constants, "HF_HUB_OFFLINE", True)


def no_network(patch) -> None:
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    patch.setattr(socket, "create_connection", refuse)


def read_only(ws: Workspace) -> list[str]:
    out = ws.out()
    os.chmod(out, 0o444)
    return ["generate", "--data", ws.dataset(), "--out", out]


def as_a_user(patch) -> None:
    """os.access as anyone but root answers it: root may write a read-only file, so the check passes for it."""
    access = os.access

    def user_access(path, mode, **kwargs) -> bool:
        if mode & os.W_OK and Path(path).is_file() and not os.stat(path).st_mode & stat.S_IWUSR:
            return False
        return access(path, mode, **kwargs)

    patch.setattr(os, "access", user_access)


def outside(ws: Workspace, image: str) -> list[str]:
    png().save(ws.root / "outside.png")
    (ws.data / "images" / "link.png").symlink_to(ws.root / "outside.png")
    return ws.generate(records=[{**GOOD, "image": image.format(root=ws.root)}])


# (what was tried, argv for a Workspace, part of the expected message[, what to patch while it runs])
BAD_INPUTS: list[tuple] = [
    ("dataset file missing", lambda ws: ["generate", "--data", str(ws.root / "none.jsonl"), "--out", ws.out()],
     "no such file"),
    ("image missing", lambda ws: ws.generate(records=[{**GOOD, "image": "images/none.png"}]), "image not found"),
    ("image path is a directory", lambda ws: ws.generate(records=[{**GOOD, "image": "images"}]),
     "DIR/data/images: is a directory, not an image"),
    ("zero-byte image", lambda ws: ws.generate(images={"a.png": b""}), "image file is empty"),
    ("corrupt image", lambda ws: ws.generate(images={"a.png": b"\x89PNG\r\n\x1a\nnot really"}), "not a readable image"),
    ("truncated image", lambda ws: ws.generate(images={"a.png": png_bytes(sixteen_bit())[:300]}),
     "not a readable image"),
    ("image over the decompression-bomb limit (MAX_IMAGE_PIXELS=1000)", lambda ws: ws.generate(),
     "decompression-bomb limit"),
    ("empty question", lambda ws: ws.generate(records=[{**GOOD, "question": "  "}]), ":1: record has no 'question'"),
    ("question not a string", lambda ws: ws.generate(records=[{**GOOD, "question": ["a"]}]), "'question' must be"),
    ("image not a path", lambda ws: ws.generate(records=[{**GOOD, "image": 5}]), "'image' must be"),
    ("duplicate ids", lambda ws: ws.generate(records=[GOOD, GOOD]), ":2: duplicate id 'a'"),
    ("invalid JSON on line 2", lambda ws: ws.generate(raw=json.dumps(GOOD).encode() + b'\n{"id": "b",\n'),
     ":2: invalid JSON: expecting property name enclosed in double quotes at column 12"),
    ("record not a JSON object", lambda ws: ws.generate(raw=b"[1, 2]\n"), ":1: a record must be a JSON object"),
    ("non-UTF-8 text", lambda ws: ws.generate(raw=json.dumps(GOOD).encode()[:-2] + b' caf\xe9"}\n'),
     ":1: not UTF-8 text"),
    ("image path with ..", lambda ws: outside(ws, "../outside.png"), "leads outside the dataset's directory"),
    ("absolute image path", lambda ws: outside(ws, "{root}/outside.png"), "leads outside the dataset's directory"),
    ("symlink leaving the dataset", lambda ws: outside(ws, "images/link.png"), "leads outside the dataset's directory"),
    ("score: CoT with no answer",
     lambda ws: ["score", "--data", ws.dataset(records=[{**COT, "prediction": None}]), "--out", ws.out()],
     "has no answer"),
    ("compress: CoT with no answer",
     lambda ws: ["compress", "--data", ws.dataset(records=[{**COT, "prediction": None, "words": ["I"]}]),
                 "--out", ws.out()], "has no answer"),
    ("compress: generate's output (not scored)",
     lambda ws: ["compress", "--data", ws.dataset(records=[COT]), "--out", ws.out()],
     ":1: record has no 'words': it was written by 'vskip generate', not by 'vskip score'"),
    ("compress: compress's own output",
     lambda ws: ["compress", "--data", ws.dataset(records=[
         {**COT, "words": ["I"], "compressed_cot": "I", "method": method, "ratio": 0.5} for method in ("text", "vskip")
     ]), "--out", ws.out()],
     ":2: duplicate id 'a': the file was written by 'vskip compress'"),
    ("compress: a dataset's records (not generated nor scored)",
     lambda ws: ["compress", "--data", ws.dataset(records=[{**GOOD, "cot": "I see a red circle. yes"}]),
                 "--out", ws.out()],
     "it is a dataset's record, not written by 'vskip score'; run 'vskip generate', then 'vskip score'"),
    ("distill: score's output (not compressed)",
     lambda ws: ["distill", "--data", ws.dataset(records=[{**COT, "words": ["I"]}]), "--out", str(ws.root / "adapter")],
     "it was written by 'vskip score', not by 'vskip compress'"),
    ("distill: CoT with no answer", lambda ws: distill(ws, prediction=None, answer=None), "has no answer"),
    ("--ratios 0,0.5", lambda ws: ["compress", "--data", ws.dataset(), "--ratios", "0,0.5", "--out", ws.out()],
     "ratio 0.0 is outside (0, 1]"),
    ("--ratios nan", lambda ws: ["compress", "--data", ws.dataset(), "--ratios", "nan", "--out", ws.out()],
     "ratio nan is outside (0, 1]"),
    ("--ratio 1.5", lambda ws: ["evaluate", "--data", ws.dataset(), "--ratio", "1.5", "--out", ws.out()],
     "ratio 1.5 is outside (0, 1]"),
    ("--ratio nan", lambda ws: ["evaluate", "--data", ws.dataset(), "--ratio", "nan", "--out", ws.out()],
     "ratio nan is outside (0, 1]"),
    ("--ratio 0.125 (the γ marker writes 2 decimals)",
     lambda ws: ["evaluate", "--data", ws.dataset(), "--ratio", "0.125", "--out", ws.out()],
     "ratio 0.125 has more than 2 decimals, which the γ marker cannot write"),
    ("--ratio abc", lambda ws: ["evaluate", "--data", ws.dataset(), "--ratio", "abc", "--out", ws.out()],
     "'abc' is not a number"),
    ("unknown architecture (model_type bert)", lambda ws: config_only(ws, {"model_type": "bert"}),
     "model type 'bert' is not supported"),
    ("remote code without --trust-remote-code",
     lambda ws: config_only(ws, {"model_type": "my_vlm", "auto_map": {"AutoConfig": "my_vlm.MyConfig"}}),
     "pass --trust-remote-code"),
    ("model directory without a processor",
     lambda ws: ws.generate("--model", ws.model_copy(drop=("processor_config.json", "tokenizer.json"))),
     "no usable processor"),
    ("only pickled weights (pytorch_model.bin)", pickle_only, "pass --allow-pickle"),
    ("adapter for another base model (evaluate --adapter)", foreign_adapter, "adapter does not fit"),
    ("adapter directory without adapter_config.json",
     lambda ws: ["evaluate", "--model", str(ws.model), "--adapter", str(ws.root), "--data", ws.dataset(),
                 "--out", ws.out("results.json")], "not a PEFT adapter directory"),
    ("empty dataset", lambda ws: ws.generate(raw=b""), "no records to work on (the file is empty)"),
    ("tiny train on an empty split (synth --n-train 0)",
     lambda ws: ["tiny", "train", "--data", str(Path(ws.dataset(raw=b"", name="train.jsonl")).parent),
                 "--out", str(ws.root / "tiny")], "DIR/data/train.jsonl: no records to train on (the file is empty)"),
    ("every record bad, with --skip-bad", lambda ws: ws.generate("--skip-bad", records=[{**GOOD, "image": "none.png"}]),
     "no records to work on (all 1 were set aside as bad, the first: DIR/data/none.png: image not found)"),
    ("--out is a directory", lambda ws: ["generate", "--data", ws.dataset(), "--out", str(ws.data)],
     "is a directory; --out names a file"),
    ("--out under a file (cannot be written)",
     lambda ws: ["evaluate", "--data", ws.dataset(), "--out", str(Path(ws.out()) / "results.json")],
     "cannot be written (DIR/out.jsonl is not a directory)"),
    ("distill --out is a file", lambda ws: distill(ws)[:-1] + [ws.out()], "is a file; --out names a directory"),
    ("--out a read-only file", read_only, "DIR/out.jsonl: cannot be written (the file is read-only)", as_a_user),
    ("data import of an absent path", lambda ws: ["data", "import", str(ws.root / "none"), "--out", str(ws.root)],
     "DIR/none: no such file or directory (a path, so not looked up on the hub)", no_network),
    ("--baseline missing", lambda ws: evaluate(ws, "--baseline", str(ws.root / "none.json")),
     "DIR/none.json: no such file"),
    ("--baseline not JSON", lambda ws: baseline(ws, '{"accuracy": '), "not JSON"),
    ("--baseline a JSONL file", lambda ws: baseline(ws, json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "id": "b"})),
     "a JSONL file of records"),
    ("--baseline from another dataset", lambda ws: baseline(ws, json.dumps({"cot_tokens_by_id": {"zz": 3}})),
     "measured on other items (1 of the 1 ids here are not in it, e.g. 'a')"),
    ("--baseline whose model is gone",
     lambda ws: baseline(ws, json.dumps({"model": "./gone", "cot_tokens_by_id": {"a": 3}})),
     "DIR/baseline.json: its model cannot be timed beside this run (DIR/gone: no such model directory"),
    ("--baseline whose adapter is gone",
     lambda ws: baseline(ws, json.dumps({"model": "vskip-tiny", "adapter": "./gone", "cot_tokens_by_id": {"a": 3}})),
     "DIR/baseline.json: its model cannot be timed beside this run (DIR/gone: not a PEFT adapter directory"),
    ("--batch-size 0", lambda ws: ws.generate("--batch-size", "0"), "'0' is not a whole number of at least 1"),
    ("--steps 0", lambda ws: distill(ws, "--steps", "0"), "'0' is not a whole number of at least 1"),
    ("distill --full with --rank", lambda ws: distill(ws, "--full", "--rank", "8"),
     "--rank shape a LoRA adapter; --full trains every weight of the language model instead"),
    ("distill --shares 0.5:2", lambda ws: distill(ws, "--shares", "0.5:2"), "'2' is not a share in [0, 1]"),
    ("distill --shares 0.5", lambda ws: distill(ws, "--shares", "0.5"), "'0.5' is not γ:share, such as 0.5:0.4"),
    ("distill --shares over 1", lambda ws: distill(ws, "--shares", "0.5:0.7,1:0.5"),
     "shares 0.5:0.7,1:0.5: each must lie in [0, 1], and together they must not pass 1"),
    ("distill --shares of a γ not learned", lambda ws: distill(ws, "--shares", "0.3:0.2"),
     "shares name γ 0.3, which are not learned; learned: 0.5, auto, 1.0"),
    ("distill --lr 0", lambda ws: distill(ws, "--lr", "0"), "'0' is not a positive number"),
    ("--steps -3", lambda ws: distill(ws, "--steps", "-3"), "'-3' is not a whole number of at least 1"),
    ("prompt longer than the model's context",
     lambda ws: ws.generate("--model", str(ws.model), records=[{**GOOD, "question": "Is there a red star? " * 300}]),
     "record 'a': its prompt is"),
    ("--model ./missing (a path)", lambda ws: ws.generate("--model", "./missing"), "no such model directory"),
    ("--model org/name/extra (a path)", lambda ws: ws.generate("--model", "org/name/extra"), "no such model directory"),
    ("--model hub id, HF_HUB_OFFLINE=1", lambda ws: ws.generate("--model", "someone/some-vlm"),
     "nor in the hub cache, and HF_HUB_OFFLINE is set", offline),
    ("--model hub id, no network", lambda ws: ws.generate("--model", "someone/some-vlm"),
     "the hub (huggingface.co) cannot be reached", no_network),
]


def made_before(ws: Workspace, argv: list[str]) -> None:
    """Run `argv` with the workspace's model first: the output an earlier command made."""
    assert main([*argv, "--model", str(ws.model)]) == 0


def other_split(ws: Workspace, command: str = "generate") -> list[str]:
    """`generate` on train.jsonl; then `command` (generate on test.jsonl, or compress) to the same --out."""
    out = str(ws.root / "generated.jsonl")
    made_before(ws, ["generate", "--data", ws.dataset(name="train.jsonl"), "--out", out, "--max-new-tokens", "4"])
    if command == "compress":
        return ["compress", "--data", ws.dataset(), "--out", out]
    return ["generate", "--data", ws.dataset(name="test.jsonl"), "--out", out, "--max-new-tokens", "4",
            "--model", str(ws.model)]


def other_method(ws: Workspace) -> list[str]:
    """A `vskip` student distilled into adapter/; then `--method text` to the same --out."""
    made_before(ws, distill(ws, "--steps", "1", "--no-auto"))
    return distill(ws, "--method", "text", "--steps", "1", "--no-auto", "--model", str(ws.model))


# (what was tried, argv for a Workspace, part of the expected message): outputs that would replace an input or
# another run's work, as typed (without --overwrite).
OUTPUTS: list[tuple] = [
    ("evaluate --out its own --data", lambda ws: ["evaluate", "--data", ws.dataset(), "--out", ws.dataset(),
                                                  "--latency-items", "0"], "is an input of this command (its data)"),
    ("score --out its own --data", lambda ws: ["score", "--data", ws.dataset(), "--out", ws.dataset()],
     "is an input of this command (its data)"),
    ("evaluate --out whose OUT.items.jsonl is the --data",
     lambda ws: ["evaluate", "--data", ws.dataset(name="r.json.items.jsonl"), "--out", str(ws.data / "r.json")],
     "would rewrite DIR/data/r.json.items.jsonl"),
    ("distill --out a directory holding its --data", lambda ws: distill(ws)[:-1] + [str(ws.data)],
     "DIR/data: holds DIR/data/data.jsonl, an input of this command (its data)"),
    ("merge --out the adapter itself", lambda ws: ["merge", ws.model_copy(), "--out", str(ws.root / "model")],
     "is an input of this command (its adapter)"),
    ("generate over another split's output", other_split,
     "made by 'vskip generate' with other settings (data 'DIR/data/train.jsonl' → 'DIR/data/test.jsonl')"),
    ("compress over generate's output", lambda ws: other_split(ws, "compress"),
     "made by 'vskip generate', not by 'vskip compress'"),
    ("distill --method text over a vskip student", other_method,
     "made by 'vskip distill' with other settings (method 'vskip' → 'text')"),
    ("a file vskip did not write", lambda ws: ["compress", "--data", ws.dataset(), "--out", ws.out()],
     "DIR/out.jsonl: exists, with no record that vskip made it (no out.jsonl.made.json)"),
    ("demo into a directory of other files", lambda ws: ["demo", "--out", str(ws.data), "--quick"],
     "DIR/data: holds files that no 'vskip demo' made (no demo_steps.json)"),
]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    return code, capsys.readouterr().err


def test_every_bad_input_gives_one_line_and_exit_code_2(saved_tiny, tmp_path, capsys, monkeypatch):
    from transformers.utils import logging

    logging.disable_progress_bar()
    rows, failures = [], []
    cases = [(case, ["--overwrite"]) for case in BAD_INPUTS] + [(case, []) for case in OUTPUTS]
    for number, ((what, build, expected, *patches), further) in enumerate(cases):
        root = tmp_path / str(number)
        ws = Workspace(root, saved_tiny)
        argv = build(ws) + further
        out = Path(argv[argv.index("--out") + 1])
        earlier = out.read_bytes() if out.is_file() else None
        capsys.readouterr()  # what an earlier command of the case said
        with monkeypatch.context() as patch:
            if "decompression" in what:
                patch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
            for apply in patches:
                apply(patch)
            code, err = run_cli(argv, capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        message = lines[-1] if lines else ""
        shown = message.replace(str(root), "DIR").replace(str(saved_tiny), "MODEL").replace("|", "/").replace("`", "'")
        rows.append((what, argv[0], code, shown))
        problems = []
        if code != 2:
            problems.append(f"exit code {code}")
        if expected not in shown or "Traceback" in err or sum("error:" in line for line in lines) != 1:
            problems.append(f"message {err!r}")
        if earlier is not None and out.read_bytes() != earlier:
            problems.append("earlier output changed")
        stray = [path.name for path in root.rglob("*") if ".tmp" in path.name or ".partial" in path.name]
        if stray:
            problems.append(f"stray files {stray}")
        if problems:
            failures.append(f"{what}: {'; '.join(problems)}")
    table = (
        "# Bad inputs through the CLI\n\nGenerated by `tests/test_cli_errors.py`; DIR is the case's directory, "
        "MODEL a tiny random Qwen2-VL.\n\n"
        "| input | command | exit | message (stderr) |\n|---|---|---|---|\n"
        + "".join(f"| {w} | `{c}` | {code} | `{m}` |\n" for w, c, code, m in rows)
    )
    # Tests leave the source tree alone unless asked: a plain run only checks the published table.
    if os.environ.get("VSKIP_WRITE_RESULTS"):
        RESULTS.write_text(table)
    assert not failures, "\n".join(failures)
    assert RESULTS.read_text() == table, f"{RESULTS} is stale: rerun this test with VSKIP_WRITE_RESULTS=1"


# (what was tried, argv for a Workspace, the one warning expected): inputs that run, but not as one may think.
ODD_INPUTS: list[tuple] = [
    ("empty splits",
     lambda ws: ["synth", "--out", str(ws.root / "synth"), "--n-train", "0", "--n-val", "0", "--n-test", "1"],
     "train.jsonl and val.jsonl will hold no records (--n-train 0, --n-val 0)"),
    ("distill --steps below the warm-up", lambda ws: distill(ws, "--steps", "3"),
     "--steps 3 ends within the 30 warm-up steps: the learning rate never reaches its peak (0.001)"),
    ("tiny train --steps below the warm-up",
     lambda ws: ["tiny", "train", "--data", str(ws.data), "--out", str(ws.root / "tiny"), "--steps", "100"],
     "--steps 100 ends within the 150 warm-up steps: the learning rate never reaches its peak (0.001)"),
]


@pytest.mark.parametrize(("what", "build", "expected"), ODD_INPUTS, ids=[case[0] for case in ODD_INPUTS])
def test_odd_inputs_run_with_a_one_line_warning(what, build, expected, saved_tiny, tmp_path, capsys, monkeypatch):
    import importlib

    # The warnings come before any work: the stages that would train are stubbed.
    monkeypatch.setattr(importlib.import_module("vskip.distill"), "distill", lambda *args, **kwargs: tmp_path)
    monkeypatch.setattr(importlib.import_module("vskip.models.train_tiny"), "train_tiny", lambda *a, **k: tmp_path)
    code, err = run_cli(build(Workspace(tmp_path, saved_tiny)), capsys)
    assert code == 0, err
    assert [line for line in err.splitlines() if "warning" in line] == [f"vskip: warning: {expected}"]


def test_debug_shows_the_traceback(tmp_path):
    from vskip.errors import BadInput

    with pytest.raises(BadInput, match="no such file"):
        main(["--debug", "generate", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "out.jsonl")])


def test_palette_alpha_and_16_bit_images_are_converted_end_to_end(saved_tiny, tmp_path, capsys):
    ws = Workspace(tmp_path, saved_tiny)
    images = {
        "p.png": png(mode="RGB").convert("P", palette=Image.Palette.ADAPTIVE),
        "rgba.png": png("blue", mode="RGBA"),
        "la.png": png(0, mode="LA"),
        "g16.png": sixteen_bit(),
        "cmyk.jpg": png(mode="CMYK"),
    }
    records = [{**GOOD, "id": name, "image": f"images/{name}"} for name in images]
    # The workspace's earlier output is no vskip output: replaced as asked.
    code, err = run_cli(ws.generate("--model", str(saved_tiny), "--overwrite", records=records, images=images), capsys)
    assert code == 0, err
    out = [json.loads(line) for line in Path(ws.root / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == list(images)
    assert {Image.open(ws.data / "images" / name).mode for name in images} >= {"P", "RGBA", "LA", "I;16", "CMYK"}


def test_skip_bad_sets_bad_records_aside_and_keeps_the_good(saved_tiny, tmp_path, capsys):
    ws = Workspace(tmp_path, saved_tiny)
    lines = [
        json.dumps(GOOD),
        json.dumps({**GOOD, "id": "b", "image": "images/none.png"}),
        '{"id": "c",',
        json.dumps({**GOOD, "id": "d", "image": "images/empty.png"}),
        json.dumps(GOOD),
        json.dumps({**GOOD, "id": "e", "image": "../outside.png"}),
        json.dumps({**GOOD, "id": "f"}),
    ]
    data = ws.dataset(raw="\n".join(lines).encode(), images={"empty.png": b""})
    argv = ["generate", "--model", str(saved_tiny), "--data", data, "--out", str(tmp_path / "gen.jsonl"),
            "--max-new-tokens", "4", "--skip-bad"]
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    assert [json.loads(line)["id"] for line in (tmp_path / "gen.jsonl").read_text().splitlines()] == ["a", "f"]
    skipped = [json.loads(line) for line in (tmp_path / "gen.jsonl.skipped.jsonl").read_text().splitlines()]
    assert [(s.get("line"), s.get("id")) for s in skipped] == [(3, None), (5, "a"), (None, "b"), (None, "d"),
                                                               (None, "e")]
    assert "duplicate id" in skipped[1]["reason"] and "image not found" in skipped[2]["reason"]
    # --skip-bad is in use: a reason says what is wrong, not to rerun with it.
    assert skipped[0]["reason"] == "invalid JSON: expecting property name enclosed in double quotes at column 12"
    assert not [s for s in skipped if "--skip-bad" in s["reason"]]
    assert "skipped 5 bad record(s)" in err


def test_a_byte_order_mark_is_no_part_of_the_first_record_through_the_cli(saved_tiny, tmp_path, capsys):
    ws = Workspace(tmp_path, saved_tiny)
    data = ws.dataset(raw=codecs.BOM_UTF8 + f'{json.dumps(GOOD)}\n{{"id": "b",\n'.encode())
    argv = ["generate", "--model", str(saved_tiny), "--data", data, "--out", str(tmp_path / "gen.jsonl"),
            "--max-new-tokens", "4", "--skip-bad"]
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    assert [json.loads(line)["id"] for line in (tmp_path / "gen.jsonl").read_text().splitlines()] == ["a"]
    assert "skipped 1 bad record(s)" in err


def test_allow_outside_paths_lets_an_image_leave_the_dataset(saved_tiny, tmp_path, capsys):
    ws = Workspace(tmp_path, saved_tiny)
    argv = outside(ws, "../outside.png") + ["--model", str(saved_tiny), "--allow-outside-paths", "--overwrite"]
    code, err = run_cli(argv, capsys)
    assert code == 0, err


def test_allow_pickle_loads_pickled_weights(saved_tiny, tmp_path, capsys):
    argv = pickle_only(Workspace(tmp_path, saved_tiny)) + ["--allow-pickle", "--overwrite"]
    code, err = run_cli(argv, capsys)
    assert code == 0, err
