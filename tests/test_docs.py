"""The documentation names only what the repository has, and its two front pages stay short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
# A Markdown link's target: [text](target) or ![alt](target), up to a space (a title) or the bracket.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)")
# A repository path named in the text, from the repository root: benchmarks/..., docs/..., src/..., tests/...
# (not after a colon: `COMMIT:PATH` names a file as it was in git history).
PATH = re.compile(r"(?<![\w./~:-])((?:benchmarks|docs|src|tests)/[\w./*+-]*)")


def _exists(path: Path) -> bool:
    if "*" in path.name or "*" in str(path.parent):
        return any(path.parent.glob(path.name))
    return path.exists()


def links(text: str) -> list[str]:
    """Relative link targets, without their #fragment (web and mail links and bare #anchors left out)."""
    targets = (target.split("#", 1)[0] for target in LINK.findall(text))
    return [target for target in targets if target and not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def named_paths(text: str) -> list[str]:
    return [match.rstrip(".,:;") for match in PATH.findall(text)]


def test_the_patterns_find_what_they_should():
    text = (
        "See [the recipe](docs/distillation.md#knobs), ![plot](benchmarks/results/demo-gamma.png), "
        "[web](https://example.com/docs/x.md) and `benchmarks/results/archive/*_lines.json`. In src/vskip/gate.py."
    )
    assert links(text) == ["docs/distillation.md", "benchmarks/results/demo-gamma.png"]
    assert named_paths(text) == [
        "docs/distillation.md",
        "benchmarks/results/demo-gamma.png",
        "benchmarks/results/archive/*_lines.json",
        "src/vskip/gate.py",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_link_and_path_exists(page):
    text = page.read_text()
    missing = [target for target in links(text) if not _exists(page.parent / target)]
    missing += [path for path in named_paths(text) if not _exists(ROOT / path)]
    assert not missing, f"{page.relative_to(ROOT)} names what the repository does not have: {missing}"


# The most each front page may weigh, in bytes, and where what does not fit belongs.
LIMITS = {"README.md": (10 * 1024, "docs/"), "BENCHMARKS.md": (15 * 1024, "docs/notebook.md")}


@pytest.mark.parametrize("name", LIMITS)
def test_the_front_pages_stay_short(name):
    limit, elsewhere = LIMITS[name]
    size = len((ROOT / name).read_bytes())
    assert size <= limit, f"{name} is {size} bytes, over {limit}: move what a newcomer can skip to {elsewhere}"
