"""Fixtures shared by the diagnostics tests that make failures happen for real."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _own_v1_memory_cgroup() -> Path | None:
    """This process's cgroup v1 memory controller directory, when it reports OOM kills."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            directory = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            oom_control = directory / "memory.oom_control"
            if oom_control.exists() and "oom_kill " in oom_control.read_text():
                return directory
    return None


@pytest.fixture
def oom_cgroup() -> Iterator[Path | None]:
    """A 96 MiB cgroup v1 memory group the worker joins, so the kernel's OOM killer really kills it.

    Nothing is replaced: the supervisor reads the worker's v1 memory group (its ``oom_kill``
    counters summed over child groups) before the spawn and after the exit, and the kill in the
    child group shows up as evidence. None where no writable v1 memory controller exists (the
    row is then skipped; on a cgroup v2 host, the v2 path is covered by tests/diagnostics/test_oom.py).
    """
    parent = _own_v1_memory_cgroup()
    if parent is None:
        yield None
        return
    group = parent / f"crashsight-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except OSError:
        yield None
        return
    try:
        (group / "memory.limit_in_bytes").write_text(str(96 << 20))
        if (group / "memory.memsw.limit_in_bytes").exists():
            (group / "memory.memsw.limit_in_bytes").write_text(str(96 << 20))
        yield group
    finally:
        group.rmdir()
