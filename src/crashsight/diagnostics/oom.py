"""Evidence of kernel OOM kills from the cgroup OOM counters (v2 ``memory.events``, v1 ``oom_control``).

A worker killed by SIGKILL may have met the kernel's OOM killer, or a person, or a scheduler. The
only reliable way to tell from user space is the cgroup's OOM counters: the supervisor reads them
for the worker before and after it runs, and an increase means an OOM kill happened in that cgroup.

The counters belong to the cgroup, not the process: when the supervisor and its workers share a
cgroup, an OOM kill of any process in it counts. ``memory.events`` is hierarchical, so when the
worker's own cgroup has no memory controller the nearest ancestor that has one is read.

On cgroup v1 (and hybrid hosts, whose v2 hierarchy has no memory controller) the same counter is
the ``oom_kill`` line of the memory controller's ``memory.oom_control`` (Linux 4.13 and later).
That counter is local to one group, so the v1 reading sums it over the group and its descendants
(a worker may move itself into a child group with a lower limit), which gives it v2's meaning.

When the supervisor gives a runner a memory cgroup of its own (``supervisor/cgroup.py``), none
of that guessing is needed: `read_own_memory` reads that group's counters, which count this
runner's tree and nothing else (which runner, how many kills, the tree's peak memory, and the
pressure stall time that shows thrashing before a kill).

Everything here answers "could not tell" (``None``) rather than "no": on macOS, without a
readable counter, without permission, or after the process is gone.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .kernelfiles import read_kernel_text

__all__ = [
    "MemoryPressure",
    "OomCounters",
    "OwnMemory",
    "cgroup_path",
    "oom_evidence",
    "read_cgroup_oom_counters",
    "read_oom_counters",
    "read_own_memory",
    "read_pressure",
]

PROC_ROOT = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")
_MAX_V1_GROUPS = 10_000
_HIERARCHIES: tuple[Literal["v2", "v1"], ...] = ("v2", "v1")
#: Where each hierarchy keeps the counter, relative to the cgroup mount: (mount subfolder, file).
_COUNTER_FILES = {"v2": ("", "memory.events"), "v1": ("memory", "memory.oom_control")}


class OomCounters(BaseModel):
    """The OOM counters of one cgroup at one moment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cgroup: str
    hierarchy: Literal["v2", "v1"] = "v2"
    oom_kill: int
    oom_group_kill: int = 0


class MemoryPressure(BaseModel):
    """Memory pressure stall information (PSI) of a cgroup: time its tasks waited for memory.

    ``some``: at least one task stalled; ``full``: all non-idle tasks stalled at once (thrashing).
    The totals are cumulative microseconds over the cgroup's life; the averages are percentages
    over the last 10 seconds when it was read.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    some_avg10: float
    full_avg10: float
    some_total_us: int
    full_total_us: int


class OwnMemory(BaseModel):
    """Memory evidence from a cgroup that holds one runner's process tree and nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hierarchy: Literal["v2", "v1"]
    oom_kills: int = 0
    limit_hits: int = 0
    peak_bytes: int | None = None


def read_own_memory(folder: Path, hierarchy: Literal["v2", "v1"]) -> OwnMemory | None:
    """Read a runner's own memory cgroup: its OOM kills, limit hits and peak usage.

    v2: ``memory.events`` (``oom_kill``, ``max``) and ``memory.peak`` (Linux 5.19+). v1:
    ``memory.oom_control`` (``oom_kill``, Linux 4.13+), ``memory.failcnt`` and
    ``memory.max_usage_in_bytes``; v1 counters are local to one group, so a worker that made
    sub-groups of its own has them summed in.

    Returns:
        The evidence, or None when the group has no OOM counter (or is gone).
    """
    if hierarchy == "v2":
        events = _read_counters(folder / "memory.events")
        if "oom_kill" not in events:
            return None
        return OwnMemory(
            hierarchy="v2",
            oom_kills=events["oom_kill"],
            limit_hits=events.get("max", 0),
            peak_bytes=_read_int(folder / "memory.peak"),
        )
    oom_kills = _subtree_oom_kills(folder, "memory.oom_control")
    if oom_kills is None:
        return None
    return OwnMemory(
        hierarchy="v1",
        oom_kills=oom_kills,
        limit_hits=_read_int(folder / "memory.failcnt") or 0,
        peak_bytes=_read_int(folder / "memory.max_usage_in_bytes"),
    )


def read_pressure(path: Path) -> MemoryPressure | None:
    """Parse a PSI file (``memory.pressure``); None when absent or PSI is disabled."""
    try:
        text = read_kernel_text(path)
    except OSError:
        return None
    fields: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        kind, *pairs = line.split()
        fields[kind] = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
    try:
        return MemoryPressure(
            some_avg10=float(fields["some"]["avg10"]),
            full_avg10=float(fields["full"]["avg10"]),
            some_total_us=int(fields["some"]["total"]),
            full_total_us=int(fields["full"]["total"]),
        )
    except (KeyError, ValueError):
        return None


def _read_int(path: Path) -> int | None:
    try:
        return int(read_kernel_text(path).strip())
    except (OSError, ValueError):
        return None


def cgroup_path(
    pid: int | None = None, *, proc_root: Path = PROC_ROOT, hierarchy: Literal["v2", "v1"] = "v2"
) -> str | None:
    """Return a process's cgroup path (``/user.slice/...``) in one hierarchy, or None.

    Args:
        pid: the process; None means this process.
        proc_root: where procfs is mounted; tests point it at a fake tree.
        hierarchy: ``v2``, the unified hierarchy (``0::/path``), or ``v1``, the memory
            controller's own (``4:memory:/path``).
    """
    try:
        text = (proc_root / ("self" if pid is None else str(pid)) / "cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "-", "")
        if (hierarchy == "v2" and controllers == "") or (
            hierarchy == "v1" and "memory" in controllers.split(",")
        ):
            return path or None
    return None


def _read_counters(path: Path) -> dict[str, int]:
    try:
        return _parse_events(read_kernel_text(path))
    except (OSError, ValueError):
        return {}


def _subtree_oom_kills(folder: Path, name: str) -> int | None:
    """Sum a v1 group's ``oom_kill`` with its descendants' (bounded: a group tree is small).

    None when the group itself has no such counter (a kernel before 4.13, or the group is gone).
    """
    total: int | None = None
    for depth, (directory, _, _) in enumerate(os.walk(folder)):
        if depth >= _MAX_V1_GROUPS:
            break
        counters = _read_counters(Path(directory) / name)
        if depth == 0 and "oom_kill" not in counters:
            return None
        total = (total or 0) + counters.get("oom_kill", 0)
    return total


def _parse_events(text: str) -> dict[str, int]:
    counters: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            counters[key] = int(value)
    return counters


def read_oom_counters(
    pid: int | None = None, *, proc_root: Path = PROC_ROOT, cgroup_root: Path = CGROUP_ROOT
) -> OomCounters | None:
    """Read the OOM counters of a live process's cgroup.

    Read the "after" value with `read_cgroup_oom_counters` on ``before.cgroup`` instead: once a
    process has exited, its ``/proc`` entry no longer names its cgroup.

    Args:
        pid: the process; None means this process.
        proc_root: where procfs is mounted.
        cgroup_root: where the cgroup v2 hierarchy is mounted.

    Returns:
        The counters, or None when they cannot be read (no cgroup v2, no memory controller on the
        way up, macOS, permission denied, process gone).
    """
    for hierarchy in _HIERARCHIES:
        path = cgroup_path(pid, proc_root=proc_root, hierarchy=hierarchy)
        if path is not None:
            found = read_cgroup_oom_counters(path, cgroup_root=cgroup_root, hierarchy=hierarchy)
            if found is not None:
                return found
    return None


def read_cgroup_oom_counters(
    cgroup: str, *, cgroup_root: Path = CGROUP_ROOT, hierarchy: Literal["v2", "v1"] = "v2"
) -> OomCounters | None:
    """Read the OOM counters of a cgroup path, or of its nearest ancestor that has them.

    Args:
        cgroup: a path in the hierarchy, e.g. ``/system.slice/job.scope``.
        cgroup_root: where cgroups are mounted (v2 at the root, v1's memory controller under
            ``memory/``).
        hierarchy: which hierarchy ``cgroup`` belongs to.

    Returns:
        The counters, or None when no counter file with ``oom_kill`` is readable on the way up
        to the root.
    """
    base, name = _COUNTER_FILES[hierarchy]
    current = PurePosixPath(cgroup)
    while True:
        folder = cgroup_root / base / current.relative_to("/")
        if hierarchy == "v1":  # one counter, local to each group: summed over the subtree
            kills = _subtree_oom_kills(folder, name)
            counters = {} if kills is None else {"oom_kill": kills}
        else:
            counters = _read_counters(folder / name)
        if "oom_kill" in counters:
            return OomCounters(
                cgroup=str(current),
                hierarchy=hierarchy,
                oom_kill=counters["oom_kill"],
                oom_group_kill=counters.get("oom_group_kill", 0),
            )
        if current == current.parent:
            return None
        current = current.parent


def oom_evidence(before: OomCounters | None, after: OomCounters | None) -> bool | None:
    """Say whether an OOM kill happened between two readings.

    Returns:
        None when either reading is missing or they are of different cgroups (unknown is never
        reported as "no"), True when ``oom_kill`` or ``oom_group_kill`` increased, else False.
    """
    if (
        before is None
        or after is None
        or (before.cgroup, before.hierarchy)
        != (
            after.cgroup,
            after.hierarchy,
        )
    ):
        return None
    return after.oom_kill > before.oom_kill or after.oom_group_kill > before.oom_group_kill
