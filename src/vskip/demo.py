"""The main job: the whole V-Skip pipeline on the embedded default, with its report.

    synth data → teacher CoTs (vskip-tiny) → scores → compressed CoTs per method and γ
    → one student per method → evaluation of every method at every γ, plus `full`
    (uncompressed CoT) and `direct` (no CoT) → one latency pass over all of them, side by side
    → results.json, results.md, plots, report.html

Each step writes its files under the output directory and is skipped when they are already
there, so an interrupted demo picks up where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .compress import compress_records
from .distill import DEFAULT_DISTILL, distill
from .evaluate import EvalSettings, attach_latency, evaluate, timed_generation
from .generate import generate, generation_runner
from .lora import ADAPTER_INFO, load_student
from .prompts import cot_answer
from .records import Record, image_paths, iter_jsonl, read_records, write_jsonl_atomic
from .report import write_report
from .score import score_records
from .stage import side_path

# Every compression method the demo can distil; by default it runs the paper's comparison only (the text path
# against V-Skip), one student each, to fit its time on two CPU cores. `vskip demo --all-methods` runs them all.
ALL_METHODS = ("truncate", "random", "text", "visual", "vskip")


@dataclass(frozen=True)
class DemoConfig:
    model: str = "vskip-tiny"
    dtype: str = "auto"  # precision.DTYPES: every model the demo loads, teacher and students
    seed: int = 0
    n_distill: int = 1000  # training items per family whose teacher CoTs are compressed and distilled
    n_test: int = 75  # test items per family
    methods: tuple[str, ...] = ("text", "vskip")
    ratios: tuple[float, ...] = (0.5, 0.7, 0.9)
    distill_steps: int = DEFAULT_DISTILL.training.steps
    batch_size: int = 32
    latency_items: int = 96  # ~24 per family: the per-family speed-ups need a couple dozen pairs each
    examples_per_task: int = 2


DEFAULT = DemoConfig()
QUICK = DemoConfig(
    n_distill=6, n_test=3, ratios=(0.5,), distill_steps=3, batch_size=8, latency_items=2, examples_per_task=1,
)


def run_demo(out_dir: str | Path, config: DemoConfig = DEFAULT) -> Path:
    """Run the pipeline into `out_dir`; returns the path of report.html."""
    from .models import load_model
    from .synth import build

    out = Path(out_dir)
    data = out / "data"
    if not (data / "test.jsonl").is_file():
        build(data, seed=config.seed, n_train=config.n_distill, n_val=0, n_test=config.n_test)
    train = read_records(data / "train.jsonl")
    test = read_records(data / "test.jsonl")
    teacher = load_model(config.model, dtype=config.dtype)

    # 1. Teacher CoTs on the training items; only correct ones are worth compressing (distill would leave the
    # others out anyway). The generated records, and the files made from them, sit in `out`: their images
    # resolve from there.
    generated_path = out / "generated.jsonl"
    if generated_path.is_file():
        generated = list(iter_jsonl(generated_path))
    else:
        generated = generate(teacher, train, data, generated_path, batch_size=config.batch_size)
    correct = [record for record in generated if record["correct"]]

    # 2. Both saliency paths (and the blind pass, for the information-gain ablation), then every gate.
    scores_path = out / "scores.jsonl"
    if not scores_path.is_file():
        write_jsonl_atomic(scores_path, score_records(teacher, correct, out, blind=True))
    compressed_path = out / "compressed.jsonl"
    wanted = {(method, ratio) for method in config.methods for ratio in config.ratios}
    if not compressed_path.is_file() or not wanted <= {(r["method"], r["ratio"]) for r in iter_jsonl(compressed_path)}:
        scored = list(iter_jsonl(scores_path))
        write_jsonl_atomic(compressed_path, compress_records(scored, config.methods, config.ratios, config.seed))
    compressed = list(iter_jsonl(compressed_path))

    # 3. Accuracy and CoT lengths of every run: the teacher with its full CoT (`full`) and answering directly
    # (`direct`), and one student per method, which serves every γ. Latency is timed in step 4.
    settings = EvalSettings(batch_size=config.batch_size, latency_items=0, seed=config.seed)
    evaluations = out / "eval"
    latency_path = evaluations / "latency.json"
    full = _evaluated(teacher, test, data, evaluations / "full.json", settings, None, None)
    runs = {("full", 1.0): (teacher, settings, evaluations / "full.json"),
            ("direct", 1.0): (teacher, replace(settings, mode="direct"), evaluations / "direct.json")}
    _evaluated(teacher, test, data, evaluations / "direct.json", runs["direct", 1.0][1], full, None)
    recipe = replace(DEFAULT_DISTILL, training=replace(DEFAULT_DISTILL.training, steps=config.distill_steps,
                                                       seed=config.seed))
    for method in config.methods:
        adapter = out / "adapters" / method
        if not (adapter / ADAPTER_INFO).is_file():  # written last: the student is complete
            distill(config.model, compressed, out, adapter, method=method, settings=recipe, dtype=config.dtype)
        paths = {ratio: evaluations / f"{method}-{ratio}.json" for ratio in config.ratios}
        needed = not latency_path.is_file() or not all(path.is_file() for path in paths.values())
        student = load_student(config.model, adapter, dtype=config.dtype) if needed else None
        for ratio, path in paths.items():
            runs[method, ratio] = (student, replace(settings, ratio=ratio), path)
            _evaluated(student, test, data, path, runs[method, ratio][1], full, adapter)

    # 4. Latency: every run timed on the same sampled items in one pass, back to back, the order rotating
    # (latency.paired_latency); each speed-up is over `full`'s timings on the same items, per family too.
    if not latency_path.is_file():
        runners = {_run_name(*run): generation_runner(model, data, timed.mode, ratio=timed.ratio,
                                                      max_new_tokens=timed.max_new_tokens)
                   for run, (model, timed, _) in runs.items()}
        times = timed_generation(runners, test, replace(settings, latency_items=config.latency_items))
        for run, (_, _, path) in runs.items():
            attach_latency(path, times[_run_name(*run)], times[_run_name("full", 1.0)])
        latency_path.write_text(json.dumps(times, indent=2) + "\n")  # last: every run has its latencies
    rows = [_row(method, ratio, json.loads(path.read_text())) for (method, ratio), (_, _, path) in runs.items()]

    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "demo_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    examples = _examples(teacher, test, evaluations, config)
    return write_report(out, rows, examples, title="vskip demo: V-Skip on vskip-synth with vskip-tiny")["report.html"]


def _evaluated(loaded, records, data, path: Path, settings: EvalSettings, baseline: dict | None, adapter) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return evaluate(loaded, records, data, path, settings=settings, baseline=baseline, adapter=adapter)


def _run_name(method: str, ratio: float) -> str:
    return method if method in ("full", "direct") else f"{method}@{ratio}"


def _row(method: str, ratio: float, results: dict) -> dict:
    return {
        "method": method,
        "ratio": ratio,
        **{key: value for key, value in results.items() if key not in ("cot_tokens_by_id", "model", "adapter", "mode")},
    }


def _examples(teacher, test: list[Record], evaluations: Path, config: DemoConfig) -> list[dict]:
    """Test items of every family (those the teacher got right first), each shown with every method's keep mask
    over the teacher's CoT and the CoT its distilled student wrote."""
    full_items = {item["id"]: item for item in iter_jsonl(side_path(evaluations / "full.json", ".items.jsonl"))}
    chosen: list[Record] = []
    for task in sorted({record["task"] for record in test}):
        # A CoT with an answer is all scoring needs; a family the teacher always gets wrong still shows one.
        usable = [full_items[r["id"]] for r in test if r["task"] == task and full_items[r["id"]]["cot"]
                  and cot_answer(full_items[r["id"]]) is not None]  # fmt: skip
        chosen += sorted(usable, key=lambda item: not item["correct"])[: config.examples_per_task]
    if not chosen:
        return []
    scored = score_records(teacher, chosen, evaluations, progress=False)
    masks = compress_records(scored, config.methods, config.ratios, config.seed)
    runs = {
        (method, ratio): {item["id"]: item
                          for item in iter_jsonl(side_path(evaluations / f"{method}-{ratio}.json", ".items.jsonl"))}
        for method in config.methods
        for ratio in config.ratios
    }
    examples = []
    for record in scored:
        lower = [word.strip(".,!?;:").lower() for word in record["words"]]
        anchors = {str(entry["word"]).lower() for entry in record.get("visual_words", [])}
        methods = [{"method": "full", "ratio": 1.0, "keep": [True] * len(record["words"]),
                    "generated_cot": record["cot"], "prediction": record["prediction"],
                    "correct": record["correct"]}]
        for mask in (m for m in masks if m["id"] == record["id"]):
            generated = runs[(mask["method"], mask["ratio"])].get(record["id"], {})
            methods.append({"method": mask["method"], "ratio": mask["ratio"], "keep": mask["keep"],
                            "generated_cot": generated.get("cot"), "prediction": generated.get("prediction"),
                            "correct": generated.get("correct")})
        examples.append({
            "id": record["id"],
            "image_path": str(image_paths(record, evaluations)[0]),
            "question": record["question"],
            "answer": record["answer"],
            "task": record["task"],
            "words": record["words"],
            "word_text_score": record["word_text_score"],
            "word_visual_score": record["word_visual_score"],
            "visual_word_indices": [i for i, word in enumerate(lower) if word in anchors],
            "methods": methods,
        })
    return examples
