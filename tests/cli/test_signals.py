"""`crashsight run` under signals: forwarded gracefully, reported as cancelled, never orphaning."""

from __future__ import annotations

import array
import fcntl
import json
import os
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from crashsight.runner.stackdump import STACKS_DIR_ENV
from crashsight.supervisor import guardian as guardian_module

WORKER = "import time, sys; print('ready', flush=True); time.sleep(60)"
HARNESS = Path(__file__).with_name("orphan_harness.py")


@contextmanager
def crashsight_run(*args: str) -> Iterator[tuple[subprocess.Popen[str], psutil.Process]]:
    """Start `crashsight run ... -- python -c WORKER` and yield it once the worker is running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crashsight", "run", *args, "--", sys.executable, "-c", WORKER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", "the worker's output passes through"
        yield proc, _worker_of(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _worker_of(pid: int) -> psutil.Process:
    """The `WORKER` process under crashsight ``pid``, told from the guardian by its command line.

    crashsight's children are its guardian (``python -S .../guardian.py``) and the worker; which
    one has the lower pid says nothing about which is which.
    """
    [worker] = [
        p
        for p in psutil.Process(pid).children(recursive=True)
        if p.cmdline()[-2:] == ["-c", WORKER]
    ]
    return worker


def _guardian_of(pid: int) -> psutil.Process:
    """crashsight ``pid``'s guardian process, by the file it runs."""
    [guardian] = [
        p for p in psutil.Process(pid).children() if p.cmdline()[-1:] == [guardian_module.__file__]
    ]
    return guardian


def _wait_for_children(parent: psutil.Process, names: set[str]) -> list[psutil.Process]:
    """The parent and its descendants, once processes with all of ``names`` exist (bounded)."""
    deadline = time.monotonic() + 10
    while True:
        found = [parent, *parent.children(recursive=True)]
        if names <= {p.name() for p in found} or time.monotonic() > deadline:
            assert names <= {p.name() for p in found}
            return found
        time.sleep(0.02)


def _gone(proc: psutil.Process, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("sig", "code"),
    [
        pytest.param(signal.SIGTERM, 143, id="sigterm"),
        pytest.param(signal.SIGINT, 130, id="sigint"),
    ],
)
def test_signal_stops_worker_and_reports_cancelled(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """SIGTERM/SIGINT to crashsight stop the worker with the grace policy; status `cancelled`."""
    report = tmp_path / "r.json"
    with crashsight_run("--report", str(report), "--grace", "2") as (proc, worker):
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == code
        assert _gone(worker, within=2)
    data = json.loads(report.read_text())
    assert data["status"] == "cancelled"
    assert data["category"] is None, "the worker is not blamed for a signal it was sent"
    assert data["signals_sent"] == ["SIGTERM"]
    assert sig.name in data["summary"]


def test_sigkill_of_crashsight_takes_the_worker_down(tmp_path: Path) -> None:
    """If crashsight itself is SIGKILLed, its worker does not live on as an orphan, and its
    guardian, its job done, removes the worker's stack-dump folder and exits too."""
    with crashsight_run() as (proc, worker):
        guardian = _guardian_of(proc.pid)
        assert worker.pid != guardian.pid
        folder = Path(worker.environ()[STACKS_DIR_ENV])
        assert folder.is_dir()
        proc.kill()
        proc.wait(timeout=10)
        assert _gone(worker, within=10)
        assert _gone(guardian, within=10)
    assert not folder.exists(), "a SIGKILLed supervisor leaves no folder in the temporary folder"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG and subreapers are Linux's")
@pytest.mark.parametrize(
    ("mechanism", "death"),
    [
        # The exec shim's PR_SET_PDEATHSIG: the kernel's SIGKILL, for a program that is not Python.
        pytest.param("pdeathsig", "SIGKILL", id="pr-set-pdeathsig"),
        # The bootstrap's lifeline watch: SIGTERM to its own group, the worker's child included.
        pytest.param("watch", "SIGTERM", id="lifeline-watch"),
        # The same after the program closed every descriptor behind crashsight's back...
        pytest.param("watch-after-close", "SIGTERM", id="lifeline-watch-after-closerange"),
        # ... or put a file of its own on every number.
        pytest.param("watch-after-reuse", "SIGTERM", id="lifeline-watch-after-dup2"),
        # The same check at the exit of a worker that ended before the watch thread could run.
        pytest.param("watch-at-exit", "SIGTERM", id="lifeline-watch-at-exit"),
        # The guardian: SIGKILL to every group still listed when its pipe reaches end-of-file.
        pytest.param("guardian", "SIGKILL", id="guardian"),
    ],
)
def test_each_orphan_protection_works_alone(mechanism: str, death: str) -> None:
    """Each mechanism alone ends the worker of a SIGKILLed supervisor, with its own signal.

    A stand-in supervisor built from crashsight's spawn() and Guardian has only ``mechanism``
    (see tests/cli/orphan_harness.py); the harness above it reaps the orphans and reports how they
    died, which tells the mechanisms apart.
    """
    harness = subprocess.Popen(
        [sys.executable, str(HARNESS), mechanism], stdout=subprocess.PIPE, text=True
    )
    try:
        assert harness.stdout is not None
        started = json.loads(harness.stdout.readline())
        os.kill(started["supervisor"], signal.SIGKILL)
        out, _ = harness.communicate(timeout=30)  # within the test's own time limit
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.communicate()
    deaths = {record["pid"]: record.get("signal", record.get("code")) for record in map(
        json.loads, out.splitlines()
    )}  # fmt: skip
    assert deaths[started["supervisor"]] == "SIGKILL"
    assert deaths[started["worker"]] == death
    assert all(deaths[pid] == death for pid in started["group"])


def test_signal_after_the_worker_ended_keeps_its_real_outcome(tmp_path: Path) -> None:
    """A SIGINT while crashsight drains a finished worker's output does not rewrite its failure."""
    report = tmp_path / "r.json"
    # bash exits at once; its background child says so once crashsight has reaped bash (kill -0
    # fails only then: a zombie still answers it), and holds the output open.
    script = "(while kill -0 $$ 2>/dev/null; do sleep 0.01; done; echo ended; sleep 30) & exit 3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "crashsight", "run", "--report", str(report),
         "--", "bash", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ended\n"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3, stderr
    data = json.loads(report.read_text())
    assert data["status"] == "failed"
    assert data["exit"]["code"] == 3


@pytest.fixture(scope="module")
def stalled_readers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, Any]]:
    """Two `crashsight run ... -- yes` whose stdout nobody reads, run at the same time: one ended
    by its --timeout, one by a SIGTERM sent once its output pipe is full. Name -> (exit status,
    report). Each waits out the bounded stages crashsight gives a reader that takes nothing (about
    8 s), so the suite pays them once."""
    folder = tmp_path_factory.mktemp("stalled")
    commands = {
        "deadline": ["--timeout", "1", "--grace", "1", "--report", str(folder / "deadline.json")],
        "sigterm": ["--grace", "1", "--report", str(folder / "sigterm.json")],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    workers: list[psutil.Process] = []
    try:
        for name, args in commands.items():
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "crashsight", "run", *args, "--", "yes"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        stdout = procs["sigterm"].stdout
        assert stdout is not None
        _wait_until_full(stdout.fileno())  # crashsight now blocks on its writes
        workers = [w for proc in procs.values() for w in _descendants(proc.pid)]
        procs["sigterm"].send_signal(signal.SIGTERM)
        # Nobody reads either stdout until both have ended.
        codes = {name: proc.wait(timeout=30) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        # A module fixture runs before the suite's per-test leak check takes its baseline, so
        # the check is made here: crashsight must have taken its workers down with it.
        left = [w for w in workers if not _gone(w, within=5)]
        for worker in left:
            worker.kill()
    assert not left, f"left behind: {left}"
    return {
        name: (codes[name], json.loads((folder / f"{name}.json").read_text())) for name in procs
    }


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_a_stalled_reader_does_not_stall_the_deadline(
    stalled_readers: dict[str, tuple[int, Any]],
) -> None:
    """With crashsight's stdout not being read at all, --timeout still fires on time."""
    code, data = stalled_readers["deadline"]
    assert code == 124
    assert data["timeout"] == "deadline"
    # `yes` never ends by itself: any duration short of the 30 s wait means the deadline fired
    # while nobody read; the margin is for a loaded machine, not a measurement.
    assert data["duration_s"] < 20


def test_a_stalled_reader_does_not_stall_sigterm_handling(
    stalled_readers: dict[str, tuple[int, Any]],
) -> None:
    """With crashsight's stdout full and never read, SIGTERM still stops the worker gracefully:
    exit 143, status cancelled, the worker not blamed."""
    code, data = stalled_readers["sigterm"]
    assert code == 143
    assert data["status"] == "cancelled"
    assert data["category"] is None
    assert data["signals_sent"] == ["SIGTERM"]


def _wait_until_full(read_fd: int) -> None:
    """Wait (bounded) until the pipe behind ``read_fd`` holds as much as it can."""
    capacity = fcntl.fcntl(read_fd, fcntl.F_GETPIPE_SZ) if sys.platform == "linux" else 65536
    buffered = array.array("i", [0])
    deadline = time.monotonic() + 30
    while True:
        fcntl.ioctl(read_fd, termios.FIONREAD, buffered)
        if buffered[0] >= capacity:
            return
        assert time.monotonic() < deadline, f"the pipe holds only {buffered[0]} bytes"
        time.sleep(0.02)


def test_sigkill_of_crashsight_takes_a_shell_workers_children_down() -> None:
    """SIGKILL of crashsight also ends the children of a shell worker (its whole process group)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crashsight", "run", "--",
         "bash", "-c", "echo ready; sleep 41 | cat; echo done"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        [shell] = [p for p in psutil.Process(proc.pid).children() if p.name() == "bash"]
        descendants = _wait_for_children(shell, {"sleep", "cat"})
        proc.kill()
        proc.wait(timeout=10)
        assert all(_gone(p, within=2) for p in descendants)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
