"""The suite's own leak check (tests/conftest.py) catches what the product's sweep cannot see.

The product finds a runner's leftovers by its runner marker in the environment and by the runner's
process tree. The suite's check must not share that blind spot: it is run here on a small inner
test session, whose tests leak on purpose in the ways the product cannot see.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from tests.conftest import _session_survivors

pytest_plugins = ["pytester"]

#: Inner tests: a test with two leaks the product's sweep would miss, and clean tests next to a
#: long-lived session fixture (which is the session's, not the test's that first asked for it).
_INNER_TESTS = """
import subprocess, sys

import pytest

from crashsight.supervisor.guardian import Guardian


@pytest.fixture(scope="session")
def helper():
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def test_leaks():
    # env -i: no marker of any kind; setsid -f: a new session, and its parent exits at once.
    subprocess.run(["env", "-i", "setsid", "-f", "sleep", "301"], check=True)
    Guardian().watch(2**22 + 1)  # never closed: crashsight's own helper lives on


def test_clean_next_to_a_session_helper(helper):
    assert helper.poll() is None


def test_clean_after_the_helper(helper):
    assert helper.poll() is None
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the subreaper and setsid -f are Linux's")
def test_leaks_the_product_cannot_see_fail_the_test(pytester: pytest.Pytester) -> None:
    """A scrubbed-environment daemon and a forgotten guardian each fail their test (and are
    killed); a session fixture's process fails none."""
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makepyfile(test_inner=_INNER_TESTS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=3, errors=1)
    [failure] = [line for line in result.stdout.lines if line.startswith("E   ")]
    assert "sleep 301" in failure
    assert "guardian.py" in failure


@pytest.mark.skipif(sys.platform != "linux", reason="the subreaper is Linux's")
def test_a_process_older_than_the_test_is_never_its_leak() -> None:
    """Even when the baseline missed it (once, the session's whole browser on a loaded machine),
    a process started over a second before the test is not blamed on the test; one started
    during it is."""
    proc = subprocess.Popen(["sleep", "300"])
    try:
        started = psutil.Process(proc.pid).create_time()
        missed: set[psutil.Process] = set()  # a baseline without the process
        blamed_by_a_later_test = _session_survivors(missed, since=started + 2)
        blamed_by_its_own_test = _session_survivors(missed, since=started)
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in {survivor.pid for survivor in blamed_by_a_later_test}
    assert proc.pid in {survivor.pid for survivor in blamed_by_its_own_test}
