"""Benchmark 8: ``crashsight aggregate`` over 4096 rank reports (512 nodes x 8), vs json-loading them.

A job of 4096 ranks leaves 4096 reports, each with a stderr tail and diagnostics. The aggregate
must name the root cause in under 2 s and 200 MiB. The 2 s are judged on the CPU time the
command needs, interpreter start included: on a shared machine its wall time measures the
neighbours (the wall-time ratio against the baseline is reported beside it). The baseline is the least any tool
could do with the same files: a Python loop that ``json.load``s each one and drops it. Both run
as fresh interpreters, alternately; each reports its own peak RSS (``VmHWM`` of its own image,
read at exit, so nothing of this process's memory is counted).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from .common import BenchResult, Figure, Settings, child_env, interleave, median_ratio, python

__all__ = ["run"]

NODES, RANKS_PER_NODE = 512, 8
#: The rank that really fails; every other rank reports a consequence.
ROOT_RANK = 1234
_LIMIT_S = 2.0
_LIMIT_MIB = 200

#: Printed to stderr at the child's exit: its own peak RSS in kB.
_REPORT_PEAK = (
    "import atexit, sys\n"
    "def _peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            print('peak_kb', line.split()[1], file=sys.stderr)\n"
    "atexit.register(_peak)\n"
)
_SUBJECT = _REPORT_PEAK + (
    "from crashsight.cli.main import main\nmain(['aggregate', '--format', 'json', *sys.argv[1:]])\n"
)
_BASELINE = _REPORT_PEAK + (
    "import json\nfor path in sys.argv[1:]:\n    with open(path) as f:\n        json.load(f)\n"
)


def _within(name: str, value: float, unit: str, limit: float, settings: Settings) -> Figure:
    """An absolute figure judged against ``limit``; a quick run has fewer reports, so no target."""
    if settings.quick:
        return Figure(name, value, unit)
    return Figure(name, value, unit, target=f"< {limit:g} {unit}", met=value < limit)


def _report(rank: int) -> str:
    """One rank's report as crashsight writes it: a verdict, diagnostics and a stderr tail."""
    node = f"node-{rank // RANKS_PER_NODE:03d}"
    root = rank == ROOT_RANK
    verdict = ("crash", "segfault", "root_cause") if root else ("comm", "gloo", "consequence")
    line = f"[rank{rank}]: RuntimeError: Connection closed by peer [10.0.4.210]:4{rank:04d}"
    return json.dumps(
        {
            "schema_version": 1, "name": "python train.py", "status": "failed",
            "category": verdict[0], "subcategory": verdict[1], "role": verdict[2],
            "summary": f"{verdict[0]}/{verdict[1]}: {line}", "hint": "Read the peer's log.",
            "exit": {"code": 1, "description": "exited with code 1"},
            "command": ["python", "train.py"], "pid": 1000 + rank,
            "started_at": "2026-11-29T12:00:00Z", "duration_s": 3600.0,
            "rank": rank, "local_rank": rank % RANKS_PER_NODE, "world_size": NODES * 8,
            "host": node, "first_error_at": f"2026-11-29T13:00:0{0 if root else 1}.{rank:06d}Z",
            "ended_at": "2026-11-29T13:00:05Z", "blamed_peers": ["[10.0.4.210]:40001"],
            "diagnostics": [
                {"id": "gloo.peer_closed", "category": "comm", "subcategory": "gloo",
                 "count": 3, "first_line": line, "last_line": line, "first_lineno": 90,
                 "last_lineno": 95, "first_time": "2026-11-29T13:00:01Z",
                 "last_time": "2026-11-29T13:00:02Z", "fields": {"peer": "[10.0.4.210]:40001"},
                 "description": "A gloo TCP pair lost its peer.", "hint": "Read its log."}
            ],
            "stderr_tail": [f"[rank{rank}]: step {i} loss 0.{i:04d} lr 3e-4 " + "." * 60
                            for i in range(100)],
        }
    )  # fmt: skip


def _timed(code: str, paths: list[str], usage: dict[str, list[float]], outputs: list[str]) -> float:
    """Wall seconds one fresh interpreter takes for ``code`` over ``paths``.

    Also records, in ``usage``, its CPU seconds (user + system, from ``wait4``: on a loaded
    machine the CPU a run needs says more than its wall time) and its peak RSS in bytes.
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [python(), "-c", code, *paths], stdout=out, stderr=err, env=child_env()
        )
        _, status, rusage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode not in (0, 1):  # aggregate exits 1 when a rank failed
        raise RuntimeError(f"exited with {proc.returncode}: {stderr[-500:]}")
    peak = [line.split()[1] for line in stderr.splitlines() if line.startswith("peak_kb ")]
    usage["cpu"].append(rusage.ru_utime + rusage.ru_stime)
    usage["peak"].append(int(peak[-1]) * 1024 if peak else 0)
    outputs.append(stdout)
    return elapsed


def run(settings: Settings) -> BenchResult:
    """Time and measure the aggregate of every rank's report against json-loading them."""
    count = 256 if settings.quick else NODES * RANKS_PER_NODE
    rounds = settings.rounds(full=3)
    result = BenchResult("aggregate", f"crashsight aggregate over {count} rank reports")
    with tempfile.TemporaryDirectory(prefix="bench-aggregate-") as folder:
        paths = []
        for rank in range(count):
            path = Path(folder) / f"rank{rank}.json"
            path.write_text(_report(rank))
            paths.append(str(path))
        usage: dict[str, dict[str, list[float]]] = {
            "aggregate": {"cpu": [], "peak": []},
            "json": {"cpu": [], "peak": []},
        }
        outputs: list[str] = []
        times = interleave(
            {
                "aggregate": lambda: _timed(_SUBJECT, paths, usage["aggregate"], outputs),
                "json": lambda: _timed(_BASELINE, paths, usage["json"], []),
            },
            rounds,
        )
        size_mib = sum(Path(p).stat().st_size for p in paths) / 2**20
    verdict = json.loads(outputs[-1])
    expected = ROOT_RANK if count > ROOT_RANK else None
    cause = (verdict.get("root_cause") or {}).get("rank")
    result.checks["the root cause is the rank that failed of its own fault"] = (
        cause == expected if expected is not None else cause is not None
    )
    result.checks["the markdown body stays under GitHub's 65,536 characters"] = (
        len(verdict["body"]) < 65_536
    )
    cpu = statistics.median(usage["aggregate"]["cpu"])
    result.figures.append(
        Figure(
            "wall time vs json.load of the same files",
            median_ratio(times["aggregate"], times["json"]),
            "x the time",
            detail={"rounds": rounds, "reports": count, "MiB": round(size_mib, 1),
                    "median_wall_s": round(statistics.median(times["aggregate"]), 3)},
        )
    )  # fmt: skip
    result.figures.append(
        _within(
            f"CPU time of {count} reports, interpreter start included (s, absolute)",
            cpu,
            "s",
            _LIMIT_S,
            settings,
        )
    )
    peaks = usage["aggregate"]["peak"], usage["json"]["peak"]
    if min(peaks[0]) > 0 and min(peaks[1]) > 0:
        result.figures.append(
            _within(
                f"peak RSS of {count} reports, interpreter included (MiB, absolute)",
                round(max(peaks[0]) / 2**20, 1),
                "MiB",
                _LIMIT_MIB,
                settings,
            )
        )
        result.figures.append(
            Figure(
                "peak RSS vs json.load of the same files",
                max(peaks[0]) / max(peaks[1]),
                "x its peak RSS",
            )
        )
    else:
        result.notes.append("a child did not report its peak RSS")
    return result
