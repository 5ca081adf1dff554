"""Run a per-record stage over a dataset: batched, resumable, shardable, written atomically.

Finished records are appended to `OUT.partial` as they come (flushed and synced per batch), so an
interrupted run loses at most the batch in flight; a rerun skips the ids already there. A process
killed mid-write leaves a last line without its newline: the rerun drops it and redoes that
record. When every record is done, the output is written in input order to a temporary file and
renamed over `OUT`, so an earlier `OUT` is never half-overwritten. Under a multi-process launch
(see `distributed`), each process takes every n-th record and writes its own `OUT.partial.R-of-N`,
and the main process merges them; a rerun with another process count still reuses them.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from .records import Record, write_jsonl_atomic


def partial_path(out: Path, rank: int = 0, world: int = 1) -> Path:
    return out.with_name(f"{out.name}.partial" + (f".{rank}-of-{world}" if world > 1 else ""))


def journals(out: Path) -> list[Path]:
    """Every partial file of `out`, whatever the process count of the run that wrote it."""
    return sorted(out.parent.glob(glob.escape(out.name) + ".partial*"))


def read_journal(path: Path, *, repair: bool = False) -> list[Record]:
    """The complete records of a journal, up to the first line that is not one (a write cut short).

    With `repair`, the file is cut back to those records, so the next append starts a fresh line.
    """
    data = path.read_bytes()
    records, good = [], 0
    for line in data.splitlines(keepends=True):
        try:
            record = json.loads(line) if line.endswith(b"\n") else None
        except (ValueError, RecursionError):
            record = None
        if not isinstance(record, dict) or "id" not in record:
            break
        records.append(record)
        good += len(line)
    if repair and good < len(data):
        with path.open("r+b") as handle:
            handle.truncate(good)
    return records


def run_stage(
    records: Sequence[Record],
    process_batch: Callable[[list[Record]], list[Record]],
    out: str | Path,
    *,
    batch_size: int = 8,
    description: str = "records",
    progress: bool = True,
) -> list[Record]:
    """Apply `process_batch` to `records` in batches and write the results to `out` (JSONL).

    Returns the output records in input order. Output records keep the `id` of their input.
    """
    from .distributed import barrier, process_count, process_index

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rank, world = process_index(), process_count()
    mine = list(records[rank::world])
    own = partial_path(out, rank, world)
    # Other processes may be appending to their journals already: read them, repair only our own.
    done = {record["id"] for path in journals(out) for record in read_journal(path, repair=path == own)}
    todo = [record for record in mine if record["id"] not in done]
    with own.open("a", encoding="utf-8") as handle, tqdm(
        total=len(mine), initial=len(mine) - len(todo), desc=description, disable=not progress or rank != 0
    ) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            handle.write("".join(json.dumps(result, ensure_ascii=False) + "\n" for result in process_batch(batch)))
            handle.flush()
            os.fsync(handle.fileno())
            bar.update(len(batch))
    barrier()
    paths = journals(out)
    by_id = {result["id"]: result for path in paths for result in read_journal(path)}
    missing = [record["id"] for record in records if record["id"] not in by_id]
    if missing:
        raise RuntimeError(f"{out}: no result for ids {missing[:5]} in {[str(p) for p in paths]}")
    results = [by_id[record["id"]] for record in records]
    barrier()  # every process has read the journals before the main one removes them
    if rank == 0:
        write_jsonl_atomic(out, results)
        for path in paths:
            path.unlink()
    barrier()
    return results
