"""One real local Ray cluster for the Ray tests, and a check that none of it outlives them.

Ray starts a GCS server, a raylet, a log monitor and worker processes. They cost seconds to start
on a loaded 2-core machine, so the Ray tests share one cluster (2 CPUs), started by the first test
that needs it. It is shut down as soon as the session's last test of this directory is done,
rather than at the end of the session, so that its daemons and the driver's threads do not run beside the rest
of the suite; the shutdown then waits, bounded, until no process of the cluster is left, and
fails the test run if one is.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psutil
import pytest

#: Set by the suite's conftest on every process the session starts (Ray's daemons inherit it).
_SESSION_ENV = "CRASHSIGHT_TEST_SESSION"
_HERE = Path(__file__).parent
_SHUTDOWN_WAIT_S = 60


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


def _shut_down(ray: ModuleType) -> None:
    """Stop the cluster and fail if any of its processes is still alive after a bounded wait."""
    if not ray.is_initialized():
        return
    ray.shutdown()
    deadline = time.monotonic() + _SHUTDOWN_WAIT_S
    left = _cluster_processes()
    while left and time.monotonic() < deadline:
        psutil.wait_procs(left, timeout=1)
        left = _cluster_processes()
    for proc in left:
        proc.kill()
    assert not left, f"Ray processes outlived ray.shutdown(): {[p.cmdline() for p in left]}"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[ModuleType]:
    """Ray, connected to the shared local cluster with 2 CPUs.

    Session-scoped, so the cluster's processes exist before the suite's per-test leak check
    takes its baseline, and are never blamed on the test that happened to need them first.
    """
    ray = import_ray()
    with warnings.catch_warnings():
        # Ray's start-up warns about things of its own (token auth, deprecated options).
        warnings.simplefilter("ignore")
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray
    _shut_down(ray)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """After the last Ray test of the session, shut the cluster down (if one was started)."""
    later = item.session.items[item.session.items.index(item) + 1 :]
    if any(other.path.is_relative_to(_HERE) for other in later):
        return
    ray = sys.modules.get("ray")
    if ray is not None:
        _shut_down(ray)
