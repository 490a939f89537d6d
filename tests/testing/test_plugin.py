"""The pytest plugin, seen from a user's test suite run in a sub-pytest.

Each test writes a small suite as a user would, runs it with ``runpytest_subprocess`` (so real
crashes and leaked processes stay in that process tree), and checks its outcome counts and the
messages a user would read.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

_ASYNCIO_SUITE = """
import os
import subprocess
import sys

import pytest

from crashsight.testing import assert_verdict


@pytest.mark.asyncio
async def test_segfault_is_reported(run_crash):
    status = await run_crash("segfault", "--task", "shard-7")
    assert_verdict(status, "crash/segfault")
    assert status.tasks.in_flight == ["shard-7"]


@pytest.mark.asyncio
async def test_wrong_verdict(run_crash):
    status = await run_crash("emit_signature", "cuda.oom")
    assert_verdict(status, "crash/segfault")


@pytest.mark.asyncio
async def test_worker_leaks_grandchild(supervisor):
    async with supervisor:
        await supervisor.spawn("crashsight.testing.targets:leave_grandchild")


@pytest.mark.asyncio
@pytest.mark.crashsight(allow_leftovers=True, deadline=30.0)
async def test_leak_allowed(supervisor):
    assert supervisor.deadline == 30.0
    async with supervisor:
        await supervisor.spawn("crashsight.testing.targets:leave_grandchild")


@pytest.mark.asyncio
async def test_process_escapes_supervision(supervisor):
    async with supervisor:
        runner = await supervisor.spawn("crashsight.testing.targets:exit", "0")
    escaped = [sys.executable, "-c", "import time; time.sleep(60)", "escaped"]
    subprocess.Popen(escaped, env={**os.environ, "CRASHSIGHT_RUNNER_ID": runner.id})
"""

_ANYIO_SUITE = """
import pytest

from crashsight.testing import assert_verdict

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


async def test_run_crash(run_crash):
    assert_verdict(await run_crash("abort"), "crash/abort")


async def test_supervisor(supervisor):
    async with supervisor:
        runner = await supervisor.spawn("crashsight.testing.targets:exit", "3")
    assert_verdict(await runner.wait(), "unknown")
"""

_UNRELATED_SUITE = """
import sys


def test_plugin_stays_out_of_the_way(request):
    assert not {"supervisor", "run_crash"} & set(request.fixturenames)
    assert "crashsight.supervisor" not in sys.modules
"""


@pytest.fixture
def user_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A sub-pytest directory configured as a strict user project would be."""
    pytester.makeini(
        "[pytest]\n"
        "addopts = --strict-markers -p no:cacheprovider\n"
        "asyncio_mode = strict\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    return pytester


def test_asyncio_suite(user_suite: pytest.Pytester) -> None:
    """Under pytest-asyncio: a crash test passes, a wrong verdict and leftovers fail readably."""
    user_suite.makepyfile(test_workers=_ASYNCIO_SUITE)
    result = user_suite.runpytest_subprocess()
    result.assert_outcomes(passed=4, failed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: runner 'crashsight.testing.targets:emit_signature' (pid *): "
            "expected verdict 'crash/segfault', got 'gpu/oom'",
            "*  exit:        exited with code 1",
            "*  summary:     gpu/oom: *",
            "*  diagnostics: 1",
            "*    cuda.oom (gpu/oom) x1: torch.OutOfMemoryError: CUDA out of memory.*",
            "*  stderr tail (last 1 of 1):",
            "*    | torch.OutOfMemoryError: CUDA out of memory.*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_worker_leaks_grandchild*",
            "*crashsight: processes outlived their runner:",
            "*  runner 'crashsight.testing.targets:leave_grandchild' left 1 process(es) behind, "
            "which the supervisor killed when the runner ended",
            "*mark the test @pytest.mark.crashsight(allow_leftovers=True).",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_process_escapes_supervision*",
            "*  runner 'crashsight.testing.targets:exit' left pid * (*time.sleep(60) escaped) "
            "running; killed it now",
        ]
    )


def test_anyio_suite_on_asyncio_and_trio(user_suite: pytest.Pytester) -> None:
    """Under anyio's plugin, both fixtures work on the asyncio and the trio backend."""
    user_suite.makepyfile(test_workers=_ANYIO_SUITE)
    result = user_suite.runpytest_subprocess("-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_run_crash?trio? PASSED*", "*test_supervisor?trio? PASSED*"])


def test_unrelated_suite_is_untouched(user_suite: pytest.Pytester) -> None:
    """A suite that uses none of it gets no fixtures and does not even load the supervisor."""
    user_suite.makepyfile(test_plain=_UNRELATED_SUITE)
    result = user_suite.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_marker_is_registered(user_suite: pytest.Pytester) -> None:
    """``--strict-markers`` suites may use ``@pytest.mark.crashsight``; ``--markers`` explains it."""
    result = user_suite.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.crashsight(allow_leftovers=False, **options): *"])


def test_marker_takes_keywords_only(user_suite: pytest.Pytester) -> None:
    """A positional marker argument is a usage error that names the problem."""
    user_suite.makepyfile(
        test_bad="""
import pytest

@pytest.mark.crashsight(True)
def test_bad(supervisor):
    pass
"""
    )
    result = user_suite.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*takes keyword arguments only, got (True,)*"])
