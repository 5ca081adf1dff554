from __future__ import annotations

import html
import random
import re

import pytest
from chromium import find_chromium, screenshot
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from vskip.gate import METHODS as GATES
from vskip.report import write_report
from vskip.report.plots import (
    METHOD_COLOURS,
    METHOD_MARKERS,
    _auto_points,
    _gamma_axis,
    _plot_method,
    _series,
    pareto_front,
)
from vskip.report.tables import (
    COLUMN_DEFINITIONS,
    COMPRESSORS,
    LABELS,
    RESULT_COLUMNS,
    format_table,
    sort_rows,
    with_reference_act_ratio,
)

METHODS = ("truncate", "random", "text", "visual", "vskip")
RATIOS = (0.5, 0.7)
WORDS = ("The star is red . Left of it is a green circle at row 1 column 3 , "
         "and the blue square is below it . So the answer is green .").split()  # fmt: skip
ANCHORS = [3, 10, 11, 20, 21]  # red, green circle, blue square


def metrics(rng: random.Random, method: str, ratio: float) -> dict:
    act = ratio if method not in ("full", "direct") else (1.0 if method == "full" else 0.0)
    return {
        "n": 40, "accuracy": round(rng.uniform(0.3, 0.9), 3), "act_ratio": act,
        "cot_tokens_mean": 60 * act, "latency_s_median": 0.05 + rng.uniform(0.15, 0.25) * act,
        "speedup": 1 / (0.2 + act), "speedup_low": 0.9 / (0.2 + act), "speedup_high": 1.1 / (0.2 + act),
        "speedup_items": 40, "speedup_too_few": False,
        "varr": rng.uniform(0.4, 1.0) if method != "direct" else None,
        "hallucination_rate": rng.uniform(0, 0.2), "pope_f1": rng.uniform(0.5, 0.9), "pope_yes_ratio": None,
    }  # fmt: skip


@pytest.fixture
def rows() -> list[dict]:
    rng = random.Random(0)
    runs = [("full", 1.0), ("direct", 1.0)] + [(m, r) for r in RATIOS for m in METHODS]
    return [
        {"method": m, "ratio": r, **metrics(rng, m, r),
         "tasks": {task: metrics(rng, m, r) for task in ("count", "document")}}
        for m, r in runs
    ]  # fmt: skip


@pytest.fixture
def examples(tmp_path) -> list[dict]:
    image = Image.new("RGB", (112, 112), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 10, 40, 40), fill="green")
    draw.rectangle((60, 60, 90, 90), fill="blue")
    image_path = tmp_path / "scene.png"
    image.save(image_path)
    rng = random.Random(1)
    text = [round(rng.uniform(0, 6), 3) for _ in WORDS]
    visual = [round(rng.uniform(0, 1), 3) for _ in WORDS]
    runs = [{"method": "full", "ratio": 1.0, "keep": [True] * len(WORDS), "generated_cot": " ".join(WORDS),
             "prediction": "green", "correct": True}]  # fmt: skip
    for ratio in RATIOS:
        for method in METHODS:
            keep = [rng.random() < ratio for _ in WORDS]
            prediction = rng.choice(["green", "red"])
            runs.append({"method": method, "ratio": ratio, "keep": keep,
                         "generated_cot": f"{method} at {ratio} wrote <this>" if method != "random" else None,
                         "prediction": prediction, "correct": prediction == "green"})  # fmt: skip
    return [
        {"id": "synth-7", "image_path": str(image_path), "answer": "green",
         "question": "What colour is the <b>circle</b> & star?", "task": "relation",
         "words": list(WORDS), "word_text_score": text, "word_visual_score": visual,
         "visual_word_indices": ANCHORS, "methods": runs}
    ]  # fmt: skip


@pytest.fixture
def report(tmp_path, rows, examples) -> dict:
    return write_report(tmp_path / "out", rows, examples, title="test report")


def test_results_markdown_has_one_line_per_row(report, rows):
    text = report["results.md"].read_text()
    main_table = [line for line in text.split("## Results")[1].split("## Per task")[0].splitlines()
                  if line.startswith("|")]
    assert main_table[0] == (
        "| method | γ | n | accuracy | ActRatio | CoT tokens | latency (s) | speed-up | 90 % interval | timed | VARR "
        "| hallucination | POPE F1 | POPE yes |"
    )
    full = rows[0]
    assert f"| {full['speedup']:.2f}× | {full['speedup_low']:.2f}–{full['speedup_high']:.2f} | 40 |" in main_table[2]
    assert len(main_table) == 2 + len(rows)
    assert main_table[2].startswith("| full | 1.00 | 40 |") and main_table[3].startswith("| direct |")
    assert all(line.endswith("| – |") for line in main_table[2:])  # pope_yes_ratio is None everywhere
    per_task = [line for line in text.split("## Per task")[1].splitlines() if line.startswith("|")]
    assert len(per_task) == 2 + len(rows)
    assert per_task[0] == (
        "| method | γ | count acc | count ActRatio | count VARR | count halluc. "
        "| document acc | document ActRatio | document VARR | document halluc. |"
    )


def test_format_table_escapes_and_aligns():
    table = format_table([{"a": "x|y", "b": 0.5}, {"a": "z", "b": None}], ["a", "b"])
    assert table.splitlines() == ["| a | b |", "|---|---:|", "| x\\|y | 0.500 |", "| z | – |"]


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 0.8), (0.5, 0.7), (0.6, 0.6), (0.5, 0.75), (0.0, 0.3), (0.9, 0.8)]
    assert pareto_front(points) == [(0.0, 0.3), (0.5, 0.75), (0.9, 0.8)]


def test_plots_are_valid_deterministic_pngs(report, rows, examples, tmp_path):
    again = write_report(tmp_path / "again", rows, examples)
    for name in ("pareto.png", "gamma.png", "latency.png"):
        with Image.open(report[name]) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 300
        assert report[name].read_bytes() == again[name].read_bytes()


def test_html_is_self_contained(report):
    page = report["report.html"].read_text()
    for reference in ("http://", "https://", 'src="/', "<link", "<script src", "url("):
        assert reference not in page
    assert page.count("data:image/png;base64,") == 4  # three plots, one example image embedded once
    assert page.count('class="wide"') == 1  # the two panels of accuracy and ActRatio against γ


def test_html_strikes_exactly_the_pruned_words(report, examples):
    page = report["report.html"].read_text()
    example = examples[0]
    cot_cells = re.findall(r'<td class="cot">(.*?)</td>', page)
    assert len(cot_cells) == len(example["methods"])
    # Rows are shown grouped by ratio (high to low), so match each row to its run by content.
    expected = {
        tuple(html.escape(w) for w, kept in zip(example["words"], run["keep"], strict=True) if not kept)
        for run in example["methods"]
    }
    seen = {tuple(re.findall(r"<s [^>]*>(.*?)</s>", cell)) for cell in cot_cells}
    assert seen == expected
    for cell in cot_cells:
        words = re.findall(r"<(?:s|span) class=\"w[^\"]*\"[^>]*>(.*?)</(?:s|span)>", cell)
        assert words == [html.escape(w) for w in example["words"]]


def test_html_tooltips_anchors_and_escaping(report, examples):
    page = report["report.html"].read_text()
    example = examples[0]
    for i in (0, 3, len(WORDS) - 1):
        tooltip = f"text {example['word_text_score'][i]:.2f} · visual {example['word_visual_score'][i]:.2f}"
        assert f'title="{tooltip}' in page
    anchor_words = re.findall(r'class="w anchor" title="[^"]*">(.*?)</', page)
    assert len(anchor_words) == len(ANCHORS) * len(example["methods"])
    assert "What colour is the &lt;b&gt;circle&lt;/b&gt; &amp; star?" in page
    assert "<b>circle</b>" not in page


def test_full_is_a_point_of_the_accuracy_act_ratio_plot(tmp_path, rows, examples):
    rows[0]["act_ratio"] = None  # `full` evaluated without a baseline, as the demo does
    assert rows[0]["method"] == "full"
    filled = with_reference_act_ratio(rows)
    assert filled[0]["act_ratio"] == 1.0 and filled[1:] == rows[1:]
    assert _series(filled, "act_ratio", "accuracy")["full"] == [(1.0, rows[0]["accuracy"])]
    report = write_report(tmp_path, rows, examples)
    assert "| full | 1.00 | 40 | " + f"{rows[0]['accuracy']:.3f} | 1.000 |" in report["results.md"].read_text()


def test_tables_scroll_inside_their_own_box(report):
    page = report["report.html"].read_text()
    assert page.count('<table class="results">') == 2  # results and per task
    assert page.count('<div class="table-box"><table class="results">') == 2
    assert re.search(r"\.table-box \{[^}]*overflow-x: auto", page)


def test_each_run_shows_the_students_own_cot_beside_its_mask(report, examples):
    page = report["report.html"].read_text()
    students = re.findall(r'<td class="student">(.*?)</td>', page)
    runs = examples[0]["methods"]
    assert len(students) == len(runs)
    for run in runs[1:]:
        text = run["generated_cot"]
        assert (html.escape(text) if text else "–") in "".join(students)
    assert "teacher&#x27;s own CoT" in students[0] or "teacher's own CoT" in students[0]
    for phrase in ("learned from", "the student", "keep mask", "visual anchors", "✓ right or ✗ wrong"):
        assert phrase in page


def test_bad_keep_mask_is_rejected(tmp_path, rows, examples):
    from vskip.errors import BadInput

    examples[0]["methods"][1]["keep"] = [True]
    with pytest.raises(BadInput, match="synth-7"):
        write_report(tmp_path, rows, examples)


def test_screenshot_is_not_blank(report, tmp_path):
    if find_chromium() is None:
        pytest.skip("no chromium binary on PATH")
    png = screenshot(report["report.html"], tmp_path / "shot.png", width=1200, height=1600)
    with Image.open(png) as image:
        assert image.size == (1200, 1600)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 16  # text, tables and plots: far from a single colour


def test_every_column_of_the_results_table_is_defined_under_it(report):
    assert set(COLUMN_DEFINITIONS) == set(RESULT_COLUMNS)
    markdown = report["results.md"].read_text().split("## Results")[1].split("## Per task")[0]
    page = report["report.html"].read_text()
    definitions = page.split('<dl class="columns">')[1].split("</dl>")[0]
    for column in RESULT_COLUMNS:
        label = LABELS.get(column, column)
        assert f"- **{label}**: " in markdown and f"<dt>{html.escape(label)}</dt><dd>" in definitions
    assert "- **–**: no figure" in markdown
    assert "<code>full</code> is the teacher" in definitions and "`" not in definitions
    assert "acc, ActRatio, VARR and halluc. are accuracy, ActRatio, VARR and hallucination" in page


def test_a_note_heads_the_results_and_the_page_and_is_absent_otherwise(report, rows, examples, tmp_path):
    note = "Smoke run: 3 training items, 3 steps per student — a <test>."
    noted = write_report(tmp_path / "noted", rows, examples, note=note)
    assert noted["results.md"].read_text().splitlines()[:3] == ["# vskip report", "", f"**{note}**"]
    page = noted["report.html"].read_text()
    assert page.index(f'<p class="note">{html.escape(note)}</p>') < page.index("<h2>Results</h2>")
    assert "**" not in report["results.md"].read_text().split("## Results")[0]
    assert 'class="note"' not in report["report.html"].read_text()


def test_a_student_that_chose_its_own_budget_is_a_point_of_its_own(tmp_path, rows):
    auto = {"method": "vskip", "ratio": "auto", "n": 40, "accuracy": 0.8, "act_ratio": 0.6, "tasks": {}}
    ordered = sort_rows([auto, *rows])
    assert ordered[-1] is auto  # after every fixed γ
    assert "auto" not in {ratio for points in _series(ordered, "ratio", "accuracy").values() for ratio, _ in points}
    (method, x, y, half), = _auto_points(ordered)
    assert (method, x, y) == ("vskip", 0.6, 0.8) and half == pytest.approx(1.645 * (0.8 * 0.2 / 40) ** 0.5)
    paths = write_report(tmp_path, [auto, *rows], [], title="t")
    assert "| vskip | auto |" in paths["results.md"].read_text()


def test_a_speedup_from_too_few_items_says_so_in_every_table(tmp_path, rows, examples):
    rows[2].update(speedup=15.17, speedup_low=0.92, speedup_high=32.58, speedup_items=2, speedup_too_few=True)
    report = write_report(tmp_path, rows, examples)
    assert "| 15.17× | 0.92–32.58 | 2: too few |" in report["results.md"].read_text()
    page = report["report.html"].read_text()
    assert '<td class="num">15.17×</td><td>0.92–32.58</td><td class="num">2: too few</td>' in page
    assert "under 20, “too few”" in page


def test_the_method_definition_names_every_method_shown(tmp_path, rows, examples):
    shown = [row for row in rows if row["method"] in ("full", "direct", "text")]
    union = {**shown[-1], "method": "vskip+dependency"}
    mine = {**shown[-1], "method": "mine"}
    report = write_report(tmp_path, [*shown, union, mine], examples)
    line = next(line for line in report["results.md"].read_text().splitlines() if line.startswith("- **method**"))
    assert line.endswith(": `text` the most surprising words (the text path alone, as TokenSkip and LLMLingua "
                         "prune), `vskip+dependency` the visual, the text and the dependency path's words in turn, "
                         "and `mine` its own choice of words.")
    assert "`truncate`" not in line  # no run of it here
    assert "<code>vskip+dependency</code> the visual" in report["report.html"].read_text()


def test_every_gate_has_a_definition_a_colour_and_a_marker_of_its_own():
    assert set(GATES) <= set(COMPRESSORS) & set(METHOD_COLOURS) & set(METHOD_MARKERS)
    assert len(set(METHOD_COLOURS.values())) == len(METHOD_COLOURS)
    assert len(set(METHOD_MARKERS.values())) == len(METHOD_MARKERS)


def test_two_methods_at_one_point_are_both_seen():
    axes = Figure().subplots()
    _plot_method(axes, "text", [0.5], [0.8])
    _plot_method(axes, "vskip", [0.5], [0.8])
    text, vskip = axes.get_lines()
    assert text.get_marker() != vskip.get_marker()  # two outlines, one inside the other
    assert text.get_markerfacecolor() == vskip.get_markerfacecolor() == "none"


@pytest.mark.parametrize("ratios", [(0.5,), (0.3, 0.5, 0.7)])
def test_the_gamma_axis_spans_the_ratios_to_one_however_few(ratios):
    axes = Figure().subplots()
    axes.plot([0.5], [0.5])  # matplotlib alone would span 0.48–0.52
    _gamma_axis(axes, [{"ratio": ratio} for ratio in ratios] + [{"ratio": "auto"}, {"ratio": 1.0}])
    low, high = axes.get_xlim()
    assert low < min(ratios) and 1.0 < high and high - low < 1.3


def test_full_reads_one_per_task_as_overall_and_the_task_note_is_html(tmp_path, rows, examples):
    for block in [rows[0], *rows[0]["tasks"].values()]:
        block["act_ratio"] = None  # `full` evaluated without a baseline, as the demo does
    report = write_report(tmp_path, rows, examples)
    per_task = report["results.md"].read_text().split("## Per task")[1]
    full = next(line for line in per_task.splitlines() if line.startswith("| full |"))
    assert full.split(" | ")[3] == full.split(" | ")[7] == "1.000"  # count and document ActRatio
    page = report["report.html"].read_text()
    note = page.split("<h2>Per task</h2>")[1].split("<h2>")[0]
    assert "<code>auto</code> student" in note and "`" not in note


def test_examples_are_chosen_per_family_right_answers_first_and_marked_word_by_word(tmp_path):
    from vskip.report.examples import example_items, examples

    test = [{"id": i, "task": task} for i, task in [("a", "count"), ("b", "count"), ("c", "doc")]]
    full = {"a": {"id": "a", "cot": "x", "prediction": "1", "correct": False},
            "b": {"id": "b", "cot": "y", "prediction": "2", "correct": True},
            "c": {"id": "c", "cot": "", "prediction": "3", "correct": True}}  # no CoT: nothing to score
    assert [item["id"] for item in example_items(test, full, 1)] == ["b"]
    scored = {"id": "b", "image": "b.png", "question": "How many red stars?", "answer": "2", "task": "count",
              "cot": "A red star (1), red.", "prediction": "2", "correct": True,
              "words": ["A", "red", "star", "(1),", "red."], "word_text_score": [0.0] * 5,
              "word_visual_score": [0.0] * 5, "visual_words": [{"index": 1, "word": "red", "type": "colour"},
                                                               {"index": 2, "word": "1", "type": "value"}]}
    mask = {"id": "b", "method": "vskip", "ratio": 0.5, "keep": [False, True, True, False, True]}
    (shown,) = examples([scored], [mask], {("vskip", 0.5): {"b": {"cot": "red star red", "prediction": "2",
                                                                "correct": True}}}, tmp_path)
    assert shown["visual_word_indices"] == [1, 4]  # a count's "(1)" is its counter, not the anchor "1"
    assert [(m["method"], m["generated_cot"]) for m in shown["methods"]] == [("full", scored["cot"]),
                                                                            ("vskip", "red star red")]
    assert shown["image_path"] == str(tmp_path / "b.png")
