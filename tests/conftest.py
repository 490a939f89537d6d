"""Suite-wide guarantees: no test leaves a process behind."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest
from hypothesis import HealthCheck, settings

from crashsight.runner.channel import RUNNER_ID_ENV

# One set of hypothesis settings for CI and for a user's first `make test`. Built from
# hypothesis's own defaults, never from the profile it loads by itself when CI is set (that one
# suppresses too_slow, and inheriting it made CI and users run different checks). No deadline and
# no timing health checks: a cold `.hypothesis` cache builds the unicode tables inside the first
# draw (seconds on a busy 2-core machine), which is neither a bug nor a property of the code; the
# per-test timeout still catches a real hang.
_CHECKS = settings(
    settings.get_profile("default"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("crashsight", _CHECKS)
# CI explores the same examples on every run, so a red CI means the change broke something; a
# developer's run keeps drawing new examples (that is how the collector's '\r' bug was found).
settings.register_profile("crashsight-ci", _CHECKS, derandomize=True, print_blob=True)
settings.load_profile("crashsight-ci" if os.environ.get("CI") else "crashsight")

#: Every process this test session starts inherits this marker, so concurrent test runs on the
#: same machine do not see each other's runners as leftovers.
SESSION_ENV = "CRASHSIGHT_TEST_SESSION"
os.environ[SESSION_ENV] = uuid.uuid4().hex


def _marked_survivors(since: float) -> list[psutil.Process]:
    """Live (non-zombie) processes started by a crashsight runner since ``since``."""
    found = []
    for proc in psutil.process_iter(["pid", "create_time", "status"]):
        info = proc.info
        if proc.pid == os.getpid() or info["create_time"] < since - 1:
            continue
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            env = proc.environ()
            if RUNNER_ID_ENV in env and env.get(SESSION_ENV) == os.environ[SESSION_ENV]:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Fail any test after which a runner, or anything a runner started, is still alive."""
    since = time.time()
    yield
    deadline = time.monotonic() + 3.0
    survivors = _marked_survivors(since)
    while survivors and time.monotonic() < deadline:
        psutil.wait_procs(survivors, timeout=0.1)
        survivors = _marked_survivors(since)
    if survivors:
        described = [f"{p.pid} {' '.join(p.cmdline())}" for p in survivors]
        for proc in survivors:
            proc.kill()
        pytest.fail(f"processes outlived the test: {described}")
