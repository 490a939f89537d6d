"""Evidence of kernel OOM kills from cgroup v2 ``memory.events``.

A worker killed by SIGKILL may have met the kernel's OOM killer, or a person, or a scheduler. The
only reliable way to tell from user space is the cgroup's OOM counters: the supervisor reads them
for the worker before and after it runs, and an increase means an OOM kill happened in that cgroup.

The counters belong to the cgroup, not the process: when the supervisor and its workers share a
cgroup, an OOM kill of any process in it counts. ``memory.events`` is hierarchical, so when the
worker's own cgroup has no memory controller the nearest ancestor that has one is read.

Everything here answers "could not tell" (``None``) rather than "no": on macOS, on cgroup v1,
without permission, or after the process is gone.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict

__all__ = [
    "OomCounters",
    "cgroup_path",
    "oom_evidence",
    "read_cgroup_oom_counters",
    "read_oom_counters",
]

PROC_ROOT = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class OomCounters(BaseModel):
    """The OOM counters of one cgroup at one moment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cgroup: str
    oom_kill: int
    oom_group_kill: int = 0


def cgroup_path(pid: int | None = None, *, proc_root: Path = PROC_ROOT) -> str | None:
    """Return the cgroup v2 path of a process (``/user.slice/...``), or None if not on v2.

    Args:
        pid: the process; None means this process.
        proc_root: where procfs is mounted; tests point it at a fake tree.
    """
    try:
        text = (proc_root / ("self" if pid is None else str(pid)) / "cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        # The unified hierarchy is the entry with hierarchy id 0 and no controllers: "0::/path".
        if line.startswith("0::"):
            return line[3:] or None
    return None


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
    path = cgroup_path(pid, proc_root=proc_root)
    return None if path is None else read_cgroup_oom_counters(path, cgroup_root=cgroup_root)


def read_cgroup_oom_counters(cgroup: str, *, cgroup_root: Path = CGROUP_ROOT) -> OomCounters | None:
    """Read the OOM counters of a cgroup v2 path, or of its nearest ancestor that has them.

    Args:
        cgroup: a path in the unified hierarchy, e.g. ``/system.slice/job.scope``.
        cgroup_root: where the cgroup v2 hierarchy is mounted.

    Returns:
        The counters, or None when no ``memory.events`` with ``oom_kill`` is readable on the way
        up to the root.
    """
    current = PurePosixPath(cgroup)
    while True:
        try:
            counters = _parse_events(
                (cgroup_root / current.relative_to("/") / "memory.events").read_text()
            )
        except (OSError, ValueError):
            counters = {}
        if "oom_kill" in counters:
            return OomCounters(
                cgroup=str(current),
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
    if before is None or after is None or before.cgroup != after.cgroup:
        return None
    return after.oom_kill > before.oom_kill or after.oom_group_kill > before.oom_group_kill
