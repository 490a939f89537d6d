"""Runners forked from the zygote get a cold runner's cgroup guarantees, however they get there.

Where the kernel allows it (Linux 5.7), the zygote forks each runner straight into its groups
(`crashsight.runner.cgroupfork`); where it does not (an older kernel, a seccomp profile without
clone3), the child waits at the start gate until the supervisor has moved it, as a cold runner
does. Both ways are tried here against the real kernel, the second under a real seccomp filter.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path

import anyio
import psutil
import pytest

from crashsight import Supervisor
from crashsight.errors import SpawnError
from crashsight.supervisor.cgroup import CgroupHost, RunnerCgroup
from crashsight.supervisor.forkserver import ForkedProcess, ForkServer
from crashsight.testing.assertions import verdict_of

#: A runner target that says which cgroups it is in, then fails with a code of its own.
CGROUP_PROBE = (
    "import sys\n\n"
    "def main():\n"
    "    print(open('/proc/self/cgroup').read(), file=sys.stderr)\n"
    "    raise SystemExit(3)\n"
)

#: Installs a seccomp filter that answers clone3, and only clone3, with the errno given: what an
#: older Docker profile did (EPERM before 20.10.10, ENOSYS since; glibc falls back to clone for
#: its threads on ENOSYS), or a process limit would (EAGAIN).
FORBID_CLONE3 = """
import ctypes, struct

def forbid_clone3(errno_value):
    load_nr, jump_eq, ret = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET
    program = [(load_nr, 0, 0, 0), (jump_eq, 0, 1, 435), (ret, 0, 0, 0x00050000 | errno_value),
               (ret, 0, 0, 0x7FFF0000)]  # clone3 -> SECCOMP_RET_ERRNO | errno, else allow
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))
    fprog = struct.pack("HxxxxxxP", len(program), ctypes.addressof(code))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, fprog, 0, 0):  # NO_NEW_PRIVS, SECCOMP
        raise OSError(ctypes.get_errno(), "cannot install the seccomp filter")
"""

#: Runs two forked probes with clone3 answered by ENOSYS, and prints what each probe reported
#: and whether the fork server still clones into cgroups.
UNDER_SECCOMP = (
    FORBID_CLONE3
    + """
import json, sys
import anyio
from crashsight import Supervisor

async def main():
    seen = []
    async with Supervisor(output="discard", cgroup="required", preload=["json"]) as supervisor:
        for _ in range(2):
            status = await (await supervisor.spawn(sys.argv[1])).wait()
            seen.append({"code": status.exit.code, "cgroup": status.containment.cgroup,
                         "tail": status.stderr_tail})
        clones = supervisor._forkserver._clones_into_cgroups
    print(json.dumps({"seen": seen, "clones": clones}))

forbid_clone3(38)
anyio.run(main)
"""
)


def _in_groups(tail: list[str], cgroup: str | None, host: CgroupHost) -> None:
    """The probe's ``/proc/self/cgroup`` names the runner's v2 group and each v1 group."""
    assert cgroup is not None
    name = Path(cgroup).name
    lines = {line.split(":", 2)[1]: line for line in tail if line.count(":") >= 2}
    assert lines[""].endswith(f"/{name}"), lines
    for controller in host.v1_bases:
        assert lines[controller].endswith(f"/{name}"), lines


def _fork_into(server: ForkServer, args: list[str], cgroup: RunnerCgroup) -> ForkedProcess:
    """Fork a runner of ``args`` from ``server`` into ``cgroup``, with a fresh id."""
    return server.spawn(
        args,
        runner_id=uuid.uuid4().hex,
        env=None,
        cwd=None,
        max_frame_bytes=1 << 20,
        inherit_stdin=False,
        cgroup=cgroup,
    )


def _groups_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


@pytest.mark.asyncio
async def test_a_forked_worker_runs_inside_its_cgroups_from_its_first_line(
    cgroup_host: CgroupHost, tmp_path: Path
) -> None:
    """Born in its v2 group and its v1 groups; the zygote it was forked from stays in its own."""
    probe = tmp_path / "cgroup_probe.py"
    probe.write_text(CGROUP_PROBE)
    async with Supervisor(output="discard", cgroup="required", preload=["json"]) as supervisor:
        server = supervisor._forkserver
        assert server is not None
        assert server._zygote is not None
        runner = await supervisor.spawn(f"{probe}:main")
        status = await runner.wait()
        assert _groups_of(server._zygote.proc.pid) == _groups_of(os.getpid())
        assert server._clones_into_cgroups, "this kernel clones into cgroups (Linux 5.7+)"
    assert status.exit.code == 3
    assert status.containment is not None
    assert status.containment.method == "cgroup"
    _in_groups(status.stderr_tail, status.containment.cgroup, cgroup_host)
    assert status.containment.cgroup is not None
    assert not await anyio.Path(status.containment.cgroup).exists()


def test_without_clone3_the_forked_worker_is_moved_before_it_runs(
    cgroup_host: CgroupHost, tmp_path: Path
) -> None:
    """Under a seccomp profile without clone3 the zygote says so once; from then on its children
    wait at the start gate until they are moved, and still run in their groups from the start."""
    probe = tmp_path / "cgroup_probe.py"
    probe.write_text(CGROUP_PROBE)
    done = subprocess.run(
        [sys.executable, "-c", UNDER_SECCOMP, f"{probe}:main"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["clones"] is False
    assert len(result["seen"]) == 2
    for seen in result["seen"]:
        assert seen["code"] == 3
        _in_groups(seen["tail"], seen["cgroup"], cgroup_host)


@pytest.mark.asyncio
@pytest.mark.parametrize("required", [True, False], ids=["required", "auto"])
async def test_a_refused_group_of_a_forked_runner(
    refusing_cgroup: RunnerCgroup, tmp_path: Path, required: bool
) -> None:
    """The kernel refuses the group: ``required`` makes no child at all (its target never runs),
    ``auto`` lets it run without containment and says why."""
    refusing_cgroup.host = dataclasses.replace(refusing_cgroup.host, required=required)
    marker = tmp_path / "ran"
    toucher = tmp_path / "toucher.py"
    toucher.write_text("import sys\n\ndef main():\n    open(sys.argv[1], 'w').close()\n")
    async with ForkServer(["json"]) as server:
        start = partial(_fork_into, server, [f"{toucher}:main", str(marker)], refusing_cgroup)
        if required:
            with pytest.raises(SpawnError, match="could not move the runner into its cgroup"):
                start()
            [zygote] = [
                child
                for child in psutil.Process().children()
                if "crashsight.runner.zygote" in child.cmdline()
            ]
            _, alive = psutil.wait_procs(zygote.children(), timeout=30)
            assert not alive
            assert not marker.exists(), "the refused runner never ran"
            return
        proc = start()
        result = await server.wait(proc.pid)
        proc.ends.channel.close()
        proc.ends.lifeline.close()
        for fd in (proc.ends.stdout_fd, proc.ends.stderr_fd):
            os.close(fd)
    assert os.waitstatus_to_exitcode(result.status) == 0
    assert marker.exists()
    assert refusing_cgroup.join_error is not None
    assert "No such file or directory" in refusing_cgroup.join_error


@pytest.mark.asyncio
@pytest.mark.parametrize("preload", [[], ["json"]], ids=["cold", "forked"])
async def test_a_pids_limit_of_one_ends_a_forked_runner_as_a_cold_one(
    cgroup_host: CgroupHost, preload: list[str]
) -> None:
    """Where pids is a v1 controller, the zygote's thread sits in the runner's pids group while
    it forks; a limit of one would refuse the child there. Such a runner is moved instead, and
    ends as a cold one does: in its groups, refused its first thread."""
    async with Supervisor(output="discard", pids_max=1, preload=preload) as supervisor:
        status = await (await supervisor.spawn("os:getpid")).wait()
    assert status.containment is not None
    assert status.containment.method == "cgroup"
    assert verdict_of(status) == "resource/pids_max"


@pytest.mark.asyncio
async def test_a_forked_runner_is_held_to_its_memory_limit(
    cgroup_host: CgroupHost, tmp_path: Path
) -> None:
    """Born in its memory group (v2, or v1 through the zygote's thread), a forked runner that
    hoards memory is OOM-killed under its own limit, and the kill is counted as its own."""
    (tmp_path / "hog.py").write_text(
        "def main():\n    hoard = []\n    while True:\n        hoard.append(b'1' * (16 << 20))\n"
    )
    async with Supervisor(output="discard", memory_max=96 << 20, preload=["json"]) as supervisor:
        status = await (await supervisor.spawn(f"{tmp_path / 'hog.py'}:main")).wait()
    assert verdict_of(status) == "memory/oom_killed"
    assert status.containment is not None
    assert status.containment.oom_kills == 1


@pytest.mark.asyncio
async def test_a_tiny_memory_limit_kills_the_runner_not_the_zygote(cgroup_host: CgroupHost) -> None:
    """A limit below what a fork costs the kernel: the runner is OOM-killed as a cold one is,
    and the zygote, whose thread would otherwise fork inside a v1 memory group, lives on."""
    async with Supervisor(output="discard", memory_max=256 << 10, preload=["json"]) as supervisor:
        status = await (await supervisor.spawn("os:getpid")).wait()
        server = supervisor._forkserver
        assert server is not None
        assert server.starts == 1, "the zygote was not killed"
    assert status.exit.signal == "SIGKILL"
    assert status.containment is not None
    assert status.containment.oom_kills == 1


@pytest.mark.asyncio
async def test_a_fork_that_fails_for_want_of_a_process_is_a_spawn_error(
    runner_cgroup: RunnerCgroup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """clone3 failing with EAGAIN (a process limit, not the group) makes no runner and says the
    fork failed; it is not taken for a refused group, which would start the runner uncontained."""
    (tmp_path / "eagain_clone3.py").write_text(FORBID_CLONE3 + "\nforbid_clone3(11)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    async with ForkServer(["eagain_clone3"]) as server:
        with pytest.raises(SpawnError, match="fork failed: Resource temporarily unavailable"):
            _fork_into(server, ["os:getpid"], runner_cgroup)
        assert server.starts == 1
        assert server._zygote is not None
        assert server._zygote.alive
    assert runner_cgroup.join_error is None
