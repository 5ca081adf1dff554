"""Throughput of `vskip generate` and `vskip score` with 1 and 2 processes on this machine.

    python benchmarks/bench_throughput.py --data runs/synth/test.jsonl --out benchmarks/results/throughput.json

Each stage runs on the same records as one process with every core, then as `accelerate launch
--multi_gpu --num_processes 2` with one core each (the CPU stand-in for two GPUs), back to back,
in alternating order over the repeats. Reported: wall time of the whole command (model loading
included) and records per second; the outputs of the two runs are checked to hold the same ids.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import model_arguments

from vskip.distributed import launch_command
from vskip.records import iter_jsonl, read_records
from vskip.report.tables import format_table


def command(processes: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "vskip.cli", *args] if processes == 1 else launch_command(processes, args)


def timed_run(processes: int, args: list[str], out: Path) -> float:
    out.unlink(missing_ok=True)
    threads = max(1, (os.cpu_count() or 1) // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    result = subprocess.run(command(processes, [*args, "--out", str(out)]), env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(args[:1])} on {processes} process(es) failed:\n{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, dtype=False)
    parser.add_argument("--data", required=True, help="a vskip-synth split (records with a reference `cot`)")
    parser.add_argument("--records", type=int, default=1200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vskip-throughput-"))
    try:
        source = Path(args.data).resolve()
        subset = work / "data.jsonl"
        records = read_records(source)[: args.records]
        subset.write_text("".join(json.dumps(record) + "\n" for record in records))
        common = ["--model", args.model, "--data", str(subset), "--images", str(source.parent),
                  "--batch-size", str(args.batch_size)]
        stages = {"generate": ["generate", *common], "score": ["score", *common]}  # score: the reference CoTs
        rows = []
        for stage, stage_args in stages.items():
            seconds: dict[int, list[float]] = {1: [], 2: []}
            for repeat in range(args.repeats):
                for processes in (1, 2) if repeat % 2 == 0 else (2, 1):
                    seconds[processes].append(timed_run(processes, stage_args, work / f"{stage}-{processes}.jsonl"))
            ids = {p: [r["id"] for r in iter_jsonl(work / f"{stage}-{p}.jsonl")] for p in (1, 2)}
            if not ids[1] == ids[2] == [r["id"] for r in records]:
                sys.exit(f"{stage}: the one- and two-process outputs hold different records")
            for processes, times in seconds.items():
                best = min(times)
                rows.append({"stage": stage, "processes": processes, "records": len(records),
                             "seconds": round(best, 2), "records_per_s": round(len(records) / best, 2),
                             "speedup": round(min(seconds[1]) / best, 2), "all_seconds": [round(t, 2) for t in times]})
    finally:
        shutil.rmtree(work)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "data": args.data, "cores": os.cpu_count(),
                                          "time": "fastest wall time of the repeats, model loading included",
                                          "rows": rows}, indent=2) + "\n")
    print(format_table(rows, ["stage", "processes", "records", "seconds", "records_per_s", "speedup"]))


if __name__ == "__main__":
    main()
