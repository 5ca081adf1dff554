"""Run a per-record stage over a dataset: batched, resumable, shardable, written atomically.

Finished records are appended to `OUT.partial` as they come (flushed and synced per batch), so an
interrupted run loses at most the batch in flight; a rerun skips the ids already there. A process
killed mid-write leaves a last line without its newline: the rerun drops it and redoes that
record. When every record is done, the output is written in input order to a temporary file and
renamed over `OUT`, so an earlier `OUT` is never half-overwritten. Under a multi-process launch
(see `distributed`), each process takes every n-th record and writes its own `OUT.partial.R-of-N`,
and the main process merges them; a rerun with another process count still reuses them.

A journal begins with the settings that made it (model, adapter, γ, mode: whatever changes the
output): a rerun with other settings removes it and starts afresh, saying so in one line, so one
output never mixes two runs. Records are written so that their images resolve from `OUT`'s
directory (`records.relocate`).

A stage whose results feed a later step of the same command (evaluate's items, before their latency is timed;
distill's forced answers, before training) keeps its journal instead of writing `OUT` (`keep_journal`): an
interruption in the later step then resumes with them done, and the command removes the journal
(`remove_journals`) once what it made from them is written.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .errors import BadInput
from .records import Record, relocate, write_jsonl_atomic
from .settings import BATCH_SIZE

# The key of a journal's first line, which holds the settings of the run that wrote it.
SETTINGS_KEY = "vskip_settings"


def side_path(out: str | Path, suffix: str) -> Path:
    """A file that belongs to output `out`: `OUT` + `suffix` (`OUT.partial`, `OUT.skipped.jsonl`,
    `OUT.items.jsonl`). The whole name is kept, so outputs that differ after a dot (`vskip-0.5`,
    `vskip-0.7`) never share one, as they would with `with_suffix`."""
    out = Path(out)
    return out.with_name(out.name + suffix)


def check_output(out: str | Path, *, directory: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written: a directory where a file is wanted (or the
    reverse), a file that is read-only, or a place where the nearest existing folder is a file or forbids writing."""
    out = Path(out)
    if out.exists() and out.is_dir() != directory:
        wanted, found = ("a directory", "a file") if directory else ("a file", "a directory")
        raise BadInput(f"{out}: is {found}; --out names {wanted}")
    # The finished output is renamed over the file, which a writable folder allows even over a read-only one:
    # refused here, as its owner protected it (and an immutable file would fail only after the whole run).
    if out.is_file() and not os.access(out, os.W_OK):
        raise BadInput(f"{out}: cannot be written (the file is read-only); make it writable or choose another --out")
    folder = out if directory else out.parent
    existing = next(path for path in [folder, *folder.parents] if path.exists())
    if not existing.is_dir():
        raise BadInput(f"{out}: cannot be written ({existing} is not a directory)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"{out}: cannot be written (no permission to write in {existing})")
    return out


def fingerprint(value: Any) -> str:
    """A short digest of a JSON value, for settings that name data by its content (records, a step's record)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def partial_path(out: Path, rank: int = 0, world: int = 1) -> Path:
    return side_path(out, ".partial" + (f".{rank}-of-{world}" if world > 1 else ""))


def journals(out: Path) -> list[Path]:
    """Every partial file of `out`, whatever the process count of the run that wrote it."""
    return sorted(out.parent.glob(glob.escape(out.name) + ".partial*"))


def _line(line: bytes) -> Any:
    """A complete journal line's JSON value; None for a line cut short or damaged."""
    try:
        return json.loads(line) if line.endswith(b"\n") else None
    except (ValueError, RecursionError):
        return None


def journal_settings(path: Path) -> dict | None:
    """The settings a journal starts with; None when it has none (damaged, or from an older vskip)."""
    with path.open("rb") as handle:
        header = _line(handle.readline())
    return header[SETTINGS_KEY] if isinstance(header, dict) and isinstance(header.get(SETTINGS_KEY), dict) else None


def read_journal(path: Path, *, repair: bool = False) -> list[Record]:
    """The complete records of a journal (after its settings line), up to the first line that is not one
    (a write cut short).

    With `repair`, the file is cut back to those records, so the next append starts a fresh line.
    """
    data = path.read_bytes()
    records, good = [], 0
    for number, line in enumerate(data.splitlines(keepends=True)):
        record = _line(line)
        if number == 0 and isinstance(record, dict) and SETTINGS_KEY in record:
            good += len(line)
            continue
        if not isinstance(record, dict) or "id" not in record:
            break
        records.append(record)
        good += len(line)
    if repair and good < len(data):
        with path.open("r+b") as handle:
            handle.truncate(good)
    return records


def settings_change(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    """What differs between a journal's settings and this run's, in a few words; nested settings by their path
    (`recipe.training.steps 3 → 1500`)."""
    if old is None:
        return "no settings recorded"
    old, new = _flat(old), _flat(new)
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{key} {old.get(key)!r} → {new.get(key)!r}" for key in keys if old.get(key) != new.get(key))


def _flat(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def run_stage(
    records: Sequence[Record],
    process_batch: Callable[[list[Record]], list[Record]],
    out: str | Path,
    *,
    base_dir: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
    batch_size: int = BATCH_SIZE,
    description: str = "records",
    progress: bool = True,
    keep_journal: bool = False,
) -> list[Record]:
    """Apply `process_batch` to `records` in batches and write the results to `out` (JSONL).

    Returns the output records in input order. Output records keep the `id` of their input. Given
    `base_dir`, the directory the input records' images resolve from, each output record's `image_root`
    is rewritten so its images resolve from `out`'s directory. `settings` (JSON values) are what the
    output depends on besides the records: journals written with other settings are removed first.
    With `keep_journal`, `out` is not written and the journal stays, complete: a rerun finds every record
    done there, until the caller removes it (`remove_journals`).
    """
    from .distributed import barrier, process_count, process_index

    if batch_size < 1:
        raise BadInput(f"batch size {batch_size} must be at least 1")
    # Compared as they come back from the journal: tuples are lists there.
    settings = json.loads(json.dumps(dict(settings or {})))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rank, world = process_index(), process_count()
    mine = list(records[rank::world])
    own = partial_path(out, rank, world)
    # An empty journal (a run killed before its first batch was written) holds nothing to keep or refuse.
    stale = {path: journal_settings(path) for path in journals(out) if path.stat().st_size}
    stale = {path: found for path, found in stale.items() if found != settings}
    barrier()  # every process has looked at the journals before any is removed
    if stale and rank == 0:
        for path in stale:
            path.unlink()
        path, found = next(iter(stale.items()))
        print(f"vskip: {path} comes from a run with other settings ({settings_change(found, settings)}); "
              "starting afresh", file=sys.stderr)
    barrier()
    # Other processes may be appending to their journals already: read them, repair only our own.
    done = {record["id"] for path in journals(out) for record in read_journal(path, repair=path == own)}
    todo = [record for record in mine if record["id"] not in done]
    with own.open("a", encoding="utf-8") as handle, tqdm(
        total=len(mine), initial=len(mine) - len(todo), desc=description, disable=not progress or rank != 0
    ) as bar:
        if handle.tell() == 0:
            handle.write(json.dumps({SETTINGS_KEY: settings}, ensure_ascii=False) + "\n")
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            results = process_batch(batch)
            if base_dir is not None:
                results = relocate(results, base_dir, out.parent)
            handle.write("".join(json.dumps(result, ensure_ascii=False) + "\n" for result in results))
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
    if not keep_journal:
        if rank == 0:
            write_jsonl_atomic(out, results)
        remove_journals(out)
    return results


def remove_journals(out: str | Path) -> None:
    """Remove every journal of `out`, once every process has read them (on the main process)."""
    from .distributed import barrier, process_index

    barrier()
    if process_index() == 0:
        for path in journals(Path(out)):
            path.unlink()
    barrier()
