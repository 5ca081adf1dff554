"""Which names go to the Hugging Face hub: one rule for `--model` and for `vskip data import`'s source."""

from __future__ import annotations

import re

# A hub id is `name` or `org/name` (letters, digits, `-`, `_`, `.`; no `..`); any other name is a local path.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def is_hub_id(name: str) -> bool:
    """Whether `name` can be a hub id; a path that starts with `.`, `/` or `~`, or has two `/`, never is."""
    return HUB_ID.fullmatch(name) is not None and ".." not in name
