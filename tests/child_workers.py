"""Workers whose own child processes fail for real, for tests/diagnostics/test_children.py.

Each function is a runner target (``f"{path}:name"``); its arguments are ``sys.argv[1:]``. The
children really fail: an invalid memory access through ctypes (SIGSEGV), a write to ``/dev/full``
(ENOSPC), an allocation over ``RLIMIT_AS`` (MemoryError), a kernel OOM kill in a memory cgroup.
The worker itself only does what user code does with a pool or a command: wait for the result and
let the wrapper exception propagate.

This file is loaded by path in the children, so it imports only the standard library at the top;
torch and loky are imported inside the functions that need them, by name, so that type checking
does not need them installed.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def _args() -> list[str]:
    return sys.argv[1:]


def _importable() -> None:
    """Spawned children unpickle functions by module name: make this folder importable."""
    folder = str(Path(__file__).resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)


_importable()
#: The real failures (SIGSEGV, ENOSPC, MemoryError) of the end-to-end verdict tests, reused.
_VERDICT_WORKERS: Any = importlib.import_module("verdict_workers")
segfault = _VERDICT_WORKERS.segfault


def hoard_memory() -> None:
    """Touch memory until the kernel's OOM killer ends this process."""
    hoard = []
    while True:
        hoard.append(b"\x01" * (16 << 20))  # bytes of ones: every page really touched


_FAILURES = {
    "segfault": segfault,
    "enospc": _VERDICT_WORKERS.write_dev_full,
    "memory": _VERDICT_WORKERS.memory_error,
}


def futures_pool() -> None:
    """``futures_pool FAILURE``: a ProcessPoolExecutor whose worker fails that way."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
        pool.submit(_FAILURES[_args()[0]]).result()


def futures_pool_oom() -> None:
    """``futures_pool_oom CGROUP_DIR``: join the memory cgroup, then a pool child hoards memory."""
    (Path(_args()[0]) / "cgroup.procs").write_text(str(os.getpid()))
    futures_pool_hoard()


def futures_pool_hoard() -> None:
    """A pool child hoards memory in the runner's own cgroup until the OOM killer ends it."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
        pool.submit(hoard_memory).result()


def mp_pool() -> None:
    """``mp_pool FAILURE``: a multiprocessing.Pool whose worker fails that way.

    A Pool replaces a worker that died and never fails the lost task, so after a segfault the
    worker waits forever: the supervisor's no-progress watchdog stops it.
    """
    with multiprocessing.Pool(processes=1) as pool:
        # Output resets the no-progress watchdog: it counts from here, not from the start-up.
        print("pool started", file=sys.stderr, flush=True)
        pool.apply(_FAILURES[_args()[0]])


def mp_process() -> None:
    """``mp_process FAILURE``: a multiprocessing.Process that fails; the worker checks its exit.

    The child's traceback reaches stderr under ``Process Process-1:``; the worker only learns
    an exit code, and raises as a careful caller does.
    """
    child = multiprocessing.Process(target=_FAILURES[_args()[0]])
    child.start()
    child.join()
    if child.exitcode:
        raise RuntimeError(f"shard writer exited with code {child.exitcode}")


def run_command() -> None:
    """``run_command PROGRAM ARGS...``: subprocess.run(check=True), as a derive shard runs toktx."""
    subprocess.run(_args(), check=True)


def run_command_captured() -> None:
    """``run_command_captured PROGRAM ARGS...``: the same with capture_output=True.

    The child's stderr then exists only in the CalledProcessError's ``stderr`` attribute.
    """
    subprocess.run(_args(), check=True, capture_output=True)


def python_child_segfault() -> None:
    """subprocess.run(check=True) of a Python child that segfaults (faulthandler dumps it)."""
    subprocess.run([sys.executable, "-c", "import ctypes; ctypes.string_at(0)"], check=True)


class _CrashingDataset:
    """A map-style dataset whose items crash the DataLoader worker that loads them."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        segfault()
        return index


def dataloader_segfault() -> None:
    """A torch DataLoader (num_workers=1) whose worker segfaults loading the first item."""
    data: Any = importlib.import_module("torch.utils.data")
    for _ in data.DataLoader(_CrashingDataset(), num_workers=1):
        pass


def _spawn_target(index: int, how: str) -> None:
    """The spawned process fails as ``how`` says."""
    _FAILURES[how]()


def mp_spawn() -> None:
    """``mp_spawn FAILURE``: torch.multiprocessing.spawn of one process (each imports torch,
    which is slow), which fails that way."""
    mp: Any = importlib.import_module("torch.multiprocessing")
    mp.spawn(_spawn_target, args=(_args()[0],), nprocs=1, join=True)


def loky_segfault() -> None:
    """A loky executor whose worker segfaults: TerminatedWorkerError."""
    loky: Any = importlib.import_module("loky")
    executor = loky.get_reusable_executor(max_workers=1)
    executor.submit(segfault).result()
