"""A cgroup per runner: detection and its fallbacks, exact OOM evidence, limits, the kill paths.

Everything runs against the real kernel: real groups under this process's own, real OOM kills
under a small memory limit, a real freezer. Every group a test makes is named after a fresh
runner id (or a uuid) and removed by the code under test or the test's teardown.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

import crashsight
from crashsight import RunnerFailed, RunnerSucceeded, Supervisor
from crashsight.diagnostics import oom
from crashsight.diagnostics.oom import OomCounters, read_oom_counters
from crashsight.errors import ConfigurationError, SpawnError
from crashsight.supervisor import cgroupfs, verdict
from crashsight.supervisor.cgroup import CgroupHost, CgroupLimits, RunnerCgroup, detect_host
from crashsight.supervisor.spawn import SpawnedProcess, spawn
from crashsight.supervisor.status import Containment

#: Touches every page it allocates, 16 MiB at a time, until the kernel stops it.
HOG = "hoard = []\nwhile True:\n    hoard.append(b'\\x01' * (16 << 20))"
#: A parent that outlives its OOM-killed child (a DataLoader worker, a compiler) and then fails.
PARENT_OF_HOG = (
    "import subprocess, sys\n"
    f"child = subprocess.run([sys.executable, '-c', {HOG!r}])\n"
    "print('child ended with', child.returncode, file=sys.stderr)\n"
    "sys.exit(1)"
)
_LIMIT = 96 << 20


def _containment(status: object) -> Containment:
    containment = getattr(status, "containment", None)
    assert isinstance(containment, Containment), status
    return containment


# --- Detection and the fallback to process groups ----------------------------------------------


def test_a_missing_cgroup_filesystem_means_process_groups(tmp_path: Path) -> None:
    """No cgroup mount at the root: process groups, and the reason names where it looked."""
    host = detect_host("auto", root=tmp_path / "nowhere")
    assert host.v2_base is None
    assert host.v1_bases == {}
    assert "no cgroup v2 hierarchy at" in host.reason
    assert host.create("crashsight-never") is None


def test_a_folder_that_is_not_a_cgroup_filesystem_is_refused(tmp_path: Path) -> None:
    """A writable folder that only looks like a v2 mount is not taken for one."""
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    host = detect_host("auto", root=tmp_path)
    assert host.v2_base is None
    assert "is not a cgroup filesystem" in host.reason
    assert [path.name for path in tmp_path.iterdir()] == ["cgroup.controllers"], "probe removed"


def test_required_and_limits_fail_clearly_without_cgroups(tmp_path: Path) -> None:
    """``required``, or a limit, where no cgroup can be made is a ConfigurationError at start."""
    with pytest.raises(ConfigurationError, match="required but is not possible here: no cgroup"):
        detect_host("required", root=tmp_path)
    with pytest.raises(ConfigurationError, match="a memory limit needs a writable memory cgroup"):
        detect_host("auto", CgroupLimits(memory_max=_LIMIT), root=tmp_path)
    with pytest.raises(ConfigurationError, match="a pids limit needs a writable pids cgroup"):
        detect_host("off", CgroupLimits(pids_max=10))
    with pytest.raises(ConfigurationError, match="pids_max must be a positive number"):
        CgroupLimits(pids_max=0)


def _python_for_nobody() -> list[str]:
    """A command line that runs this crashsight under an interpreter ``nobody`` may execute."""
    system = Path("/usr/bin/python3")
    if os.geteuid() != 0 or not system.exists():
        pytest.skip("needs root and /usr/bin/python3 to run crashsight as another user")
    version = subprocess.run(
        [str(system), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip(f"/usr/bin/python3 is {version}, the test interpreter {sys.version_info[:2]}")
    return [str(system), "-m", "crashsight"]


def test_an_unprivileged_user_runs_as_before_with_a_reason(tmp_path: Path) -> None:
    """As ``nobody``, who may not write the host's cgroups, ``crashsight run`` works as before.

    The run falls back to process groups, keeps the command's exit status, and the report says
    why the runner got no cgroup.
    """
    command = _python_for_nobody()
    shared = Path(tempfile.mkdtemp(prefix="crashsight-nobody-"))
    try:
        shared.chmod(0o777)
        report = shared / "r.json"
        paths = [str(Path(anyio.__file__).parents[1]), str(Path(crashsight.__file__).parents[1])]
        done = subprocess.run(
            [*command, "run", "--report", str(report), "--", "sh", "-c", "exit 3"],
            user=65534,
            group=65534,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
            cwd=shared,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 3, done.stderr
        containment = json.loads(report.read_text())["containment"]
    finally:
        shutil.rmtree(shared)
    assert containment["method"] == "process_group"
    assert "cannot create a cgroup under" in containment["reason"], containment


@pytest.mark.asyncio
async def test_without_cgroups_runs_exactly_as_before(tmp_path: Path) -> None:
    """An unwritable cgroup root: the runner runs, its leftovers are swept, the report says why."""
    argv = ["bash", "-c", "sleep 30 & echo started; exit 4"]
    async with Supervisor(output="discard", cgroup_root=tmp_path / "none") as supervisor:
        runner = await supervisor.spawn_command(argv)
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.exit.code == 4
    assert status.leftovers_killed == 1
    containment = _containment(status)
    assert containment.method == "process_group"
    assert "no cgroup v2 hierarchy at" in containment.reason
    assert containment.oom_kills is None


# --- A runner's own cgroup -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_worker_runs_inside_its_cgroup_from_its_first_line(
    cgroup_host: CgroupHost,
) -> None:
    """The command's own first action already sees the runner's cgroup as its own."""
    code = "import sys; print(open('/proc/self/cgroup').read(), file=sys.stderr); sys.exit(3)"
    async with Supervisor(output="discard", cgroup="required") as supervisor:
        runner = await supervisor.spawn_command([sys.executable, "-c", code])
        status = await runner.wait()
    containment = _containment(status)
    assert containment.cgroup is not None
    name = Path(containment.cgroup).name
    assert name == f"crashsight-{status.runner_id}-1"
    assert any(line.startswith("0::") and line.endswith(name) for line in status.stderr_tail)
    assert containment.method == "cgroup"
    assert containment.reason == cgroup_host.reason
    assert containment.peak_memory_bytes is None or containment.peak_memory_bytes > 0
    assert not await anyio.Path(containment.cgroup).exists()


@pytest.mark.asyncio
async def test_an_oom_kill_is_attributed_to_its_own_runner_only(cgroup_host: CgroupHost) -> None:
    """A real OOM kill under memory_max counts for that runner, not for a sibling SIGKILLed at once.

    Both runners share the supervisor's memory cgroup, which counts the OOM kill too: evidence
    read there would blame the sibling's SIGKILL on the OOM killer.
    """
    if not cgroup_host.v1_bases.get("memory") and "memory" not in cgroup_host.v2_controllers:
        pytest.skip("no memory cgroup for runners here")
    sibling = "import os, signal, sys; sys.stdin.read(); os.kill(os.getpid(), signal.SIGKILL)"
    async with Supervisor(output="discard", memory_max=_LIMIT) as supervisor:
        hog = await supervisor.spawn_command([sys.executable, "-c", HOG])
        other = await supervisor.spawn_command([sys.executable, "-c", sibling])
        hog_status = await hog.wait()
        await other.stop("the test ends it")
        other_status = await other.wait()
    assert isinstance(hog_status, RunnerFailed)
    assert (hog_status.category, hog_status.subcategory) == ("memory", "oom_killed")
    assert hog_status.exit.signal == "SIGKILL"
    containment = _containment(hog_status)
    assert containment.oom_kills is not None
    assert containment.oom_kills >= 1
    assert containment.memory_cgroup is not None
    assert hog_status.runner_id in containment.memory_cgroup, "its own group, not a shared one"
    assert containment.memory_max_bytes == _LIMIT
    assert containment.peak_memory_bytes is not None
    assert _LIMIT // 2 < containment.peak_memory_bytes <= _LIMIT
    assert _containment(other_status).oom_kills == 0


@pytest.mark.asyncio
async def test_a_child_killed_by_the_oom_killer_explains_its_parents_failure(
    cgroup_host: CgroupHost,
) -> None:
    """A process of the tree OOM-killed inside the runner's group makes its exit 1 memory/oom_killed."""
    if not cgroup_host.v1_bases.get("memory") and "memory" not in cgroup_host.v2_controllers:
        pytest.skip("no memory cgroup for runners here")
    async with Supervisor(output="discard", memory_max=_LIMIT) as supervisor:
        runner = await supervisor.spawn_command([sys.executable, "-c", PARENT_OF_HOG])
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.exit.code == 1
    assert (status.category, status.subcategory) == ("memory", "oom_killed")
    assert status.oom_killed is True
    assert "child ended with -9" in status.stderr_tail
    assert status.summary == (
        "memory/oom_killed: the kernel OOM killer killed 1 process of the runner's tree "
        "under its 96 MiB limit"
    )
    assert any("OOM killer killed 1 process in the runner" in note for note in status.notes)


@pytest.mark.asyncio
async def test_a_success_keeps_zero_oom_kills_and_its_peak(cgroup_host: CgroupHost) -> None:
    """A clean run reports exact zeros, not "could not tell"."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn_command([sys.executable, "-c", "pass"])
        status = await runner.wait()
    assert isinstance(status, RunnerSucceeded)
    containment = _containment(status)
    if containment.memory_cgroup is not None:
        assert containment.oom_kills == 0
        assert containment.peak_memory_bytes is not None
        assert containment.peak_memory_bytes > 0


# --- Killing without cgroup.kill -----------------------------------------------------------------


def test_freeze_and_kill_works_where_cgroup_kill_does_not_exist(
    runner_cgroup: RunnerCgroup,
) -> None:
    """The pre-5.14 path: freeze the group, SIGKILL each member, thaw; daemons included."""
    # bash waits for a line before it forks, so everything it starts is born in the group.
    script = "read _; setsid sleep 300 & setsid sleep 300 & echo ready; exec sleep 300"
    with subprocess.Popen(
        ["bash", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        runner_cgroup.join(proc.pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "ready\n"
        assert runner_cgroup.v2 is not None
        members = cgroupfs.members(runner_cgroup.v2)
        assert len(members) == 3
        killed = cgroupfs.kill_all(
            runner_cgroup.v2, list(runner_cgroup.v1.values()), kill_file=False, within=5.0
        )
        proc.wait(timeout=10)
    assert members <= killed
    assert cgroupfs.members(runner_cgroup.v2) == set()
    assert "frozen 0" in (runner_cgroup.v2 / "cgroup.events").read_text(), "thawed again"
    for pid in members:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_process_in_a_sub_group_of_its_own_is_still_killed(runner_cgroup: RunnerCgroup) -> None:
    """The kill reads ``populated`` of the runner's group first: it must count sub-groups."""
    assert runner_cgroup.v2 is not None
    assert cgroupfs.kill_all(runner_cgroup.v2, [], kill_file=True, within=5.0) == set()
    nested = runner_cgroup.v2 / "worker-made"
    nested.mkdir()
    with subprocess.Popen(["sleep", "300"]) as proc:
        (nested / "cgroup.procs").write_text(str(proc.pid))
        assert "populated 1" in (runner_cgroup.v2 / "cgroup.events").read_text()
        killed = cgroupfs.kill_all(runner_cgroup.v2, [], kill_file=True, within=5.0)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    assert killed == {proc.pid}


# --- The start gate when the kernel refuses the move ---------------------------------------------


def _spawn_into(cgroup: RunnerCgroup, marker: Path) -> SpawnedProcess:
    return spawn(
        ["touch", str(marker)],
        runner_id=uuid.uuid4().hex,
        env=None,
        cwd=None,
        max_frame_bytes=1 << 20,
        inherit_stdin=False,
        cgroup=cgroup,
    )


def _close(proc: SpawnedProcess) -> int:
    status = proc.popen.wait(timeout=60)
    proc.ends.channel.close()
    proc.ends.lifeline.close()
    for fd in (proc.ends.stdout_fd, proc.ends.stderr_fd):
        os.close(fd)
    return status


def test_a_refused_move_keeps_a_required_runner_from_running(
    refusing_cgroup: RunnerCgroup, tmp_path: Path
) -> None:
    """``required``: a refused move is a SpawnError, and the gated command never runs."""
    refusing_cgroup.host = dataclasses.replace(refusing_cgroup.host, required=True)
    marker = tmp_path / "ran"
    with pytest.raises(SpawnError, match="could not move the runner into its cgroup"):
        _spawn_into(refusing_cgroup, marker)
    assert not marker.exists()


def test_a_refused_move_falls_back_with_the_reason(
    refusing_cgroup: RunnerCgroup, tmp_path: Path
) -> None:
    """``auto``: the command runs anyway, and the cgroup says why it holds nothing."""
    marker = tmp_path / "ran"
    proc = _spawn_into(refusing_cgroup, marker)
    assert _close(proc) == 0
    assert marker.exists()
    assert refusing_cgroup.join_error is not None
    assert "No such file or directory" in refusing_cgroup.join_error
    assert not refusing_cgroup.contains


# --- Without a cgroup of its own: OOM evidence from the shared one ------------------------------


@pytest.mark.asyncio
async def test_a_runner_without_a_cgroup_is_counted_in_the_supervisors_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The OOM baseline of a runner in a shared cgroup is that cgroup's, even when the runner has
    died before its supervision began (a dead process's /proc entry names the root cgroup, whose
    v1 subtree is the whole host)."""
    own = read_oom_counters()
    if own is None:
        pytest.skip("no readable memory cgroup counters here")
    read: list[str] = []
    real_read = oom.read_cgroup_oom_counters

    def recording(cgroup: str, **kwargs: Any) -> OomCounters | None:
        read.append(cgroup)
        return real_read(cgroup, **kwargs)

    monkeypatch.setattr(verdict, "read_cgroup_oom_counters", recording)  # as verdict calls it
    async with Supervisor(output="discard", cgroup="off") as supervisor:
        runner = await supervisor.spawn_command(["sh", "-c", "kill -9 $$"])
        # Hold the loop until the runner is dead, so its supervision starts after its death.
        deadline = time.monotonic() + 30
        while psutil.Process(runner.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.01)  # noqa: ASYNC251 - blocking the loop is the point
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.exit.signal == "SIGKILL"
    assert read == [own.cgroup]
    assert status.oom_killed is False
