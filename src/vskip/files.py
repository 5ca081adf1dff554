"""Files written whole: a reader never sees half of one, and an earlier file survives a crash or a kill.

Every file vskip replaces in place (a JSONL output, a run's results, a training checkpoint, the record of what
made an output, an imported image) is written by `atomic_path`: to a temporary file of this process beside it
(processes writing the same output never share one), synced to disk, then renamed over it. A merged model is
a folder, not a file: `merge.py` writes it beside its place and renames it in the same spirit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """The temporary path to write `path`'s new content to; when the block ends, the file written there is synced
    and renamed over `path`. Where the block raises (or is interrupted), the temporary file is removed and `path`
    is left as it was. `path`'s folder is made where it is missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        yield partial
        with partial.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` whole (`atomic_path`)."""
    with atomic_path(path) as partial:
        if isinstance(data, bytes):
            partial.write_bytes(data)
        else:
            partial.write_text(data, encoding="utf-8")
