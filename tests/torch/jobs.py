"""Real 3-rank torch jobs (gloo on 127.0.0.1) run the three ways crashsight explains a job.

Shared by ``tests/torch/test_dist_jobs.py`` (each combination once) and
``benchmarks/dist_repeat.py`` (each combination ten times, with torchrun's own pick beside
crashsight's). One rank of `dist_worker.py` fails for real; each way reports which rank crashsight
names as the root cause and with what verdict:

* ``per-rank``: ``torchrun --no-python crashsight run --report r/rank{rank}.json -- python
  dist_worker.py``, then ``crashsight aggregate --format json r/*.json``;
* ``launcher``: ``crashsight run --report job.json -- torchrun --no-python python
  dist_worker.py``;
* ``group``: `Supervisor.spawn_group` of the worker's ``main``, without torchrun.

Every process a job starts is killed and reaped before the function returns, whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from crashsight.diagnostics.catalogue import CATALOGUE
from crashsight.diagnostics.collector import StderrCollector
from crashsight.diagnostics.launcher import LauncherSplitter
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import Supervisor

WORKER = Path(__file__).resolve().parent / "dist_worker.py"
WORLD_SIZE = 3
VICTIM = 1
#: The process group's timeout in the hang scenario: the peers give up after this long.
PG_TIMEOUT_S = 4.0
#: A job that has not ended after this long is a failure of the test, never a wait.
JOB_DEADLINE_S = 240.0
#: What crashsight must say about the victim, by scenario.
EXPECTED: dict[str, tuple[str, str | None]] = {
    "oom": ("memory", "memory_error"),
    "segfault": ("crash", "segfault"),
    "enospc": ("disk", "enospc"),
    "hang": ("timeout", "hang"),
}
MODES = ("per-rank", "launcher", "group")


@dataclass(frozen=True)
class JobResult:
    """What one run of one scenario said."""

    mode: str
    scenario: str
    rank: int | None
    category: str | None
    subcategory: str | None
    summary: str
    torchrun_rank: int | None
    seconds: float

    @property
    def right(self) -> bool:
        """Whether crashsight named the victim, with the scenario's verdict."""
        return self.rank == VICTIM and (self.category, self.subcategory) == EXPECTED[self.scenario]


def _bin(name: str) -> str:
    """An executable of this interpreter's environment (the venv's torchrun and crashsight)."""
    found = Path(sys.executable).with_name(name)
    if not found.exists():
        raise FileNotFoundError(f"{name} is not installed next to {sys.executable}")
    return str(found)


def _worker_args(scenario: str) -> list[str]:
    return [scenario, "--victim", str(VICTIM), "--pg-timeout", str(PG_TIMEOUT_S)]


def _torchrun(*command: str) -> list[str]:
    return [
        _bin("torchrun"),
        "--standalone",
        f"--nproc-per-node={WORLD_SIZE}",
        *command,
    ]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a session of its own; kill and reap its whole tree on the way out."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": ""}
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=JOB_DEADLINE_S)
    finally:
        _kill_tree(proc.pid)
        proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _kill_tree(pid: int) -> None:
    """SIGKILL every descendant of ``pid`` still alive, leaves first, and wait for them."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for child in reversed(children):
        try:
            child.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(children, timeout=10)


def torchrun_pick(stderr: str) -> int | None:
    """The rank torchrun's summary names under 'Root Cause (first observed failure)'."""
    splitter = LauncherSplitter()
    collector = StderrCollector(CATALOGUE, line_sinks=[splitter])
    collector.feed(stderr.encode())
    collector.close()
    return next((f.rank for f in splitter.summary if f.first_observed), None)


def run_torchrun(scenario: str, workdir: Path, *, per_rank: bool, wrapped: bool) -> list[JobResult]:
    """One real torchrun job; ``per_rank`` and ``wrapped`` say how crashsight watches it.

    With both, one job gives both answers (the suite does this to halve its cost): each rank
    under its own ``crashsight run`` and the launcher under another.

    Returns:
        One result per way asked for: ``per-rank`` first, then ``launcher``.
    """
    reports, job_report = workdir / "reports", workdir / "job.json"
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    job_report.unlink(missing_ok=True)
    ranks = [sys.executable, str(WORKER), *_worker_args(scenario)]
    if per_rank:
        report = str(reports / "rank{rank}.json")
        ranks = [_bin("crashsight"), "run", "--grace", "2", "--report", report, "--", *ranks]
    argv = _torchrun("--no-python", *ranks)
    if wrapped:
        argv = [_bin("crashsight"), "run", "--report", str(job_report), "--", *argv]
    started = time.monotonic()
    job = _run(argv, workdir)
    seconds = time.monotonic() - started
    pick = torchrun_pick(job.stderr)
    results = []
    if per_rank:
        files = sorted(str(p) for p in reports.glob("*.json"))
        done = subprocess.run(
            [_bin("crashsight"), "aggregate", "--format", "json", *files],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        root = json.loads(done.stdout).get("root_cause") or {}
        results.append(
            JobResult(
                mode="per-rank",
                scenario=scenario,
                rank=root.get("rank"),
                category=root.get("category"),
                subcategory=root.get("subcategory"),
                summary=str(root.get("summary", done.stdout[:300])),
                torchrun_rank=pick,
                seconds=seconds,
            )
        )
    if wrapped:
        data = json.loads(job_report.read_text())
        results.append(
            JobResult(
                mode="launcher",
                scenario=scenario,
                rank=data.get("root_cause_rank"),
                category=data.get("category"),
                subcategory=data.get("subcategory"),
                summary=str(data.get("summary")),
                torchrun_rank=pick,
                seconds=seconds,
            )
        )
    return results


async def run_group(scenario: str) -> JobResult:
    """The library: `Supervisor.spawn_group` runs the three ranks itself, no torchrun."""
    started = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    async with Supervisor(output="discard", stop_policy=StopPolicy(grace=2.0)) as supervisor:
        group = await supervisor.spawn_group(
            f"{WORKER}:main",
            *_worker_args(scenario),
            world_size=WORLD_SIZE,
            peer_grace=PG_TIMEOUT_S,
            env=env,
            deadline=JOB_DEADLINE_S,
        )
        outcome = await group.wait()
    root = outcome.root_cause
    return JobResult(
        mode="group",
        scenario=scenario,
        rank=outcome.root_cause_rank,
        category=root.category if root else None,
        subcategory=root.subcategory if root else None,
        summary=outcome.summary,
        torchrun_rank=None,
        seconds=time.monotonic() - started,
    )
