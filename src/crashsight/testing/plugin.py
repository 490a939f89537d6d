"""The crashsight pytest plugin: fixtures that run workers under the real supervisor.

Installed with crashsight (the ``pytest11`` entry point ``crashsight``), so it is on in every
pytest session, and does nothing until a test asks for it: no autouse fixtures, no hooks beyond
registering the marker, and crashsight's supervisor is imported only when a fixture is set up.

* ``supervisor``: a `Supervisor` (``output="discard"``) for the test to enter.
* ``run_crash``: ``status = await run_crash("segfault")`` runs an injector of
  `crashsight.testing.targets` (or any ``module:function`` target) in a fresh runner and returns
  its final status.
* ``@pytest.mark.crashsight(allow_leftovers=False, **options)``: ``options`` are `Supervisor`
  keyword arguments for both fixtures (``deadline=5.0``, ``stop_policy=...``).

When the test ends, both fixtures fail it if a process its runners started outlived its runner;
see `crashsight.testing.leftovers`.

Why the fixtures are synchronous, and the test enters the supervisor itself (``async with
supervisor:``): the supervisor's task group, like every anyio cancel scope, must be entered and
exited by one task. pytest-asyncio runs an async fixture's setup, the test and the fixture's
teardown as three separate tasks, and in strict mode only sees fixtures declared with its own
decorator, which anyio's plugin ignores. A synchronous fixture handing over an object the test
enters works the same under pytest-asyncio, under anyio's plugin on asyncio and on trio, and
under any other runner of async tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, Unpack

import pytest

if TYPE_CHECKING:
    from ..supervisor.status import RunnerStatus
    from ..supervisor.supervisor import SpawnOptions, Supervisor
    from .leftovers import LeftoverGuard

__all__ = ["RunCrash", "run_crash", "supervisor"]

_TARGETS = "crashsight.testing.targets"
_MARKER = (
    "crashsight(allow_leftovers=False, **options): Supervisor keyword arguments for the "
    "crashsight fixtures; allow_leftovers=True accepts processes a runner leaves behind for the "
    "supervisor to kill"
)


class RunCrash(Protocol):
    """The ``run_crash`` fixture's type, for annotating tests."""

    async def __call__(
        self, injector: str, *args: str, **options: Unpack[SpawnOptions]
    ) -> RunnerStatus:
        """Run an injector in a fresh runner, under a fresh supervisor, and return its final status.

        Args:
            injector: A `crashsight.testing.targets` name (``"segfault"``), or any runner target
                (``"myapp.worker:main"``, ``"path/to/file.py:main"``).
            *args: The target's arguments (``run_crash("exit", "3")``, ``"--task", "shard-7"``).
            **options: `Supervisor.spawn` options (``deadline=1.0``).
        """
        ...


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so ``--strict-markers`` suites can use it."""
    config.addinivalue_line("markers", _MARKER)


@pytest.fixture
def supervisor(request: pytest.FixtureRequest) -> Iterator[Supervisor]:
    """A `Supervisor` that the test enters with ``async with``; see the module docstring."""
    guard = _guard(request)
    yield guard.supervisor()
    _check(guard)


@pytest.fixture
def run_crash(request: pytest.FixtureRequest) -> Iterator[RunCrash]:
    """``await run_crash(injector, *args, **spawn_options)``: see `RunCrash`."""
    guard = _guard(request)

    async def run(injector: str, *args: str, **options: Unpack[SpawnOptions]) -> RunnerStatus:
        target = injector if ":" in injector else f"{_TARGETS}:{injector}"
        async with guard.supervisor() as fresh:
            runner = await fresh.spawn(target, *args, **options)
        return await runner.wait()

    yield run
    _check(guard)


def _guard(request: pytest.FixtureRequest) -> LeftoverGuard:
    from .leftovers import LeftoverGuard  # the supervisor's stack, only for tests that use it

    marker = request.node.get_closest_marker("crashsight")
    if marker is None:
        return LeftoverGuard(options={})
    if marker.args:
        raise pytest.UsageError(
            f"@pytest.mark.crashsight takes keyword arguments only, got {marker.args!r}"
        )
    options = dict(marker.kwargs)
    allow = options.pop("allow_leftovers", False)
    return LeftoverGuard(allow_leftovers=bool(allow), options=options)


def _check(guard: LeftoverGuard) -> None:
    problems = guard.problems()
    if problems:
        pytest.fail(
            "crashsight: processes outlived their runner:\n"
            + "\n".join(f"  {line}" for line in problems)
            + "\nA worker should wait for the processes it starts; if this one leaves them on "
            "purpose, mark the test @pytest.mark.crashsight(allow_leftovers=True).",
            pytrace=False,
        )
