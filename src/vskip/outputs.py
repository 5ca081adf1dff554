"""What an output may replace: never an input, and never another run's work.

An `--out` that is one of the command's inputs (or a file written beside it, `OUT.items.jsonl`), or an output
directory that holds one, is refused outright, `--overwrite` or not. An output file beside its input
(`runs/scores.jsonl` next to `runs/generated.jsonl`) is the usual case and fine.

Every output OUT the CLI writes has its record beside it, `OUT.made.json`: the command and the settings that shape
what it writes (`maker`). It is written before the work starts, so that the journals and checkpoints of an
interrupted run are claimed as well as its finished output. An OUT that holds work (`holds_work`) is worked on
again only by the command and settings its record names, which resume or redo it as they always did, or by any
command given `--overwrite`; anything else is refused in one line that names what made it. A record whose run
wrote nothing claims nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadInput
from .files import write_atomic
from .stage import journals, settings_change, side_path

# The record of what made an output, beside it.
MADE_SUFFIX = ".made.json"
# Options that permit or pace a run without changing what it writes: a rerun may change them and still resume.
PACING = ("debug", "overwrite", "skip_bad", "allow_pickle", "trust_remote_code", "allow_outside_paths")
# The commands whose journals resume at any batch size (in distill and tiny train it shapes the training).
PER_RECORD = ("generate", "score", "evaluate")
# The options that name a command's inputs: its --out may be none of them, nor (a directory) hold one. `data
# import`'s source is none: what it writes (a split's JSONL, images named by their content) never replaces it.
INPUTS = ("data", "images", "baseline", "adapter", "model", "init", "llmlingua2_model")
# Options that name files, directories or models: recorded as `models.model_identity` gives them, so that the
# same command run from another directory, or naming them another way, is the same command.
PATHS = (*INPUTS, "source")
# Files written beside an output (`stage.side_path`) that could be mistaken for an input.
BESIDE = (".items.jsonl", ".skipped.jsonl")


def made_path(out: str | Path) -> Path:
    return side_path(out, MADE_SUFFIX)


def maker(command: str, options: Mapping[str, Any]) -> dict:
    """What makes an output: the command and its options, less those that only permit or pace it (`PACING`, and the
    batch size of a `PER_RECORD` command), paths as `model_identity` records them; JSON values, as read back."""
    paced = PACING + (("batch_size",) if command in PER_RECORD else ())
    settings = {key: value for key, value in options.items() if key not in paced}
    paths = {key: str(value) for key, value in settings.items() if key in PATHS and value is not None}
    if paths:
        from .models import model_identity  # loads torch: only for a command that names a path

        settings.update({key: model_identity(value) for key, value in paths.items()})
    return json.loads(json.dumps({"command": command, "settings": settings}))


def check_not_input(out: str | Path, inputs: Mapping[str, str | Path], *, directory: bool = False) -> None:
    """Refuse an output that would replace one of `inputs` (option name → path; those that do not exist are not
    files here, such as hub ids): a file output that is one, or whose `BESIDE` files are; a directory output that
    is one or holds one."""
    target = Path(out).resolve()
    written = [target] if directory else [target, *(side_path(target, suffix) for suffix in BESIDE)]
    for option, given in inputs.items():
        if not Path(given).exists():
            continue
        path, what = Path(given).resolve(), f"an input of this command (its {option.replace('_', '-')})"
        if path == target:
            raise BadInput(f"{out}: is {what}; choose another --out")
        if path in written:
            raise BadInput(f"{out}: would rewrite {given}, {what}; choose another --out")
        if directory and path.is_relative_to(target):
            raise BadInput(f"{out}: holds {given}, {what}; choose another --out")


def holds_work(out: str | Path) -> bool:
    """Whether `out` holds what a run made: the file, a directory that is not empty, or what an interrupted run left
    beside it (journals `OUT.partial*`; `OUT.items.jsonl` and its journals, which `evaluate` writes)."""
    out = Path(out)
    items = side_path(out, ".items.jsonl")
    made = any(out.iterdir()) if out.is_dir() else out.exists()
    return made or items.exists() or bool(journals(out) or journals(items))


def refusal(out: str | Path, found: Mapping | None, wanted: Mapping, *, unrecorded: str = "exists") -> str | None:
    """Why the command `wanted` (a `maker`) may not work on `out`, which holds work made by `found` (None: no record
    of it; `unrecorded` says what it is then); None where `found` is `wanted`, whose rerun resumes or redoes it."""
    if found == wanted:
        return None
    again = "choose another --out, or pass --overwrite to replace it"
    if found is None:
        return f"{out}: {unrecorded}, with no record that vskip made it (no {made_path(out).name}); {again}"
    if found.get("command") != wanted["command"]:
        return f"{out}: made by `vskip {found.get('command')}`, not by `vskip {wanted['command']}`; {again}"
    change = settings_change(found.get("settings"), wanted["settings"])
    return f"{out}: made by `vskip {wanted['command']}` with other settings ({change}); {again}"


@dataclass(frozen=True)
class Claim:
    """A record `claim` wrote, and the bytes of the one it replaced (None: there was none)."""

    path: Path
    previous: bytes | None

    def undo(self) -> None:
        """Put the record back as it was: a command refused after its check leaves no record of its own."""
        if self.previous is None:
            self.path.unlink(missing_ok=True)
        else:
            write_atomic(self.path, self.previous)


def claim(out: str | Path, wanted: Mapping, *, overwrite: bool = False, write: bool = True) -> Claim | None:
    """Refuse (`BadInput`) to work on `out` where it holds work that `wanted` (a `maker`) did not make, unless
    `overwrite`; then record `wanted` as what makes `out`. Only with `write` (one process of a multi-process launch
    writes); returns what `Claim.undo` needs, None where nothing was written."""
    out, made = Path(out), made_path(out)
    previous = made.read_bytes() if made.is_file() else None
    found = _record(previous)
    if not overwrite and holds_work(out):
        why = refusal(out, found, wanted, unrecorded=_unrecorded(out))
        if why:
            raise BadInput(why)
    if not write or found == wanted:
        return None
    write_atomic(made, (json.dumps(wanted, indent=2, ensure_ascii=False) + "\n").encode())
    return Claim(made, previous)


def check_workspace(out: str | Path, marker: str, command: str, *, overwrite: bool = False) -> None:
    """Refuse a directory that `command` works in as its own (the demo's) where it holds files but not `marker`, the
    record that command keeps there, unless `overwrite`."""
    out = Path(out)
    if not overwrite and out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise BadInput(f"{out}: holds files that no `vskip {command}` made (no {marker}); choose another --out, "
                       "or pass --overwrite to work in it")


def _record(data: bytes | None) -> dict | None:
    """A record as `maker` made it; None for none, or one damaged (which records nothing)."""
    try:
        record = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("settings"), dict) else None


def _unrecorded(out: Path) -> str:
    """What an output with no record is, as far as its own files tell: a student says its method."""
    if not out.exists():
        return "has an interrupted run's journals beside it"
    if out.is_dir():
        from .lora import ADAPTER_INFO, adapter_info

        info = adapter_info(out)
        if info.get("method"):
            return f"holds a student of method {info['method']!r} (its {ADAPTER_INFO})"
        return "exists and is not empty"
    return "exists"
