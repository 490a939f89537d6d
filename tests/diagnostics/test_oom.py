"""cgroup OOM-kill evidence (v2 and v1): parsing fake proc/sysfs trees, and this machine's real ones."""

from __future__ import annotations

import os
from pathlib import Path

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


def test_real_files_of_this_machine_agree_with_the_parser() -> None:
    """On this host, the cgroup and counters read match the real /proc and /sys files."""
    proc_file = Path("/proc/self/cgroup")
    if not proc_file.exists():
        pytest.skip("no procfs on this host")
    unified = [line[3:] for line in proc_file.read_text().splitlines() if line.startswith("0::")]
    assert cgroup_path(os.getpid()) == (unified[0] or None if unified else None)
    counters = read_oom_counters(os.getpid())
    if counters is None:
        leaf = Path("/sys/fs/cgroup", unified[0].lstrip("/")) if unified else None
        assert leaf is None or not (leaf / "memory.events").is_file()
    else:
        base, name = COUNTER_FILES[counters.hierarchy]
        text = Path("/sys/fs/cgroup", base, counters.cgroup.lstrip("/"), name).read_text()
        assert f"oom_kill {counters.oom_kill}" in text.splitlines()
        assert read_oom_counters() == counters


COUNTER_FILES = {"v2": ("", "memory.events"), "v1": ("memory", "memory.oom_control")}


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
