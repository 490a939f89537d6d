"""Suite-wide guarantees: one set of hypothesis settings, and no test leaves a process behind."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest
from hypothesis import HealthCheck, settings

from crashsight.supervisor import cgroupfs
from crashsight.supervisor.cgroup import CgroupHost, RunnerCgroup, detect_host

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

#: Every process this test session starts inherits this marker (crashsight's own helpers too: the
#: guardian, the CLI, servers), so concurrent test runs on the same machine never see each other's
#: processes. It is not the product's runner marker, and it is only the second of two means.
SESSION_ENV = "CRASHSIGHT_TEST_SESSION"
os.environ[SESSION_ENV] = uuid.uuid4().hex

_PR_SET_CHILD_SUBREAPER = 36
#: How long a test's processes get to disappear after it ends before they count as survivors.
_SURVIVOR_WAIT_S = 5.0


def pytest_configure(config: pytest.Config) -> None:
    """Make this pytest process a child subreaper (Linux), the leak check's first means.

    An orphan (a daemon's double fork, a grandchild whose runner died, a process that scrubbed its
    environment and called setsid) is then re-parented to this process instead of init, so it
    stays in this process's tree, where the leak check finds it. The product's sweep relies on
    its runner marker in the environment and on the runner's tree; this check relies on neither.
    Orphans that exit become zombies here; the leak check reaps them after every test.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _unignore_interrupts()


def _unignore_interrupts() -> None:
    """Give SIGINT and SIGHUP their usual handling back if this suite was started with them ignored.

    A suite started in the background by a non-interactive shell (``make test &`` in a script)
    inherits SIGINT ignored, and under ``nohup`` SIGHUP too; every process it starts inherits
    that in turn. Tests that send these signals to a child (Ctrl-C of a command, of the server)
    and Ray's ``ray.cancel``, which interrupts a task as a SIGINT would, then see them do nothing:
    measured, three tests failing in every such run, and passing otherwise.
    """
    for sig, handler in (
        (signal.SIGINT, signal.default_int_handler),
        (signal.SIGHUP, signal.SIG_DFL),
    ):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, handler)


def _tree() -> list[psutil.Process]:
    """This process's descendants, orphans adopted by the subreaper included.

    Kept in sets, where psutil tells processes apart by pid and start time counted from boot (not
    by ``create_time()``, a date that moves with the wall clock). psutil already leaves out
    children that end during the walk, so any other error is raised, not read as "no processes",
    which would blame every process of the session on the test.
    """
    return psutil.Process().children(recursive=True)


def _started_during(proc: psutil.Process, since: float) -> bool:
    """Whether ``proc`` may have been started by the test that began at ``since``.

    The second of slack covers start times rounded to clock ticks. A process started before that
    is never the test's, whatever the baseline says: once, on a loaded machine, the session's
    browser (its driver and every chromium process, alive since the first browser test) was
    missing from a later test's baseline, for a reason not found, and was reported and killed as
    that test's leak.
    """
    return proc.create_time() >= since - 1


def _session_survivors(baseline: set[psutil.Process], since: float) -> list[psutil.Process]:
    """Live processes of this session started during the test, except the session's helpers.

    Found by two means: this process's tree, and the session marker in the environment (for
    processes re-parented to another subreaper). A process that existed when the test started
    (a session fixture's browser or server), or descends from one, is the session's, not the
    test's.
    """
    found: dict[int, psutil.Process] = {proc.pid: proc for proc in _tree()}
    for proc in psutil.process_iter():
        if proc.pid in found:
            continue
        try:
            if _started_during(proc, since) and (
                proc.environ().get(SESSION_ENV) == os.environ[SESSION_ENV]
            ):
                found[proc.pid] = proc
        except psutil.Error:
            continue
    survivors = []
    for proc in found.values():
        try:
            if proc in baseline or not _started_during(proc, since):
                continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if _of_the_shared_ray_cluster(proc):
                continue
            if any(parent in baseline for parent in proc.parents()):
                continue
        except psutil.Error:
            continue
        survivors.append(proc)
    return survivors


def _of_the_shared_ray_cluster(proc: psutil.Process) -> bool:
    """Whether ``proc`` is a process of Ray itself while this session's Ray cluster is up.

    tests/ray/conftest.py starts one local cluster in the first test that needs it, keeps it for
    the others, and checks on shutdown that none of its processes is left; until then its daemons
    and idle workers are the session's, not a leak of the test that happened to start them. What
    runs under them (a supervisor in a Ray task, its runners) is still checked here.
    """
    ray = sys.modules.get("ray")
    if ray is None or ray.__file__ is None or not ray.is_initialized():
        return False
    command = proc.cmdline()
    package = os.path.dirname(ray.__file__) + os.sep
    return bool(command) and (
        command[0].startswith("ray::") or any(part.startswith(package) for part in command)
    )


def _reap_adopted_zombies() -> None:
    """Reap this process's exited children: adopted orphans, and any the finished test left."""
    for proc in psutil.Process().children():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(proc.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            continue


def _depth(proc: psutil.Process) -> int:
    try:
        return len(proc.parents())
    except psutil.Error:
        return 0


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Fail any test after which a process it started, directly or not, is still alive.

    Session-scoped fixtures are set up before this fixture, so their processes are in the
    baseline and are not blamed on the test that happened to start them.
    """
    since = time.time()
    baseline = set(_tree())
    yield
    deadline = time.monotonic() + _SURVIVOR_WAIT_S
    survivors = _session_survivors(baseline, since)
    while survivors and time.monotonic() < deadline:
        psutil.wait_procs(survivors, timeout=0.1)
        survivors = _session_survivors(baseline, since)
    if survivors:
        described = []
        for proc in sorted(survivors, key=_depth, reverse=True):  # leaves first
            try:
                described.append(f"{proc.pid} {' '.join(proc.cmdline())}")
                proc.kill()
            except psutil.Error:
                continue
        psutil.wait_procs(survivors, timeout=_SURVIVOR_WAIT_S)
    _reap_adopted_zombies()
    if survivors:
        pytest.fail(f"processes outlived the test: {described}")


@pytest.fixture(scope="session")
def cgroup_host() -> CgroupHost:
    """This host's runner cgroups; a test that needs them skips where they are not writable."""
    host = detect_host("auto")
    if host.v2_base is None:
        pytest.skip(f"no writable cgroup v2 here: {host.reason}")
    return host


@pytest.fixture
def runner_cgroup(cgroup_host: CgroupHost) -> Iterator[RunnerCgroup]:
    """A runner cgroup made by hand, removed (with anything left in it) at teardown."""
    made = RunnerCgroup.create(cgroup_host, f"crashsight-test-{uuid.uuid4().hex}")
    try:
        yield made
    finally:
        cgroupfs.kill_all(made.v2, list(made.v1.values()), kill_file=True, within=5.0)
        cgroupfs.remove_all(made.folders)


@pytest.fixture
def refusing_cgroup(runner_cgroup: RunnerCgroup) -> RunnerCgroup:
    """A runner group removed behind the supervisor's back (a cleanup job, an admin).

    Its v2 folder is gone, so moving a runner into it, or forking one into it, fails for real.
    """
    assert runner_cgroup.v2 is not None
    runner_cgroup.v2.rmdir()
    return runner_cgroup
