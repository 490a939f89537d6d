"""Benchmark 6: ``crashsight analyze`` MB/s on a generated log, vs ``grep -c ERROR``, with peak memory.

``crashsight analyze`` is being written alongside these benchmarks. Until the sub-command exists
(``crashsight analyze --help`` succeeds), this benchmark reports "not available" instead of
failing. Each run's peak RSS is the child's own ``VmHWM``, polled while it runs (a child of grep's
speed may finish before the first poll; its figure is then a lower bound).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from functools import partial
from pathlib import Path

from .common import BenchResult, Figure, Settings, child_env, interleave, median_ratio, python
from .logs import training_log

__all__ = ["run"]

_MIB = 1 << 20


def _peak_rss(pid: int, done: threading.Event, out: list[int]) -> None:
    """Poll ``VmHWM`` (peak RSS of the current image) of ``pid`` until ``done``.

    Not ``wait4``'s ``ru_maxrss``: Linux carries the parent's RSS at fork over into the child's,
    so every child of a big benchmark process would look as big as its parent.
    """
    path = f"/proc/{pid}/status"
    while not done.wait(0.002):
        try:
            with open(path) as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        out.append(int(line.split()[1]) * 1024)
        except OSError:
            return


def _run_child(argv: list[str], size: int, peaks: list[int]) -> float:
    """MB/s of ``argv`` over ``size`` bytes; appends its peak RSS (bytes) to ``peaks``."""
    done = threading.Event()
    seen: list[int] = [0]
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env()
    )
    sampler = threading.Thread(target=_peak_rss, args=(proc.pid, done, seen), daemon=True)
    sampler.start()
    _, status, _ = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):  # analyze may exit 1 when it finds failures; grep when none
        raise RuntimeError(f"{argv[:3]} exited with {proc.returncode}")
    peaks.append(max(seen))
    return size / 1e6 / elapsed


def _analyze_argv() -> list[str] | None:
    """How to run ``crashsight analyze``, or None if this checkout does not have it yet."""
    probe = subprocess.run(
        [python(), "-m", "crashsight", "analyze", "--help"],
        capture_output=True,
        env=child_env(),
        check=False,
    )
    return [python(), "-m", "crashsight", "analyze"] if probe.returncode == 0 else None


def run(settings: Settings) -> BenchResult:
    """Compare ``crashsight analyze`` with ``grep -c ERROR`` on the same generated log."""
    size = (8 * _MIB) if settings.quick else (256 * _MIB)
    rounds = settings.rounds(full=3)
    result = BenchResult("analyze", f"crashsight analyze over a {size // _MIB} MiB log")
    argv = _analyze_argv()
    grep = shutil.which("grep")
    if argv is None or grep is None:
        result.available = False
        result.notes.append(
            "`crashsight analyze` does not exist in this checkout yet"
            if argv is None
            else "grep not found"
        )
        return result
    path: Path = training_log(size)
    actual = path.stat().st_size
    peaks: dict[str, list[int]] = {"analyze": [], "grep": []}
    try:
        values = interleave(
            {
                "analyze": partial(_run_child, [*argv, str(path)], actual, peaks["analyze"]),
                "grep": partial(
                    _run_child, [grep, "-c", "ERROR", str(path)], actual, peaks["grep"]
                ),
            },
            rounds,
        )
    except RuntimeError as exc:
        result.available = False
        result.notes.append(f"{exc} (its command line may differ from `analyze FILE`)")
        return result
    ratio = median_ratio(values["analyze"], values["grep"])
    result.figures.append(
        Figure(
            "MB/s vs grep -c ERROR",
            ratio,
            "x grep's rate",
            detail={
                "rounds": rounds,
                "peak_rss_MiB_analyze": round(max(peaks["analyze"]) / _MIB, 1),
                "peak_rss_MiB_grep": round(max(peaks["grep"]) / _MIB, 1),
            },
        )
    )
    if max(peaks["grep"]) and max(peaks["analyze"]):
        result.figures.append(
            Figure(
                "peak RSS vs grep -c ERROR",
                max(peaks["analyze"]) / max(peaks["grep"]),
                "x grep's peak RSS",
            )
        )
    else:
        result.notes.append("a child finished before its RSS could be sampled; no RSS ratio")
    return result
