"""Digest every file of a run's directory, leaving out what the wall clock decides, so two runs of one
pipeline (before and after a refactor) can be compared file by file: `python benchmarks/output_digest.py DIR`.

JSON and JSONL are digested without their timing fields (keys starting with a TIMED_PREFIXES entry or
ending in `_s`); files that are timings, or tables and drawings of them, or the demo's record of when each
step was made (TIMED_FILES) are listed without a digest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

TIMED_PREFIXES = ("latency", "speedup", "throughput", "seconds")
TIMED_FILES = {"latency.json", "latency.png", "report.html", "results.md", "demo_steps.json"}


def _untimed(value):
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not k.startswith(TIMED_PREFIXES) and not k.endswith("_s")}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def digest(path: Path, root: Path) -> str:
    if path.name in TIMED_FILES:
        return "timed"
    # A run names its own directory in some fields: two runs in two directories differ there alone.
    data = path.read_bytes().replace(str(root.resolve()).encode(), b"<run>")
    if path.suffix == ".json":
        data = json.dumps(_untimed(json.loads(data)), sort_keys=True).encode()
    elif path.suffix == ".jsonl":
        data = b"\n".join(json.dumps(_untimed(json.loads(line)), sort_keys=True).encode() for line in data.splitlines())
    return hashlib.sha256(data).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a run's output directory, e.g. a quick demo's")
    root = parser.parse_args().dir
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        print(digest(path, root), path.relative_to(root))


if __name__ == "__main__":
    main()
