"""vskip.synth: determinism, answers recomputed from the ground truth, tags, POPE balance, pixels, CoT styles."""

from __future__ import annotations

import hashlib
import random
import re
import statistics
from collections import Counter

import pytest
from PIL import Image

from vskip.cli import main
from vskip.records import read_records
from vskip.synth import (
    COT_STYLES,
    FAMILIES,
    VOCABULARY,
    attribute_words,
    build,
    corpus_text,
    essential_cot,
    hallucinated_words,
    make_item,
    premises_true,
)
from vskip.synth.build import split_items
from vskip.synth.check import CONCLUDING
from vskip.synth.scenes import random_scene
from vskip.synth.style import POOLS, REAL_SHARES, SKEW, draws, dress, fill
from vskip.synth.words import COLOURS, ROLES

SHAPE_OF_PLURAL = {
    "circles": "circle",
    "squares": "square",
    "triangles": "triangle",
    "stars": "star",
    "crosses": "cross",
}
STEP = {"left of": (0, -1), "right of": (0, 1)}
N_TEST = 30  # per family; even, and its negatives (15) split evenly over the three POPE categories


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    paths = build(out, seed=3, n_train=20, n_val=4, n_test=N_TEST, progress=False)
    records = [r for split in ("train", "val", "test") for r in read_records(paths[split])]
    return out, records


def files(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_build_is_deterministic_per_seed(tmp_path):
    kwargs = dict(n_train=6, n_val=2, n_test=4, progress=False)
    build(tmp_path / "a", seed=0, **kwargs)
    build(tmp_path / "b", seed=0, **kwargs)
    build(tmp_path / "c", seed=1, **kwargs)
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    assert sum(a[k] != c[k] for k in a) > len(a) // 2


def test_splits_and_ids(built):
    out, records = built
    counts = Counter((r["id"].split("-")[0], r["task"]) for r in records)
    for family in FAMILIES:
        assert counts[("train", family)] == 20 and counts[("val", family)] == 4
        assert counts[("test", family)] == N_TEST
    for r in records:
        assert r["image"] == f"images/{r['id']}.png" and (out / r["image"]).is_file()


def expected_answer(record) -> str:
    """The answer recomputed from the question text and the ground truth alone."""
    q = record["question"]
    if record["task"] == "doc":
        prices = {line["item"]: line["price"] for line in record["document"]}
        m = re.fullmatch(r"How much (?:does|do) (.+?) cost(?: together)?\?", q)
        items = re.findall(r"the (\w+)", m[1])
        assert 1 <= len(items) <= 3 and (len(items) > 1) == q.endswith("together?")
        return str(sum(prices[item] for item in items))
    scene = record["scene"]
    if q == "How many other objects are the same colour as the star?":
        stars = [o for o in scene if o["shape"] == "star"]
        assert len(stars) == 1
        return str(sum(o["colour"] == stars[0]["colour"] for o in scene) - 1)
    if m := re.fullmatch(r"How many (\w+) (\w+) are there\?", q):
        return str(sum((o["colour"], o["shape"]) == (m[1], SHAPE_OF_PLURAL[m[2]]) for o in scene))
    if m := re.fullmatch(r"Is there an? (\w+) (\w+)\?", q):
        return "yes" if any((o["colour"], o["shape"]) == (m[1], m[2]) for o in scene) else "no"
    m = re.fullmatch(
        r"What (colour is the shape|shape is) (left of|right of) the (\w+) (\w+)\?", q
    )
    refs = [o for o in scene if (o["colour"], o["shape"]) == (m[3], m[4])]
    assert len(refs) == 1, "the reference must be unique"
    dr, dc = STEP[m[2]]
    (other,) = [o for o in scene if (o["row"], o["col"]) == (refs[0]["row"] + dr, refs[0]["col"] + dc)]
    return other["colour"] if m[1].startswith("colour") else other["shape"]


def test_answers_follow_from_the_ground_truth(built):
    _, records = built
    for r in records:
        assert r["answer"] == expected_answer(r), r


def test_scene_cots_walk_the_scene_and_number_each_match(built):
    """Every scene CoT lists all objects in reading order; the matches of the question are numbered."""
    _, records = built
    for r in (r for r in records if r["task"] != "doc"):
        walk = re.search(r"I see (.*?)\.", essential_cot(r))[1]
        listed = re.findall(r"an? (\w+) (\w+)(?: \((\d)\))?", walk)
        assert [(c, s) for c, s, _ in listed] == [(o["colour"], o["shape"]) for o in r["scene"]]
        marks = [int(mark) for _, _, mark in listed if mark]
        assert marks == list(range(1, len(marks) + 1))
        if r["task"] == "count":
            assert len(marks) == int(r["answer"])
        elif r["task"] == "pope":
            assert bool(marks) == (r["answer"] == "yes")
        else:  # relate: the reference, whose neighbour is the object just before or after it
            (ref,) = [i for i, (_, _, mark) in enumerate(listed) if mark]
            neighbour = listed[ref - 1 if "left of" in r["question"] else ref + 1]
            assert essential_cot(r).endswith(f"{neighbour[0]} {neighbour[1]}.")


def test_receipt_cots_read_every_line_then_the_asked_prices(built):
    """Every receipt CoT reads its lines in order, then names the question's items in its order."""
    _, records = built
    for r in (r for r in records if r["task"] == "doc"):
        walk, *steps = essential_cot(r).split(". ")
        assert re.findall(r"(\w+) (\d)", walk) == [(line["item"], str(line["price"])) for line in r["document"]]
        asked = re.findall(r"the (\w+)", r["question"])
        assert [step.split()[:3] for step in steps[: len(asked)]] == [["The", item, "costs"] for item in asked]


def test_scene_ground_truth_is_well_formed(built):
    _, records = built
    for r in records:
        if r["task"] == "doc":
            assert len(r["document"]) == 3 and len({line["item"] for line in r["document"]}) == 3
            assert all(1 <= line["price"] <= 9 for line in r["document"])
            continue
        cells = [(o["row"], o["col"]) for o in r["scene"]]
        assert 3 <= len(cells) <= 7 and len(set(cells)) == len(cells)
        assert all(1 <= row <= 4 and 1 <= col <= 4 for row, col in cells)


def test_visual_words_point_at_cot_words(built):
    _, records = built
    for r in records:
        words = r["cot"].split()
        assert r["visual_words"], r["id"]
        for vw in r["visual_words"]:
            assert words[vw["index"]].strip(".,?!") == vw["word"]
            assert vw["type"] in {"colour", "shape", "value", "position", "object"}
            assert r["roles"][vw["index"]] == "A" and r["essential"][vw["index"]]
        assert len(essential_cot(r).split()) <= 45


def test_reference_cots_make_only_true_claims(built):
    _, records = built
    for r in records:
        mentions, false = hallucinated_words(r, r["cot"])
        assert mentions >= 1 and false == 0, r


def test_reference_cots_have_true_premises(built):
    _, records = built
    # None: a CoT with no claim before its last sentence.
    verdicts = Counter(premises_true(r, r["cot"]) for r in records)
    assert set(verdicts) <= {True, None} and verdicts[True] > verdicts[None]


def test_pope_balance_and_categories(built):
    _, records = built
    test_pope = [r for r in records if r["task"] == "pope" and r["id"].startswith("test")]
    counts = Counter(r["category"] for r in test_pope)
    assert counts == {"positive": N_TEST // 2, "random": 5, "popular": 5, "adversarial": 5}
    for r in (r for r in records if r["task"] == "pope"):
        m = re.fullmatch(r"Is there an? (\w+) (\w+)\?", r["question"])
        present = {(o["colour"], o["shape"]) for o in r["scene"]}
        assert ((m[1], m[2]) in present) == (r["category"] == "positive")
        assert r["answer"] == ("yes" if r["category"] == "positive" else "no")
        if r["category"] == "popular":
            assert (m[1], m[2]) in {("yellow", "star"), ("red", "circle")}
        if r["category"] == "adversarial":
            assert m[1] in {c for c, _ in present} and m[2] in {s for _, s in present}


def test_images_and_objects_in_their_cells(built):
    out, records = built
    for r in records:
        image = Image.open(out / r["image"])
        assert image.size == (112, 112) and image.mode == "RGB"
        if r["task"] == "doc":
            grey = image.convert("L")
            for band in range(4):  # ink in the three line bands, none in the fourth
                rows = range(band * 28, band * 28 + 28)
                ink = sum(grey.getpixel((x, y)) < 128 for x in range(112) for y in rows)
                assert (ink > 20) == (band < 3)
            continue
        occupied = {(o["row"], o["col"]): COLOURS[o["colour"]] for o in r["scene"]}
        for row in range(1, 5):
            for col in range(1, 5):
                centre = image.getpixel(((col - 1) * 28 + 14, (row - 1) * 28 + 14))
                assert centre == occupied.get((row, col), (255, 255, 255))


def test_corpus_stays_in_the_vocabulary(built):
    _, records = built
    words = {w.strip(".,?!()") for text in corpus_text(records) for w in text.split()}
    assert words <= set(VOCABULARY)


def test_priors():
    rng = random.Random(0)
    objects = [o for _ in range(3000) for o in random_scene(rng)]
    share = {
        shape: Counter(o["colour"] for o in objects if o["shape"] == shape) for shape in ("star", "circle")
    }
    assert abs(share["star"]["yellow"] / sum(share["star"].values()) - 0.65) < 0.03
    assert abs(share["circle"]["red"] / sum(share["circle"].values()) - 0.55) < 0.03


def test_make_item_pure():
    a = make_item("relate", random.Random(7), "x")
    b = make_item("relate", random.Random(7), "x")
    assert a[0] == b[0] and a[1].tobytes() == b[1].tobytes()


# sha256 of train, val and test.jsonl of `build(seed=5, n_train=12, n_val=6, n_test=6)` as written by
# vskip-synth before the natural style existed (commit 10d03ad): the terse style must not change a byte.
TERSE_SHA256 = "4aeaac743e972a6f896104dde5981fbeefc6005e0ac2690fa6d55ab6258639a9"


def test_terse_writes_what_vskip_synth_wrote_before(tmp_path):
    paths = build(tmp_path, seed=5, n_train=12, n_val=6, n_test=6, cot_style="terse", progress=False)
    digest = hashlib.sha256(b"".join(paths[split].read_bytes() for split in ("train", "val", "test")))
    assert digest.hexdigest() == TERSE_SHA256


def test_both_styles_draw_the_same_items_and_images(tmp_path):
    kwargs = dict(seed=3, n_train=4, n_val=2, n_test=2, progress=False)
    terse_paths, natural_paths = build(tmp_path / "t", cot_style="terse", **kwargs), build(tmp_path / "n", **kwargs)
    for split in ("train", "val", "test"):
        for terse, natural in zip(read_records(terse_paths[split]), read_records(natural_paths[split]), strict=True):
            assert {"roles", "essential"}.isdisjoint(terse)
            assert {k: v for k, v in natural.items() if k not in ("cot", "visual_words", "roles", "essential")} == \
                {k: v for k, v in terse.items() if k not in ("cot", "visual_words")}
            assert essential_cot(natural) == terse["cot"]
    assert files(tmp_path / "t" / "images") == files(tmp_path / "n" / "images")


def test_the_command_line_writes_either_style(tmp_path):
    for style in COT_STYLES:
        argv = ["synth", "--out", str(tmp_path / style), "--n-train", "1", "--n-val", "0", "--n-test", "0"]
        assert main([*argv, "--cot-style", style]) == 0
        assert all(("essential" in r) == (style == "natural") for r in read_records(tmp_path / style / "train.jsonl"))


def twins(n: int):
    """(terse, natural) records of n val items of every family, in memory (no pictures)."""
    for family in FAMILIES:
        for _, record, _, dressing in split_items(family, "val", n, seed=2):
            cot = record.pop("cot")
            terse = {**record, "cot": cot.text, "visual_words": cot.visual_words}
            natural = dress(cot, draws(cot, dressing))
            yield terse, {**record, "cot": natural.text, "visual_words": natural.visual_words,
                          "roles": "".join(natural.roles), "essential": natural.essential}


@pytest.fixture(scope="module")
def pairs():
    return list(twins(150))


def test_the_essential_words_of_a_natural_cot_are_its_terse_twin(pairs):
    for terse, natural in pairs:
        words = natural["cot"].split()
        assert len(natural["roles"]) == len(natural["essential"]) == len(words) and set(natural["roles"]) <= set(ROLES)
        assert " ".join(word for word, keep in zip(words, natural["essential"]) if keep) == terse["cot"]
        kept = [i for i, keep in enumerate(natural["essential"]) if keep]
        assert natural["visual_words"] == [{**vw, "index": kept[vw["index"]]} for vw in terse["visual_words"]]
        anchors = [i for i, role in enumerate(natural["roles"]) if role == "A"]
        assert anchors == [vw["index"] for vw in natural["visual_words"]]


def test_natural_cots_make_their_terse_twins_claims(pairs):
    """Restating the question and the conclusion claims nothing: the checker reads both styles alike."""
    for terse, natural in pairs:
        claims = [(m.claim, m.true) for m in attribute_words(natural)]
        assert claims == [(m.claim, m.true) for m in attribute_words(terse)] and all(true for _, true in claims)
        assert premises_true(natural, natural["cot"]) == premises_true(terse, terse["cot"])


def test_each_slot_precedes_one_kind_of_walk_sentence():
    """The next step after any dressing is never ambiguous, and dressing never changes a walk word."""
    follows = {}
    for family in FAMILIES:
        for _, record, _, _ in split_items(family, "train", 100):
            cot = record["cot"]
            for at, slot in cot.slots:
                word = cot.words[at] if at < len(cot.words) else "<end>"
                follows.setdefault(slot, set()).add("N" if word.isdigit() else word)
    assert follows == {"opener": {"I"}, "count ask": {"I"}, "relate ask": {"I"}, "doc ask": {"I"},
                       "neighbour": {"Left", "Right"}, "prices": {"The"}, "add": {"N"}, "closer": {"<end>"}}
    for slot, variants in POOLS.items():
        for text in filter(None, variants):
            # A phrase runs into the next sentence, so that sentence must open with "I" or a number.
            assert text.endswith((".", "{question}")) or (text.endswith(",") and follows[slot] <= {"I", "N"})
            # Only a closer restates the conclusion, so the checker can tell the walk's own from it.
            assert (text.split()[0].strip(",").lower() in CONCLUDING) == (slot == "closer")


def test_every_variant_fills_for_every_item_and_claims_nothing():
    for family in FAMILIES:
        for _, record, _, _ in split_items(family, "test", 30):
            for _, slot in record["cot"].slots:
                for template in POOLS[slot]:
                    text = " ".join(word for word, _ in fill(template, record["cot"].fields))
                    assert attribute_words(record, text) == [], text


def test_pools_are_skewed_like_real_models_templates_and_stay_in_the_vocabulary():
    assert SKEW[0] / sum(SKEW) == 0.3 and sum(SKEW[:3]) / sum(SKEW) == 0.6
    for variants in POOLS.values():
        assert 8 <= len(variants) <= len(SKEW) and len(set(variants)) == len(variants)
        assert {word.strip(".,?") for text in variants for word in text.split() if "{" not in word} <= set(VOCABULARY)


def test_natural_cots_spend_their_words_as_real_models_do():
    """Within 5 points of DESIGN §7's shares of anchors, restating, scaffolding and knowledge, per family."""
    for family in FAMILIES:
        shares = {role: [] for role in ROLES}
        for _, record, _, dressing in split_items(family, "val", 300):
            roles = dress(record["cot"], draws(record["cot"], dressing)).roles
            for role in ROLES:
                shares[role].append(roles.count(role) / len(roles))
        for role in ROLES:
            assert abs(100 * statistics.mean(shares[role]) - REAL_SHARES[family][role]) <= 5, (family, role)


SCENE = {
    "task": "count",
    "scene": [
        {"colour": "red", "shape": "star", "row": 2, "col": 1},
        {"colour": "red", "shape": "circle", "row": 1, "col": 3},
        {"colour": "blue", "shape": "square", "row": 4, "col": 2},
    ],
}
DOC = {
    "task": "doc",
    "document": [{"item": "tea", "price": 4}, {"item": "jam", "price": 3}, {"item": "egg", "price": 1}],
}


@pytest.mark.parametrize(
    ("record", "text", "expected"),
    [
        (SCENE, "The star at row 2 column 1 is red. There is a red circle at row 1 column 3.", (2, 0)),
        (SCENE, "The star at row 2 column 1 is yellow. There is a red circle at row 1 column 3.", (2, 1)),
        (SCENE, "The star is yellow.", (1, 1)),
        (SCENE, "There is a red circle at row 4 column 2. There is a blue square at row 4 column 2.", (2, 1)),
        (SCENE, "I see a red star, a green circle and a blue square. There is no blue square.", (4, 2)),
        (SCENE, "There are no red squares. There are no red circles.", (2, 1)),
        (
            SCENE,
            "The red star is at row 2 column 1. Right of it, at row 2 column 2, is a red circle.",
            (2, 1),
        ),
        (SCENE, "Above it, at row 1 column 3, is a red circle.", (1, 0)),
        (SCENE, "That makes 3 objects.", (0, 0)),
        (DOC, "The tea on line 1 costs 4. The jam on line 2 costs 3. 4 plus 3 makes 9.", (2, 0)),
        (DOC, "The tea costs 2. The jam on line 3 costs 3. The pie costs 1.", (3, 3)),
        (DOC, "I see tea 4, jam 3 and egg 1. The jam costs 3.", (4, 0)),
        # A walk's order is not checked (compression drops entries); each pair is.
        (DOC, "I see jam 3, tea 4 and egg 2. The jam costs 3.", (4, 1)),
        # What a CoT asks or refers to is not claimed: a question, a clause opened by a question word, "the" pair.
        (SCENE, "Is there a green star? I see a red star.", (1, 0)),
        (SCENE, "To determine whether there is a green star, I see a red star.", (1, 0)),
        (SCENE, "To determine how many green stars there are, I see a red star.", (1, 0)),
        (SCENE, "To find the shape left of the green star, I see a green star.", (1, 1)),
        (DOC, "To determine how much the jam costs, I see jam 3. So the price of the jam is 3.", (1, 0)),
    ],
)
def test_hallucinated_words(record, text, expected):
    assert hallucinated_words(record, text) == expected


@pytest.mark.parametrize(
    ("record", "text", "expected"),
    [
        # The conclusion is not a premise: a wrong count or sum after right evidence is a reasoning error.
        (SCENE, "The star at row 2 column 1 is red. There is a red circle at row 1 column 3. That makes 5.", True),
        (SCENE, "The star at row 2 column 1 is blue. There is a red circle at row 1 column 3. That makes 1.", False),
        (SCENE, "I see a red star, a red circle and a blue square. There is no red star.", True),
        (SCENE, "I see a red star, a green circle and a blue square. There is a red circle.", False),
        (SCENE, "There is a red circle.", None),
        (SCENE, "That makes 3. That makes 4.", None),
        (DOC, "The tea on line 1 costs 4. The jam on line 2 costs 3. 4 plus 3 makes 9.", True),
        (DOC, "The tea on line 2 costs 4. The jam on line 2 costs 3. 4 plus 3 makes 7.", False),
        (DOC, "I see tea 4, jam 3 and egg 1. The egg costs 1. The jam costs 3. 1 plus 3 makes 5.", True),
        (DOC, "I see tea 4, jam 5 and egg 1. The egg costs 1. The jam costs 5. 1 plus 5 makes 6.", False),
        # A closer restates the conclusion: the conclusion is the last sentence before it.
        (SCENE, "I see a red star. There is a green star. So yes, there is one.", True),
        (SCENE, "I see a green star. There is a green star. Therefore, the answer is yes.", False),
        (DOC, "I see tea 4, jam 3 and egg 1. The jam costs 3. So the price of the jam is 3.", True),
        (DOC, "The jam costs 3. Thus, the answer is 3.", None),
    ],
)
def test_premises_true(record, text, expected):
    assert premises_true(record, text) is expected
