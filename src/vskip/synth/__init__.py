"""vskip-synth: a seeded, procedural visual-reasoning benchmark whose answers need the CoT's evidence.

Images are 112x112 RGB on white, read as a 4x4 grid of 28x28 cells (one merged image token each).

Scenes (families count, relate, pope): 3-7 shapes (circle, square, triangle, star, cross), each
~22 px in its own cell, coloured red, blue, green, yellow, purple or orange. Positions are
"row R column C", row 1 at the top, column 1 at the left. Documents (family doc): a receipt of
three lines "item price", line L in the L-th 28 px band, item from tea, bun, jam, egg, pie, milk,
price 1-9.

Language priors the image can contradict: a star is yellow with p = 0.65 and a circle red with
p = 0.55 (otherwise uniform over the other colours); other shapes' colours and all shapes are
uniform. Each item has a usual price (tea 2, bun 3, jam 4, egg 1, pie 6, milk 5) used with p = 0.6,
otherwise uniform over the other prices.

Families (record field `task`), each answered in two or more steps the CoT spells out. The scene
families' CoTs walk the scene (terse style; see CoT styles below): "I see a red star, a red square
(1) and a blue square." names every object in reading order and numbers each match of the question
as it is met, so no step has to find a colour-and-shape pair among the image tokens at once (a
4-layer model trained from scratch did not learn that; BENCHMARKS.md).
- count: "How many other objects are the same colour as the star?" (find the star and its colour,
  then walk) or "How many red squares are there?" (near misses share one attribute); the last
  number of the walk is the answer, 0-3 as digits.
- relate: "What colour is the shape left of the blue star?" / "What shape is right of the green
  circle?": the reference is unique by colour and shape, the neighbour cell is occupied, so the
  neighbour is the object just before or after the reference in the walk.
- doc: "How much do the tea, the jam and the egg cost together?" (read two or three prices, then
  add them one at a time) or "How much does the bun cost?" (one in six).
- pope: "Is there a green star?", exactly half yes per split; negatives split evenly among
  random (any absent pair), popular (an absent yellow star / red circle) and adversarial (colour
  and shape both in the scene, never together).

CoT styles (`build(..., cot_style=...)`): "terse" writes the bare walk above; "natural" (the
default) writes the same walk, every word in order, dressed as real models write (`synth.style`):
"To determine how many red squares there are, I see a red star, a red square (1) and a blue
square (2). That makes 2." Both styles draw the same items, ids and images for a seed.

Record (one JSON line): `id`, `image` (relative to the JSONL file), `task`, `question`, `answer`,
`cot`, `visual_words` (`{"index", "word", "type"}` for each CoT word that is a fact of the image,
`index` into `cot.split()`, `type` one of colour / shape / position / object / value); for a
natural CoT `roles` (one letter per CoT word: A anchor, a visual word; R restated from the
question; S scaffolding; K knowledge or arithmetic) and `essential` (one boolean per CoT word,
true for the words of its terse twin: `essential_cot` gives that CoT back); ground truth `scene`
(`{"colour", "shape", "row", "col"}` each) or `document` (`{"item", "price"}` per line, top to
bottom), and for pope `category` (positive / random / popular / adversarial).

    from vskip.synth import build
    build("runs/synth", seed=0, n_train=2000, n_val=100, n_test=300)
"""

from __future__ import annotations

from .build import FAMILIES, SPLITS, build, corpus_text, make_item
from .check import Mention, attribute_words, hallucinated_words, premises_true
from .style import COT_STYLES, essential_cot
from .words import VOCABULARY, contradicts_prior

__all__ = [
    "COT_STYLES",
    "FAMILIES",
    "SPLITS",
    "VOCABULARY",
    "Mention",
    "attribute_words",
    "build",
    "contradicts_prior",
    "corpus_text",
    "essential_cot",
    "hallucinated_words",
    "make_item",
    "premises_true",
]
