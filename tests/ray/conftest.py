"""One real local Ray cluster for the whole test session, and a check that none of it outlives it.

Ray starts a GCS server, a raylet, a log monitor and worker processes. They cost seconds to start
on a loaded 2-core machine, so every Ray test shares one cluster (2 CPUs), started on first use
and shut down when the session ends; the teardown then waits, bounded, until no process this
session's cluster started is left, and fails the session if one is.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from types import ModuleType

import psutil
import pytest

#: Set by the suite's conftest on every process the session starts (Ray's daemons inherit it).
_SESSION_ENV = "CRASHSIGHT_TEST_SESSION"

#: Long enough for Ray to start its daemons on a loaded 2-core machine.
CLUSTER_TIMEOUT_S = 300


def import_ray() -> ModuleType:
    """Ray, or a visible skip of the test that needs it."""
    ray: ModuleType = pytest.importorskip(
        "ray", reason="Ray is not installed: pip install 'crashsight[ray]' to run the Ray tests"
    )
    return ray


def _cluster_processes() -> list[psutil.Process]:
    """Ray processes started by this test session (raylet, GCS, workers, agents)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == os.getpid():
            continue
        try:
            command = " ".join(proc.info["cmdline"] or ())
            if "ray" not in command.lower() and not proc.name().startswith("ray::"):
                continue
            if proc.environ().get(_SESSION_ENV) == os.environ[_SESSION_ENV]:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[ModuleType]:
    """A local Ray cluster with 2 CPUs, shared by the session's Ray tests."""
    ray = import_ray()
    with warnings.catch_warnings():
        # Ray's start-up warns about things of its own (token auth, deprecated options).
        warnings.simplefilter("ignore")
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        deadline = time.monotonic() + 60
        left = _cluster_processes()
        while left and time.monotonic() < deadline:
            psutil.wait_procs(left, timeout=1)
            left = _cluster_processes()
        for proc in left:
            proc.kill()
        assert not left, f"Ray processes outlived ray.shutdown(): {[p.cmdline() for p in left]}"
