"""The main job: the whole V-Skip pipeline on the embedded default, with its report.

    synth data → teacher CoTs (vskip-tiny) → scores → compressed CoTs per method and γ
    → one student per method → evaluation of every method at every γ, plus `full`
    (uncompressed CoT) and `direct` (no CoT) → one latency pass over all of them, side by side
    → results.json, results.md, plots, report.html

Each step writes its files under the output directory and records what made them (`Steps`): a rerun skips
a step done with the same settings from the same inputs, picks up one that was interrupted, and makes again,
saying so, one made otherwise, and every step after it that reads it. So a demo run into the directory of
another (`--quick`, then the full run) reuses nothing that the other configuration made differently.
"""

from __future__ import annotations

import functools
import glob
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .compress import compress_records
from .distill import DEFAULT_DISTILL, DistillSettings, distill
from .evaluate import EvalSettings, attach_latency, evaluate, timed_generation
from .files import write_atomic
from .generate import generate, generation_runner
from .lora import ADAPTER_INFO, load_student
from .prompts import AUTO
from .records import Record, iter_jsonl, read_records, write_jsonl_atomic
from .report import write_report
from .report.examples import example_items, examples
from .report.tables import REFERENCE_METHODS
from .score import score, score_records
from .settings import DemoSettings, RoundSettings
from .stage import fingerprint, settings_change, side_path

# Every compression method the demo can distil; by default it runs the paper's comparison (the text path against
# V-Skip) and the three-way union, one student each, to fit its time on two CPU cores. `--all-methods` runs them all.
ALL_METHODS = ("truncate", "random", "text", "visual", "vskip", "dependency", "vskip+dependency")
# Where the demo records what made each step's output (`Steps`), in its output directory.
STEPS_FILE = "demo_steps.json"


DEFAULT = DemoSettings()
QUICK = DemoSettings(
    n_distill=6, n_test=3, ratios=(0.5,), distill_steps=3, batch_size=8, latency_items=2, examples_per_task=1,
)


class Steps:
    """What made each step's output, recorded in `OUT/demo_steps.json`: the settings the step read and the
    fingerprints of the steps whose outputs it read. A step's fingerprint is its record, which is new each time
    the step is made: whatever is made again, every step that reads it is made again too.

    As a journal does (`stage.run_stage`), a step's output made with other settings is removed, with one line
    saying why, before the step is made again; so is an output with no record (an older vskip's), whose
    settings are unknown. An interrupted step's record is this run's: it resumes from its journals.

    This is not a second journal: a journal records which records of one output are done, within a stage;
    `Steps` records which steps' outputs made which output, across stages, so that remaking one remakes what
    read it (a stage alone cannot know that its input was remade). Both say why with `stage.settings_change`.
    """

    def __init__(self, out: Path):
        self.out = out
        self.path = out / STEPS_FILE
        self.made: dict[str, dict] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def todo(self, name: str, settings: Mapping[str, Any], inputs: Sequence[str] = (), *, last: str = "") -> bool:
        """Whether step `name` is to be made: not when its output, `OUT/name` (a folder when `last` names the file
        written in it last), is complete and was made with these `settings` from these `inputs` (steps' names).
        When it is to be made, its record is this run's from now on."""
        output = self.out / name
        record = {"settings": json.loads(json.dumps(settings)),  # as read back: tuples are lists
                  "inputs": {step: fingerprint(self.made[step]) for step in inputs}}
        old = self.made.get(name)
        same = old is not None and all(old[key] == value for key, value in record.items())
        if same and (output / last if last else output).is_file():
            return False
        if not same:
            if old is not None:
                print(f"demo: {name} was made {_difference(old, record)}; making it again", file=sys.stderr)
            elif output.exists():
                print(f"demo: {name} has no record of the settings that made it; making it again", file=sys.stderr)
            _remove(output)
        self.made[name] = {**record, "made": datetime.now().isoformat()}
        write_atomic(self.path, json.dumps(self.made, indent=2) + "\n")
        return True


def _difference(old: dict, new: dict) -> str:
    """Why a step's record differs from this run's, in a few words."""
    reasons = []
    if old["settings"] != new["settings"]:
        reasons.append(f"with other settings ({settings_change(old['settings'], new['settings'])})")
    inputs = sorted(step for step in old["inputs"].keys() | new["inputs"].keys()
                    if old["inputs"].get(step) != new["inputs"].get(step))
    if inputs:
        reasons.append(f"from other inputs ({', '.join(inputs)})")
    return " and ".join(reasons)


def _remove(output: Path) -> None:
    """A step's output, file or folder, and the files that belong to it (`stage.side_path`: journals, items)."""
    for path in [output, *output.parent.glob(glob.escape(output.name) + ".*")]:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def run_demo(out_dir: str | Path, config: DemoSettings = DEFAULT) -> Path:
    """Run the pipeline into `out_dir`; returns the path of report.html."""
    from .models import load_model
    from .synth import build

    out = Path(out_dir)
    steps = Steps(out)
    data = out / "data"
    if steps.todo("data/", {"seed": config.seed, "n_distill": config.n_distill, "n_test": config.n_test},
                  last="test.jsonl"):
        build(data, seed=config.seed, n_train=config.n_distill, n_val=0, n_test=config.n_test)
    train = read_records(data / "train.jsonl")
    test = read_records(data / "test.jsonl")
    teacher = load_model(config.model, dtype=config.dtype)
    base = {"model": config.model, "dtype": config.dtype}  # read by every step that runs a model

    # 1. Teacher CoTs on the training items; only correct ones are worth compressing (distill would leave the
    # others out anyway). The generated records, and the files made from them, sit in `out`: their images
    # resolve from there.
    if steps.todo("generated.jsonl", {**base, "batch_size": config.batch_size}, ["data/"]):
        generate(teacher, train, data, out / "generated.jsonl", batch_size=config.batch_size)
    correct = [record for record in iter_jsonl(out / "generated.jsonl") if record["correct"]]

    # 2. The saliency paths (and the blind pass, where the information-gain gate needs it), then every gate.
    blind = "gain" in config.methods
    if steps.todo("scores.jsonl", {**base, "blind": blind}, ["generated.jsonl"]):
        score(teacher, correct, out, out / "scores.jsonl", blind=blind)  # journaled, as generate is
    gates = {"methods": config.methods, "ratios": config.ratios, "seed": config.seed}
    if steps.todo("compressed.jsonl", gates, ["scores.jsonl"]):
        write_jsonl_atomic(out / "compressed.jsonl", compress_records(iter_jsonl(out / "scores.jsonl"),
                                                                      config.methods, config.ratios, config.seed))
    compressed = list(iter_jsonl(out / "compressed.jsonl"))

    # 3. Accuracy and CoT lengths of every run: the teacher with its full CoT (`full`) and answering directly
    # (`direct`), and one student per method, which serves every γ. Latency is timed in step 4.
    settings = EvalSettings(batch_size=config.batch_size, latency_items=0, seed=config.seed)
    budgets = [*config.ratios, *[AUTO] * config.auto]
    runs = {("full", 1.0): settings, ("direct", 1.0): replace(settings, mode="direct"),
            **{(method, ratio): replace(settings, ratio=ratio) for method in config.methods for ratio in budgets}}

    # Each student's directory; with rounds, the first round's student is a run of its own beside the last one's.
    students = {method: f"adapters/{method}/" for method in config.methods}
    if config.rounds:
        runs.update({(_first_round(method), ratio): replace(settings, ratio=ratio)
                     for method in config.methods for ratio in budgets})
        students.update({_first_round(method): f"adapters/{method}/rounds/0/" for method in config.methods})

    @functools.cache
    def loaded(method: str):
        """The model of a run: the teacher, or a student, loaded once and only if a step runs it."""
        if method in REFERENCE_METHODS:
            return teacher
        return load_student(config.model, out / students[method], dtype=config.dtype)

    def evaluated(method: str, ratio: float, inputs: list[str], **options) -> dict:
        """The results of a run, evaluated unless they are already."""
        name = _results(method, ratio)
        if steps.todo(name, {**base, **asdict(runs[method, ratio])}, inputs):
            evaluate(loaded(method), test, data, out / name, settings=runs[method, ratio], **options)
        return json.loads((out / name).read_text())

    full = evaluated("full", 1.0, ["data/"])
    reads = ["data/", _results("full", 1.0)]  # every other run's ActRatio is over `full`'s CoTs
    evaluated("direct", 1.0, reads, baseline=full)
    recipe = replace(DEFAULT_DISTILL, auto=config.auto,
                     training=replace(DEFAULT_DISTILL.training, steps=config.distill_steps, seed=config.seed),
                     rounds=RoundSettings(count=config.rounds, samples=config.samples))
    for method in config.methods:
        adapter = f"adapters/{method}/"
        # A student learns from its method's records alone: keyed by their content, it is not made again when
        # the compressed file is, for other methods.
        learned = [record for record in compressed if record["method"] == method]
        if steps.todo(adapter, {**base, "recipe": asdict(recipe), "records": fingerprint(learned)},
                      last=ADAPTER_INFO):
            distill(config.model, learned, out, out / adapter, method=method, settings=recipe, dtype=config.dtype)
        for student in [method, *[_first_round(method)] * bool(config.rounds)]:
            for ratio in budgets:
                evaluated(student, ratio, [*reads, adapter], baseline=full, adapter=out / students[student])

    # 4. Latency: every run timed on the same sampled items in one pass, back to back, the order rotating
    # (latency.paired_latency); each speed-up is over `full`'s timings on the same items, per family too.
    timing = {"latency_items": config.latency_items, "seed": config.seed}
    if steps.todo("eval/latency.json", timing, [_results(*run) for run in runs]):
        runners = {_run_name(method, ratio): generation_runner(loaded(method), data, timed.mode, ratio=timed.ratio,
                                                               max_new_tokens=timed.max_new_tokens)
                   for (method, ratio), timed in runs.items()}
        times = timed_generation(runners, test, replace(settings, latency_items=config.latency_items))
        for run in runs:
            attach_latency(out / _results(*run), times[_run_name(*run)], times[_run_name("full", 1.0)])
        (out / "eval" / "latency.json").write_text(json.dumps(times, indent=2) + "\n")  # last: all are attached
    rows = [_row(method, ratio, json.loads((out / _results(method, ratio)).read_text())) for method, ratio in runs]

    note = smoke_note(config, recipe, len(train))
    (out / "results.json").write_text(json.dumps({"smoke_run": note, "rows": rows}, indent=2) + "\n")
    (out / "demo_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    examples = _examples(teacher, test, out, config)
    return write_report(out, rows, examples, title="vskip demo: V-Skip on vskip-synth with vskip-tiny",
                        note=note)["report.html"]


def smoke_note(config: DemoSettings, recipe: DistillSettings, n_train: int) -> str | None:
    """The line at the top of a run too small to say what the method does: its students stopped before the end
    of their learning-rate warm-up (as `--quick`'s do); None for a run that is not."""
    if config.distill_steps >= recipe.training.warmup_steps:
        return None
    return (f"Smoke run: {n_train} training items, {config.distill_steps} steps per student — the figures below "
            "show the pipeline works, not what the method does.")


def _first_round(method: str) -> str:
    """The name of a method's round-0 student among the demo's runs."""
    return f"{method}-round0"


def _run_name(method: str, ratio: float | str) -> str:
    return method if method in REFERENCE_METHODS else f"{method}@{ratio}"


def _results(method: str, ratio: float | str) -> str:
    """The step, and file under the output directory, of a run's results."""
    return f"eval/{method}.json" if method in REFERENCE_METHODS else f"eval/{method}-{ratio}.json"


def _row(method: str, ratio: float, results: dict) -> dict:
    return {
        "method": method,
        "ratio": ratio,
        **{key: value for key, value in results.items() if key not in ("cot_tokens_by_id", "model", "adapter", "mode")},
    }


def _examples(teacher, test: list[Record], out: Path, config: DemoSettings) -> list[dict]:
    """The report's examples (`report.examples`): test items of every family, each shown with every method's keep
    mask over the teacher's CoT and the CoT its distilled student wrote. Scoring and gating them is the demo's."""

    def items(method: str, ratio: float) -> dict[str, Record]:
        return {item["id"]: item for item in iter_jsonl(side_path(out / _results(method, ratio), ".items.jsonl"))}

    evaluations = out / "eval"  # where the items' images resolve from
    chosen = example_items(test, items("full", 1.0), config.examples_per_task)
    if not chosen:
        return []
    scored = score_records(teacher, chosen, evaluations, progress=False)
    masks = compress_records(scored, config.methods, config.ratios, config.seed)
    runs = {(method, ratio): items(method, ratio) for method in config.methods for ratio in config.ratios}
    return examples(scored, masks, runs, evaluations)
