"""Run a per-record stage over a dataset: batched, resumable, shardable, written atomically.

Finished records are appended to `OUT.partial` as they come (flushed), so an interrupted run
loses at most the batch in flight; a rerun skips the ids already there. When every record is
done, the output is written in input order to a temporary file and renamed over `OUT`, so an
earlier `OUT` is never half-overwritten. Under `accelerate launch`, each process takes every
n-th record and writes its own partial file, and the main process merges them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from .records import Record, iter_jsonl, write_jsonl_atomic


def partial_path(out: Path, rank: int = 0, world: int = 1) -> Path:
    return out.with_name(f"{out.name}.partial" + (f".{rank}-of-{world}" if world > 1 else ""))


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
    mine = [record for index, record in enumerate(records) if index % world == rank]
    journal = partial_path(out, rank, world)
    done = {record["id"] for record in iter_jsonl(journal)} if journal.is_file() else set()
    todo = [record for record in mine if record["id"] not in done]
    with journal.open("a", encoding="utf-8") as handle, tqdm(
        total=len(mine), initial=len(mine) - len(todo), desc=description, disable=not progress or rank != 0
    ) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            for result in process_batch(batch):
                handle.write(json.dumps(result, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            bar.update(len(batch))
    barrier()
    journals = [partial_path(out, r, world) for r in range(world)]
    by_id = {result["id"]: result for path in journals for result in iter_jsonl(path)}
    results = [by_id[record["id"]] for record in records]
    if rank == 0:
        write_jsonl_atomic(out, results)
        for path in journals:
            path.unlink()
    barrier()
    return results
