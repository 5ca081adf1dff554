"""`vskip score` before and after a change: wall time of `vskip.score.score`, paired and alternating.

    git worktree add /tmp/vskip-before COMMIT
    python benchmarks/bench_prepare.py --before-src /tmp/vskip-before [--records 1000] [--rounds 5] \
        --out benchmarks/results/prepare.json

"Before" is the checkout at `--before-src` (or its `src` folder), "after" this one. Both score the same
`--records` vskip-synth validation items (reference CoTs) with the same model weights (`--model` as this
checkout resolves it). Each round runs each version once, each in a fresh process that imports that
version's vskip, loads the model and scores two records to warm up off the clock, then times one `score` call
over all the records; the order alternates from round to round, so that drift on a shared machine falls on
both. Reported: each version's seconds per round, the speed-up median(before) / median(after) with its
bootstrap interval over the rounds (`latency.paired_speedup`), and whether both versions wrote the same scores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AFTER = Path(__file__).resolve().parents[1]
VERSIONS = ("before", "after")


def source_dir(checkout: str | Path) -> Path:
    """The folder that holds the `vskip` package: a checkout's `src`, or the folder given."""
    path = Path(checkout).resolve()
    return path / "src" if (path / "src" / "vskip").is_dir() else path


def commit(src: Path) -> str | None:
    """The git commit the version is checked out at (`-dirty` with changes not committed), where it is a checkout."""
    found = subprocess.run(["git", "-C", str(src), "describe", "--always", "--dirty", "--abbrev=12"],
                           capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def worker(args) -> None:
    """In a fresh process with one version's vskip first on the path: time one `score` call; print JSON."""
    import vskip
    from vskip.models import load_model
    from vskip.records import read_records
    from vskip.score import score

    loaded = load_model(args.model, dtype=args.dtype)
    records = read_records(args.data)[: args.records]
    base, out = Path(args.data).parent, Path(args.scores)
    score(loaded, records[:2], base, out.with_name(out.name + ".warm-up"), batch_size=args.batch_size,
          progress=False)
    started = time.perf_counter()
    score(loaded, records, base, out, batch_size=args.batch_size, progress=False)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "vskip": vskip.__file__, "device": str(loaded.model.device),
                      "precision": loaded.precision}))


def timed(args, src: Path, data: Path, scores: Path) -> dict:
    command = [sys.executable, __file__, "--worker", "--model", args.model, "--dtype", args.dtype, "--data", str(data),
               "--records", str(args.records), "--batch-size", str(args.batch_size), "--scores", str(scores)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{src}: the timed run failed:\n{run.stderr[-3000:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    if not Path(result["vskip"]).resolve().is_relative_to(src):
        sys.exit(f"{src}: the timed run imported vskip from {result['vskip']}")
    return result


def measure(args, work: Path) -> dict:
    from vskip.latency import paired_speedup
    from vskip.models import resolve
    from vskip.synth import build

    # Four families: `records` validation items, rounded up to a multiple of four, of which the first `records`.
    data = build(work / "synth", seed=0, n_train=0, n_val=-(-args.records // 4), n_test=0, progress=False)["val"]
    args.model = resolve(args.model)  # this checkout's vskip-tiny for both versions: the same weights
    sources = {"before": source_dir(args.before_src), "after": source_dir(args.after_src)}
    runs: dict[str, dict[int, dict]] = {version: {} for version in VERSIONS}
    for round_ in range(args.rounds):
        for version in VERSIONS if round_ % 2 == 0 else VERSIONS[::-1]:
            scores = work / "scores" / f"{version}-{round_}.jsonl"
            run = runs[version][round_] = timed(args, sources[version], data, scores)
            print(f"round {round_}: {version} {run['seconds']:.2f} s", file=sys.stderr)
    seconds = {version: {round_: run["seconds"] for round_, run in by_round.items()}
               for version, by_round in runs.items()}
    scored = {version: (work / "scores" / f"{version}-0.jsonl").read_text().splitlines() for version in VERSIONS}
    speedup = paired_speedup(seconds["before"], seconds["after"])
    return {
        "records": args.records,
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "model": args.model,
        "device": runs["after"][0]["device"],
        "precision": runs["after"][0]["precision"],
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "sources": {version: str(src) for version, src in sources.items()},
        "commits": {version: commit(src) for version, src in sources.items()},
        "median_s": {version: statistics.median(times.values()) for version, times in seconds.items()},
        "speedup": speedup["speedup"],  # median(before) / median(after): 2.0 is twice as fast
        "speedup_interval": [speedup["speedup_low"], speedup["speedup_high"]],
        "identical_scores": scored["before"] == scored["after"],
        "differing_records": sum(a != b for a, b in zip(scored["before"], scored["after"], strict=True)),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-src", help="a checkout (or its src folder) of the version to compare with")
    parser.add_argument("--after-src", default=str(AFTER), help="the version compared (default: this checkout)")
    parser.add_argument("--records", type=int, default=1000, help="vskip-synth validation items scored")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each version, alternating")
    # Not `common.model_arguments`: this script's workers import the other checkout's vskip, which need not have
    # what common.py reads; its options stay plain.
    parser.add_argument("--model", default="vskip-tiny")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="default: vskip's BATCH_SIZE")
    parser.add_argument("--work", help="a new directory for the data and scores (default: temporary)")
    parser.add_argument("--out", default="benchmarks/results/prepare.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--scores", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch_size is None:
        from vskip.settings import BATCH_SIZE

        args.batch_size = BATCH_SIZE
    if args.worker:
        return worker(args)
    if args.before_src is None:
        parser.error("--before-src is required")

    with tempfile.TemporaryDirectory(prefix="vskip-prepare-") as temporary:
        results = measure(args, Path(args.work or temporary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    medians = results["median_s"]
    print(f"{results['records']} records, {results['rounds']} rounds: before {medians['before']:.2f} s, after "
          f"{medians['after']:.2f} s (median); speed-up {results['speedup']:.3f} {results['speedup_interval']}; "
          f"identical scores: {results['identical_scores']}")


if __name__ == "__main__":
    main()
