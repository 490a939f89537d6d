"""Fixtures shared by the supervisor tests."""

from __future__ import annotations

import pytest

from crashsight.supervisor.cgroup import CgroupHost, detect_host


@pytest.fixture(scope="session")
def cgroup_host() -> CgroupHost:
    """This host's runner cgroups; a test that needs them skips where they are not writable."""
    host = detect_host("auto")
    if host.v2_base is None:
        pytest.skip(f"no writable cgroup v2 here: {host.reason}")
    return host
