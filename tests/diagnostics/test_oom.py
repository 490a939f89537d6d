"""cgroup OOM-kill evidence (v2 and v1): parsing fake proc/sysfs trees, and real kernel OOM kills.

The real kills happen in a memory cgroup of the test's own, created for it and removed after it:
`crashsight run` and its worker start inside it (a shell joins it first and then execs them), so
the counters crashsight reads belong to that group alone, never to a shared parent whose
``oom_kill`` counter other processes read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from crashsight.diagnostics.oom import (
    OomCounters,
    cgroup_path,
    oom_evidence,
    read_cgroup_oom_counters,
    read_oom_counters,
)

V1_AND_V2 = "12:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/system.slice/job.scope\n"
EVENTS = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 1\n"


def fake_host(tmp_path: Path, cgroup_file: str, events: dict[str, str]) -> tuple[Path, Path]:
    """Build /proc/4242/cgroup and memory.events files under tmp_path; return both roots."""
    proc, sysfs = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cgroup").write_text(cgroup_file)
    for relative, text in events.items():
        (sysfs / relative).mkdir(parents=True, exist_ok=True)
        (sysfs / relative / "memory.events").write_text(text)
    return proc, sysfs


def test_reads_the_unified_hierarchy_entry(tmp_path: Path) -> None:
    """The '0::' line gives the cgroup; its memory.events gives both counters."""
    proc, sysfs = fake_host(tmp_path, V1_AND_V2, {"system.slice/job.scope": EVENTS})
    assert cgroup_path(4242, proc_root=proc) == "/system.slice/job.scope"
    counters = read_oom_counters(4242, proc_root=proc, cgroup_root=sysfs)
    assert counters == OomCounters(cgroup="/system.slice/job.scope", oom_kill=2, oom_group_kill=1)


def test_falls_back_to_the_nearest_ancestor_with_memory_events(tmp_path: Path) -> None:
    """Without memory.events in the leaf, the closest ancestor's hierarchical counters are read."""
    proc, sysfs = fake_host(tmp_path, "0::/a/b/c\n", {"a": "oom_kill 7\n"})
    (sysfs / "a" / "b" / "c").mkdir(parents=True)
    assert read_oom_counters(4242, proc_root=proc, cgroup_root=sysfs) == OomCounters(
        cgroup="/a", oom_kill=7
    )


@pytest.mark.parametrize(
    ("cgroup_file", "events"),
    [
        pytest.param("4:memory:/x\n1:cpu:/x\n", {"x": EVENTS}, id="cgroup-v1-only"),
        pytest.param("0::/x\n", {}, id="no-memory-controller"),
        pytest.param("0::/x\n", {"x": "low 0\nhigh 0\n"}, id="no-oom-counter"),
        pytest.param("0::\n", {}, id="empty-path"),
    ],
)
def test_unreadable_counters_are_none(
    tmp_path: Path, cgroup_file: str, events: dict[str, str]
) -> None:
    """Without a v2 cgroup carrying oom_kill the answer is None, never a zero."""
    proc, sysfs = fake_host(tmp_path, cgroup_file, events)
    assert read_oom_counters(4242, proc_root=proc, cgroup_root=sysfs) is None


def test_after_reading_by_cgroup_survives_the_process(tmp_path: Path) -> None:
    """Once /proc/<pid> is gone, the before reading's cgroup still yields the after reading."""
    proc, sysfs = fake_host(tmp_path, "0::/job\n", {"job": "oom_kill 0\n"})
    before = read_oom_counters(4242, proc_root=proc, cgroup_root=sysfs)
    assert before is not None
    (proc / "4242" / "cgroup").unlink()
    (sysfs / "job" / "memory.events").write_text("oom_kill 1\n")
    assert read_oom_counters(4242, proc_root=proc, cgroup_root=sysfs) is None
    after = read_cgroup_oom_counters(before.cgroup, cgroup_root=sysfs)
    assert oom_evidence(before, after) is True


def test_missing_process_is_none(tmp_path: Path) -> None:
    """A pid without a /proc entry (gone, or not Linux) gives None."""
    assert read_oom_counters(999_999_999, proc_root=tmp_path, cgroup_root=tmp_path) is None


def test_cgroup_v1_memory_controller_is_read_when_v2_has_no_counter(tmp_path: Path) -> None:
    """On a v1 or hybrid host the memory controller's memory.oom_control gives oom_kill."""
    proc, sysfs = fake_host(tmp_path, "4:memory:/job/a\n1:cpu:/\n0::/\n", {})
    (sysfs / "memory" / "job").mkdir(parents=True)
    (sysfs / "memory" / "job" / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
    )
    assert cgroup_path(4242, proc_root=proc, hierarchy="v1") == "/job/a"
    before = read_oom_counters(4242, proc_root=proc, cgroup_root=sysfs)
    assert before == OomCounters(cgroup="/job", hierarchy="v1", oom_kill=3)
    (sysfs / "memory" / "job" / "memory.oom_control").write_text("oom_kill 4\n")
    after = read_cgroup_oom_counters("/job", cgroup_root=sysfs, hierarchy="v1")
    assert oom_evidence(before, after) is True
    assert oom_evidence(before, OomCounters(cgroup="/job", oom_kill=4)) is None, "v2 is not v1"


A = OomCounters(cgroup="/a", oom_kill=1, oom_group_kill=0)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(A, A, False, id="unchanged"),
        pytest.param(A, A.model_copy(update={"oom_kill": 2}), True, id="oom-kill"),
        pytest.param(A, A.model_copy(update={"oom_group_kill": 1}), True, id="group-kill"),
        pytest.param(None, A, None, id="before-unknown"),
        pytest.param(A, None, None, id="after-unknown"),
        pytest.param(A, A.model_copy(update={"cgroup": "/b", "oom_kill": 5}), None, id="moved"),
    ],
)
def test_oom_evidence(
    before: OomCounters | None, after: OomCounters | None, expected: bool | None
) -> None:
    """Evidence is True on any increase, False when unchanged, None when either side is unknown."""
    assert oom_evidence(before, after) is expected


#: Marks itself the OOM killer's first choice, then touches memory until the kernel kills it.
_HOARD = (
    "open('/proc/self/oom_score_adj', 'w').write('1000')\n"
    "hoard = []\n"
    "while True:\n"
    "    hoard.append(b'\\x01' * (16 << 20))\n"
)
_LIMIT = 256 << 20


def _mounts(fstype: str) -> list[tuple[Path, str]]:
    """(mount point, super options) of every mount of ``fstype``, from /proc/self/mountinfo."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        if fields[separator + 1] == fstype:
            found.append((Path(fields[4]), fields[separator + 3]))
    return found


def _own_cgroup(hierarchy: str) -> str:
    """This process's path in the v2 hierarchy (``""``) or in the v1 ``memory`` hierarchy."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == hierarchy or hierarchy in controllers.split(","):
            return path
    raise LookupError(hierarchy)


@contextmanager
def _group_of_its_own(parent: Path, limits: dict[str, int]) -> Iterator[Path]:
    """A fresh child group of ``parent`` with ``limits`` written in order; removed afterwards."""
    group = parent / f"crashsight-oom-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        for name, value in limits.items():
            if (group / name).exists():
                (group / name).write_text(str(value))
        yield group
    finally:
        group.rmdir()


@pytest.fixture
def v1_memory_group() -> Iterator[Path]:
    """A 256 MiB group of the cgroup v1 memory controller, a child of this process's group."""
    if sys.platform != "linux":
        pytest.skip("cgroups are Linux's")
    mounts = [point for point, options in _mounts("cgroup") if "memory" in options.split(",")]
    if not mounts:
        pytest.skip("no cgroup v1 memory controller is mounted on this host")
    parent = mounts[0] / _own_cgroup("memory").lstrip("/")
    if "oom_kill " not in (parent / "memory.oom_control").read_text():
        pytest.skip("this kernel's v1 memory.oom_control has no oom_kill counter (Linux < 4.13)")
    try:
        with _group_of_its_own(
            parent, {"memory.limit_in_bytes": _LIMIT, "memory.memsw.limit_in_bytes": _LIMIT}
        ) as group:
            yield group
    except PermissionError as exc:
        pytest.skip(f"cannot create a v1 memory group under {parent}: {exc}")


@pytest.fixture
def v2_memory_group() -> Iterator[Path]:
    """A 256 MiB cgroup v2 group with the memory controller, a child of this process's group."""
    if sys.platform != "linux":
        pytest.skip("cgroups are Linux's")
    mounts = [point for point, _ in _mounts("cgroup2")]
    if not mounts:
        pytest.skip("no cgroup v2 hierarchy is mounted on this host")
    parent = mounts[0] / _own_cgroup("").lstrip("/")
    offered = (parent / "cgroup.controllers").read_text().split()
    if "memory" not in offered:
        v1 = [str(point) for point, options in _mounts("cgroup") if "memory" in options.split(",")]
        pytest.skip(
            f"cgroup v2 group {parent} has no memory controller to give a child group "
            f"(cgroup.controllers: {' '.join(offered) or 'none'})"
            + (f"; memory is bound to the v1 hierarchy at {v1[0]}" if v1 else "")
        )
    if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
        try:
            (parent / "cgroup.subtree_control").write_text("+memory")
        except OSError as exc:
            pytest.skip(
                f"cannot enable the memory controller for children of {parent} ({exc.strerror}: "
                "a non-root group that holds processes cannot delegate controllers)"
            )
    with _group_of_its_own(parent, {"memory.max": _LIMIT, "memory.swap.max": 0}) as group:
        yield group


def _oom_kill_under_crashsight(group: Path, report: Path) -> dict[str, Any]:
    """`crashsight run` a memory hoarder inside ``group``; return the report."""
    join_then_exec = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
    # --cgroup off: the evidence path under test is the shared group's counter, which crashsight
    # reads without a cgroup of the runner's own (tests/supervisor covers that one).
    run = subprocess.run(
        ["sh", "-c", join_then_exec, str(group), sys.executable, "-m", "crashsight", "run",
         "--cgroup", "off", "--report", str(report), "--", sys.executable, "-c", _HOARD],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 128 + 9, run.stderr
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def test_real_oom_kill_in_a_v1_memory_group(v1_memory_group: Path, tmp_path: Path) -> None:
    """The kernel OOM-kills the worker in its own v1 group: the report says memory/oom_killed
    from the group's own oom_kill counter, which moved by exactly one."""
    data = _oom_kill_under_crashsight(v1_memory_group, tmp_path / "r.json")
    assert (data["category"], data["subcategory"]) == ("memory", "oom_killed")
    assert data["oom_killed"] is True
    assert data["exit"]["signal"] == "SIGKILL"
    counters = (v1_memory_group / "memory.oom_control").read_text().splitlines()
    assert "oom_kill 1" in counters


def test_real_oom_kill_in_a_v2_memory_group(v2_memory_group: Path, tmp_path: Path) -> None:
    """The same through cgroup v2: the group's memory.events counts the one kill, and the
    report says memory/oom_killed from it."""
    data = _oom_kill_under_crashsight(v2_memory_group, tmp_path / "r.json")
    assert (data["category"], data["subcategory"]) == ("memory", "oom_killed")
    assert data["oom_killed"] is True
    assert data["exit"]["signal"] == "SIGKILL"
    assert "oom_kill 1" in (v2_memory_group / "memory.events").read_text().splitlines()
