"""``@supervised``: run a Ray task's or actor method's body as a crashsight runner.

Put it under ``@ray.remote``::

    @ray.remote
    @supervised(deadline=600)
    def encode(shard: str) -> int: ...

Ray calls the wrapper in its worker; the wrapper runs the body in a child process under a
`Supervisor` (see `crashsight.ray.call`) and returns its value, or raises `RunnerFailedError`.
The supervisor is async and the wrapper usually is not, so the wrapper starts an event loop of
its own with ``anyio.run``, except where the calling thread already runs one (a plain method of an
async actor): a loop cannot be started inside another, so it then runs in a short-lived thread.
An ``async def`` body gets an async wrapper that the actor's own loop awaits.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import anyio

from ..diagnostics.rules import Rule, load_rules
from ..errors import ConfigurationError
from ..supervisor.restart import RestartPolicy
from .call import CallOptions, call_in_runner
from .events import RayEvent
from .payload import DEFAULT_MAX_PAYLOAD_BYTES

__all__ = ["supervised"]

#: How often a waiting sync call's event loop wakes, so that ``ray.cancel`` is noticed.
_WAKE_INTERVAL_S = 0.25

_P = ParamSpec("_P")
_R = TypeVar("_R")


def supervised(
    *,
    deadline: float | None = None,
    no_progress_timeout: float | None = None,
    rules: str | os.PathLike[str] | Sequence[Rule] | None = None,
    restarts: int | RestartPolicy = 0,
    events: Callable[[RayEvent], object] | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Run each call of the decorated function in a supervised child of the Ray worker.

    Works on plain functions, ``async def`` functions and methods.
    A method's ``self`` is pickled to the child with the other arguments, so the body works on a
    copy of the actor: return what should change rather than assigning to ``self``. The body runs
    outside Ray, so it should not call Ray's API itself.

    Args:
        deadline: Seconds one call may run before it is stopped as ``timeout/deadline``.
        no_progress_timeout: Seconds without output or runner events before it is stopped as
            ``timeout/no_progress``.
        rules: Your classification rules (a TOML file, read here on the driver, or loaded rules).
        restarts: Restarts of a failed call (a number, or a `RestartPolicy` with backoff and a
            ``retry_if`` predicate); the error carries the last attempt's status.
        events: Called in the worker with a `RayEvent` for each runner event; pass a Ray queue's
            ``put_nowait`` to receive them on the driver. A sink that raises is reported once on
            stderr and then skipped.
        report_dir: Write each call's JSON report into this directory (shared by all workers;
            a relative path is taken from the directory where the decorator runs), named
            ``NAME-RAYTASKID.json``, for `crashsight aggregate`.
        name: The runner's name in verdicts and reports; the function's qualified name by default.
        max_payload_bytes: Largest pickled arguments, and largest pickled return value, of a call.

    Raises:
        ConfigurationError: An option is invalid (raised here, before any task runs).
        RulesError: The rules file is malformed.
    """
    options = CallOptions(
        deadline=_positive("deadline", deadline),
        no_progress_timeout=_positive("no_progress_timeout", no_progress_timeout),
        rules=load_rules(rules) if isinstance(rules, str | os.PathLike) else tuple(rules or ()),
        restart=_restart_policy(restarts),
        events=events,
        # Resolved here, on the driver: a Ray worker's working directory is not the driver's.
        report_dir=None if report_dir is None else os.path.abspath(report_dir),
        name=name,
        max_payload_bytes=_payload_limit(max_payload_bytes),
    )

    def decorate(body: Callable[_P, _R]) -> Callable[_P, _R]:
        if inspect.iscoroutinefunction(body):
            return _async_wrapper(body, options)  # type: ignore[return-value]
        return _sync_wrapper(body, options)

    return decorate


def _sync_wrapper(body: Callable[_P, _R], options: CallOptions) -> Callable[_P, _R]:
    @functools.wraps(body)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        call = functools.partial(call_in_runner, body, args, kwargs, options)
        return _run_to_completion(call)  # type: ignore[return-value]

    return run


def _async_wrapper(
    body: Callable[_P, Coroutine[Any, Any, _R]], options: CallOptions
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    @functools.wraps(body)
    async def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return await call_in_runner(body, args, kwargs, options)  # type: ignore[return-value]

    return run


def _run_to_completion(call: Callable[[], Coroutine[Any, Any, object]]) -> object:
    """Run an async call from sync code, in this thread unless it already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_a_loop = False  # anyio.run outside the handler: no "during handling" on every error
    else:
        in_a_loop = True
    if not in_a_loop:
        return anyio.run(_interruptible, call)
    with ThreadPoolExecutor(1, thread_name_prefix="crashsight-ray") as pool:
        return pool.submit(anyio.run, call).result()


async def _interruptible(call: Callable[[], Coroutine[Any, Any, object]]) -> object:
    """Run ``call`` while waking the event loop now and then.

    ``ray.cancel`` interrupts a task by raising an exception in its thread, which Python delivers
    only when that thread runs bytecode; an event loop that waits in ``epoll`` for a quiet runner
    would never see it. Waking the loop lets the exception in: it ends the loop, whose shutdown
    cancels the supervisor, which stops the runner with its stop policy. The call's own outcome
    is kept outside the task group, so its error is raised as is, not in an exception group.
    """
    returned: list[object] = []
    raised: list[Exception] = []

    async def run_call() -> None:
        try:
            returned.append(await call())
        except Exception as exc:
            raised.append(exc)
        finally:
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(run_call)
        await _wake_periodically()
    if raised:
        raise raised[0]
    return returned[0]


async def _wake_periodically() -> None:
    while True:  # noqa: ASYNC110 - waking the loop is the point, there is no event to wait on
        await anyio.sleep(_WAKE_INTERVAL_S)


def _positive(option: str, value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise ConfigurationError(f"{option} must be a positive number of seconds, got {value!r}")
    return value


def _restart_policy(restarts: int | RestartPolicy) -> RestartPolicy:
    if isinstance(restarts, RestartPolicy):
        return restarts
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
        raise ConfigurationError(
            f"restarts must be a number >= 0 or a RestartPolicy, got {restarts!r}"
        )
    return RestartPolicy(max_restarts=restarts)


def _payload_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1024:
        raise ConfigurationError(f"max_payload_bytes must be an integer >= 1024, got {limit!r}")
    return limit
