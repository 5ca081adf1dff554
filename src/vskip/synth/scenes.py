"""Scenes of coloured shapes on a 4x4 grid, and the count / relate / pope questions about them."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from PIL import Image, ImageDraw

from .words import (
    COLOURS,
    DIRECTIONS,
    KNOWLEDGE,
    PLURALS,
    RESTATED,
    SCAFFOLD,
    SHAPES,
    USUAL_COLOUR,
    Cot,
    article,
    phrase,
    prior_colour,
)

SIZE = 112
GRID = 4
CELL = SIZE // GRID  # 28 px: one merged image token of the 112 px Qwen2-VL input
RADIUS = 11  # objects span ~22 px of their 28 px cell
STAR_SHARE = 0.5  # count questions about the star's colour; the rest count a colour-shape pair

Obj = dict[str, Any]  # {"colour", "shape", "row", "col"}, row and col in 1..4


def cell_of(obj: Obj) -> int:
    """The grid cell `obj` sits in, counted from 0 in reading order: also its merged image token."""
    return (obj["row"] - 1) * GRID + obj["col"] - 1


def random_scene(rng: random.Random, n: int | None = None) -> list[Obj]:
    """3-7 objects in distinct cells, each shape uniform, each colour from its shape's prior."""
    n = rng.randint(3, 7) if n is None else n
    cells = rng.sample(range(GRID * GRID), n)
    scene = []
    for cell in cells:
        shape = rng.choice(SHAPES)
        scene.append(
            {
                "colour": prior_colour(rng, shape),
                "shape": shape,
                "row": cell // GRID + 1,
                "col": cell % GRID + 1,
            }
        )
    return sort_scene(scene)


def sort_scene(scene: list[Obj]) -> list[Obj]:
    return sorted(scene, key=lambda o: (o["row"], o["col"]))


def pairs(scene: list[Obj]) -> set[tuple[str, str]]:
    return {(o["colour"], o["shape"]) for o in scene}


def draw_scene(scene: list[Obj]) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for obj in scene:
        cx = (obj["col"] - 1) * CELL + CELL / 2
        cy = (obj["row"] - 1) * CELL + CELL / 2
        if obj["shape"] == "circle":
            draw.ellipse((cx - RADIUS, cy - RADIUS, cx + RADIUS, cy + RADIUS), fill=COLOURS[obj["colour"]])
        else:
            draw.polygon(outline(obj["shape"], cx, cy), fill=COLOURS[obj["colour"]])
    return image


def outline(shape: str, cx: float, cy: float) -> list[tuple[float, float]]:
    """The polygon of a non-circle shape centred on (cx, cy); the centre pixel is always inside it."""
    r = RADIUS
    if shape == "square":
        s = r * 0.85
        points = [(-s, -s), (s, -s), (s, s), (-s, s)]
    elif shape == "triangle":
        points = [(0, -r), (r, r * 0.8), (-r, r * 0.8)]
    elif shape == "star":
        points = [
            # A star's points reach a little further so its area is close to the other shapes'.
            (
                (r + 1.5 if k % 2 == 0 else r * 0.5) * math.sin(math.pi * k / 5),
                -(r + 1.5 if k % 2 == 0 else r * 0.5) * math.cos(math.pi * k / 5),
            )
            for k in range(10)
        ]
    elif shape == "cross":
        t = r * 0.36
        points = [
            (-t, -r),
            (t, -r),
            (t, -t),
            (r, -t),
            (r, t),
            (t, t),
            (t, r),
            (-t, r),
            (-t, t),
            (-r, t),
            (-r, -t),
            (-t, -t),
        ]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return [(cx + x, cy + y) for x, y in points]


def _fresh(rng: random.Random, avoid) -> tuple[str, str]:
    """A prior-drawn (colour, shape) for which `avoid(colour, shape)` is false."""
    while True:
        shape = rng.choice(SHAPES)
        colour = prior_colour(rng, shape)
        if not avoid(colour, shape):
            return colour, shape


def _place(rng: random.Random, things: list[tuple[str, str]]) -> list[Obj]:
    cells = rng.sample(range(GRID * GRID), len(things))
    return sort_scene(
        [
            {"colour": c, "shape": s, "row": cell // GRID + 1, "col": cell % GRID + 1}
            for (c, s), cell in zip(things, cells, strict=True)
        ]
    )


def _walk(cot: Cot, scene: list[Obj], matches: Callable[[Obj], bool]) -> list[Obj]:
    """'I see a red star, a red square (1) and a blue square (2).': every object in reading order, each
    match numbered as it is met; returns the matches. Each step reads the next occupied image token
    and compares the pair just written with the question's: finding a colour-and-shape pair among
    the image tokens in one step is what a 4-layer model trained from scratch did not learn
    (BENCHMARKS.md)."""
    found: list[Obj] = []

    def write(c: Cot, obj: Obj) -> None:
        c.thing(obj["colour"], obj["shape"])
        if matches(obj):
            found.append(obj)
            c.say(f"({len(found)})", KNOWLEDGE)

    cot.say("I see").series(scene, write).end()
    return found


def count_item(rng: random.Random) -> tuple[dict[str, Any], list[Obj]]:
    """Two steps either way: find the star's colour then count it, or count a colour AND a shape."""
    n = rng.randint(3, 7)
    k = rng.randint(0, min(3, n - 1))
    cot = Cot()
    if rng.random() < STAR_SHARE:
        star = prior_colour(rng, "star")
        others = [_fresh(rng, lambda c, s: s == "star" or c == star) for _ in range(n - 1 - k)]
        matches = [(star, _fresh(rng, lambda c, s: s == "star")[1]) for _ in range(k)]
        scene = _place(rng, [(star, "star")] + matches + others)
        question = "How many other objects are the same colour as the star?"
        asked = phrase("how many other objects are the same colour")  # as the star, just named
        ref = next(o for o in scene if o["shape"] == "star")
        cot.say("The").fact("star", "shape").say("at").position(ref["row"], ref["col"])
        cot.say("is").fact(star, "colour").end()
        found = _walk(cot.slot("count ask"), scene, lambda o: o["colour"] == star and o is not ref)
    else:
        shape = rng.choice(SHAPES)
        colour = prior_colour(rng, shape)
        others = []
        for _ in range(n - k):
            # Near misses (same colour or same shape, not both) make one attribute alone not enough.
            if rng.random() < 0.5:
                if rng.random() < 0.5:
                    others.append((colour, rng.choice([s for s in SHAPES if s != shape])))
                else:
                    others.append((rng.choice([c for c in COLOURS if c != colour]), shape))
            else:
                others.append(_fresh(rng, lambda c, s: (c, s) == (colour, shape)))
        scene = _place(rng, [(colour, shape)] * k + others)
        question = f"How many {colour} {PLURALS[shape]} are there?"
        asked = phrase(f"how many {colour} {PLURALS[shape]} there are")
        found = _walk(cot.slot("count ask"), scene, lambda o: _pair(o) == (colour, shape))
    answer = str(len(found))
    cot.say(f"That makes {answer}.", KNOWLEDGE).ask(asked=asked)
    return _record("count", question, answer, cot, scene), scene


def relate_item(rng: random.Random) -> tuple[dict[str, Any], list[Obj]]:
    """Find a reference by colour and shape, step to its neighbour, read the neighbour's attribute.

    The neighbour is left or right, so in the CoT's walk in reading order it is the object just
    before or just after the reference."""
    while True:
        scene = random_scene(rng)
        at = {(o["row"], o["col"]): o for o in scene}
        seen = Counter(map(_pair, scene))
        unique = [o for o in scene if seen[_pair(o)] == 1]
        options = [
            (o, d)
            for o in unique
            for d, dc in DIRECTIONS.items()
            if (o["row"], o["col"] + dc) in at
        ]
        if options:
            break
    ref, direction = rng.choice(options)
    dc = DIRECTIONS[direction]
    other = at[(ref["row"], ref["col"] + dc)]
    asked = rng.choice(("colour", "shape"))
    reference = f"the {ref['colour']} {ref['shape']}"
    if asked == "colour":
        question = f"What colour is the shape {direction} {reference}?"
        indirect = f"what colour the shape {direction} {reference} is"
    else:
        question = f"What shape is {direction} {reference}?"
        indirect = f"what shape is {direction} {reference}"
    cot = Cot().slot("relate ask")
    _walk(cot, scene, lambda o: o is ref)
    cot.slot("neighbour").say(direction.capitalize(), RESTATED).say("it is").thing(other["colour"], other["shape"])
    cot.end().ask(asked=phrase(indirect), topic=phrase(f"the shape {direction} {reference}"),
                  before=phrase("before" if dc < 0 else "after", KNOWLEDGE))
    return _record("relate", question, other[asked], cot, scene), scene


def _pair(o: Obj) -> tuple[str, str]:
    return o["colour"], o["shape"]


POPULAR = tuple((colour, shape) for shape, (colour, _) in USUAL_COLOUR.items())
POPE_CATEGORIES = ("positive", "random", "popular", "adversarial")


def pope_item(rng: random.Random, category: str) -> tuple[dict[str, Any], list[Obj]]:
    """'Is there a <colour> <shape>?' with a negative of the given POPE category (or a positive)."""
    every = [(c, s) for c in COLOURS for s in SHAPES]
    while True:
        scene = random_scene(rng)
        present = pairs(scene)
        if category == "positive":
            options = sorted(present)
        elif category == "random":
            options = [p for p in every if p not in present]
        elif category == "popular":
            options = [p for p in POPULAR if p not in present]
        elif category == "adversarial":
            colours, shapes = {c for c, _ in present}, {s for _, s in present}
            options = [(c, s) for c in colours for s in shapes if (c, s) not in present]
            options.sort()
        else:
            raise ValueError(f"unknown POPE category {category!r}")
        if options:
            break
    colour, shape = rng.choice(options)
    question = f"Is there {article(colour)} {colour} {shape}?"
    cot = Cot()
    _walk(cot, scene, lambda o: _pair(o) == (colour, shape))
    if category == "positive":
        cot.say("There is").thing(colour, shape).end()
    else:
        cot.say("There is").say("no", KNOWLEDGE).say(f"{colour} {shape}.", RESTATED)
    answer = "yes" if category == "positive" else "no"
    finding = [(f"{answer},", KNOWLEDGE), *phrase("there is one" if answer == "yes" else "there is none", SCAFFOLD)]
    cot.slot("closer").ask(value=[(answer, KNOWLEDGE)], finding=finding)
    record = _record("pope", question, answer, cot, scene)
    record["category"] = category
    return record, scene


def _record(task: str, question: str, answer: str, cot: Cot, scene: list[Obj]) -> dict[str, Any]:
    cot.ask(question=phrase(question))
    return {"question": question, "answer": answer, "task": task, "cot": cot, "scene": scene}
