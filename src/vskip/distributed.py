"""The few facts about a multi-process launch the stages need, and nothing when run plainly.

Stages run data-parallel under `accelerate launch --multi_gpu --num_processes N` (which starts
N processes through torchrun, on GPUs or, on a machine without one, on CPU) or `torchrun
--nproc_per_node N`. On CPU the processes talk over gloo.
"""

from __future__ import annotations

import os
import socket
import sys
from functools import cache
from pathlib import Path


@cache
def _state():
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # accelerate only sets up CPU processes when asked for the CPU; without a GPU there is no
    # other choice, and without this it would run every process as a world of one.
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    if cpu and "WORLD_SIZE" not in os.environ and os.environ.get("MASTER_PORT"):
        # `accelerate launch --cpu --num_processes N` starts one process unless given an MPI hostfile.
        print(
            "vskip: warning: this launch started one process; for N CPU processes use "
            "`accelerate launch --multi_gpu --num_processes N` or `torchrun --nproc_per_node N`",
            file=sys.stderr,
        )
    return PartialState(cpu=cpu)


def device():
    """This process's device: its own GPU under a multi-GPU launch, else the GPU or the CPU."""
    return _state().device


def process_index() -> int:
    return _state().process_index


def process_count() -> int:
    return _state().num_processes


def is_main_process() -> bool:
    return process_index() == 0


def leave() -> None:
    """Leave the process group of a multi-process launch, where this process joined one: a process that exits
    with its gloo group still open can abort in the group's destructor ("terminate called without an active
    exception") after its work is done."""
    if _state.cache_info().currsize and process_count() > 1:
        _state().destroy_process_group()


def barrier() -> None:
    if process_count() > 1:
        _state().wait_for_everyone()


def gather_objects(value: object) -> list[object]:
    """Every process's `value`, in rank order (a list of one when run plainly)."""
    if process_count() == 1:
        return [value]
    import torch.distributed as dist

    values: list[object] = [None] * process_count()
    dist.all_gather_object(values, value)
    return values


def mean_over_processes(value: float) -> float:
    if process_count() == 1:
        return value
    return sum(gather_objects(value)) / process_count()


def launch_command(processes: int, vskip_args: list[str]) -> list[str]:
    """The command that runs `vskip ARGS` on `processes` processes of this machine (on CPU without a GPU).

    `--multi_gpu` because `--cpu` starts one process (see `_state`); a free port, so launches
    running side by side don't collide.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    accelerate = str(Path(sys.executable).parent / "accelerate")
    return [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", port,
            "-m", "vskip.cli", *vskip_args]
