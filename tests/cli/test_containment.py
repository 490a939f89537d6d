"""`crashsight run` containment: cgroup options, a SIGKILLed crashsight, a nested crashsight run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from crashsight.supervisor.cgroup import CGROUP_ROOT, CgroupHost

ESCAPE = Path(__file__).parents[1] / "escape_workers.py"
CRASHSIGHT = [sys.executable, "-m", "crashsight"]
#: Bound on every wait in this file (never reached when things work).
_WITHIN_S = 30.0


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _WITHIN_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


@pytest.fixture
def pidfile(tmp_path: Path) -> Iterator[Path]:
    """Where an escape worker writes its escapees; any still alive at teardown is killed."""
    path = tmp_path / "escapees"
    yield path
    for pid in map(int, path.read_text().split() if path.exists() else []):
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            ["--cgroup", "off", "--pids-max", "10"],
            "a pids limit needs a writable pids cgroup",
            id="limit-without-cgroup",
        ),
        pytest.param(
            ["--memory-max", "lots"], "'lots' is not a size such as 512M or 2G", id="bad-size"
        ),
    ],
)
def test_limits_that_cannot_hold_are_a_clear_error(options: list[str], message: str) -> None:
    """A limit that cannot be enforced, or read, is refused before anything starts (exit 2)."""
    done = subprocess.run(
        [*CRASHSIGHT, "run", *options, "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_sigkill_of_crashsight_kills_the_cgroup_and_removes_it(
    pidfile: Path, cgroup_host: CgroupHost
) -> None:
    """The guardian ends a scrubbed daemon (which PDEATHSIG and groups miss) and removes its groups."""
    argv = [sys.executable, str(ESCAPE), "double_fork_scrubbed", str(pidfile), "stay"]
    proc = subprocess.Popen([*CRASHSIGHT, "run", "--", *argv], stderr=subprocess.DEVNULL)
    try:
        _until(pidfile.exists, "the daemon reported in")
        [daemon] = map(int, pidfile.read_text().split())
        own = Path(f"/proc/{daemon}/cgroup").read_text().splitlines()
        v2 = next(line.split(":", 2)[2] for line in own if line.startswith("0::"))
        memory = next((line.split(":", 2)[2] for line in own if ":memory:" in line), None)
        folders = [cgroup_host.v2_base / Path(v2).name] if cgroup_host.v2_base else []
        if "memory" in cgroup_host.v1_bases and memory is not None:
            folders.append(CGROUP_ROOT / "memory" / memory.lstrip("/"))
        assert all(folder.is_dir() for folder in folders), folders
    finally:
        proc.kill()
        proc.wait(timeout=_WITHIN_S)
    _until(lambda: not _alive(daemon), "the daemon is gone")
    _until(lambda: not any(folder.exists() for folder in folders), "the cgroups are removed")


def test_a_contained_fork_bomb_names_its_limit(tmp_path: Path, cgroup_host: CgroupHost) -> None:
    """A shell fork bomb under --pids-max: bash's own EAGAIN text, resource/pids_max, nothing left.

    bash retries a refused fork for about half a minute, so the deadline stops it; the verdict
    still names the cause.
    """
    report = tmp_path / "r.json"
    script = "for i in $(seq 40); do sleep 300 & done; wait"
    done = subprocess.run(
        [*CRASHSIGHT, "run", "--pids-max", "8", "--timeout", "3", "--grace", "1",
         "--report", str(report), "--", "bash", "-c", script],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 124, done.stderr
    data = json.loads(report.read_text())
    assert (data["category"], data["subcategory"]) == ("resource", "pids_max")
    assert data["summary"].startswith("resource/pids_max: the pids limit (8) refused ")
    assert "fork: retry: Resource temporarily unavailable" in "\n".join(data["stderr_tail"])
    assert "shell.fork_eagain" in [d["id"] for d in data["diagnostics"]]
    assert data["containment"]["pids_max"] == 8
    assert data["containment"]["pids_limit_hits"] >= 1


def test_a_nested_run_keeps_the_outer_view_of_its_descendants(pidfile: Path) -> None:
    """An inner `crashsight run` SIGKILLed: the outer one still finds and kills its escapee.

    Both use process groups only (``--cgroup off``), so the environment marker is all the outer
    supervisor has: the inner runner's descendants carry the inner id and the outer one among
    their ancestors.
    """
    inner = [*CRASHSIGHT, "run", "--cgroup", "off", "--",
             sys.executable, str(ESCAPE), "session_hopper", str(pidfile), "stay"]  # fmt: skip
    report = pidfile.with_name("outer.json")
    outer = [*CRASHSIGHT, "run", "--cgroup", "off", "--report", str(report), "--", *inner]
    proc = subprocess.Popen(outer, stderr=subprocess.DEVNULL)
    try:
        _until(pidfile.exists, "the session hopper reported in")
        [hopper] = map(int, pidfile.read_text().split())
        environ = psutil.Process(hopper).environ()
        [outer_id] = environ["CRASHSIGHT_ANCESTOR_RUNNERS"].split()
        assert outer_id != environ["CRASHSIGHT_RUNNER_ID"]
        # The outer crashsight's children: the inner one (its runner) and its guardian.
        [inner_crashsight] = [
            child for child in psutil.Process(proc.pid).children() if "run" in child.cmdline()
        ]
        inner_crashsight.kill()
        assert proc.wait(timeout=_WITHIN_S) == 128 + signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not _alive(hopper)
    data = json.loads(report.read_text())
    assert data["leftovers_killed"] >= 1
