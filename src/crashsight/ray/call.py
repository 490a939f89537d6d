"""One supervised call inside a Ray worker: spawn the runner, follow it, return or raise.

::

    Ray worker (this process)                        runner (child, own process group)
      call_in_runner ──call.pkl──────────────────────▶ crashsight.ray.child:main
        Supervisor ◀──channel: events, termination──   fn(*args, **kwargs)
             │     ◀──stderr/stdout (copied to the worker's own, which Ray forwards to the driver)
             ├──▶ events sink (e.g. a Ray queue's put_nowait), one RayEvent per event
             ├──▶ report_dir/NAME-TASKID.json (every outcome, for `crashsight aggregate`)
             └──▶ return the value from result.pkl, or raise RunnerFailedError(status)

The Ray worker outlives any death of the runner: a segfault in the body ends the child, and the
worker turns its final status into an exception, as it would any error of the task.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread

from ..diagnostics.rules import Rule
from ..report.model import Report
from ..report.write import write_report
from ..supervisor.restart import RestartPolicy
from ..supervisor.runner import Runner
from ..supervisor.status import RunnerStatus, RunnerSucceeded
from ..supervisor.supervisor import Supervisor
from .errors import RunnerFailedError
from .events import RayEvent
from .payload import DEFAULT_MAX_PAYLOAD_BYTES, read_result, scratch_directory, write_call

__all__ = ["CallOptions", "call_in_runner"]

_CHILD_TARGET = "crashsight.ray.child:main"
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CallOptions:
    """The decorator's options, checked on the driver and pickled with the function to workers."""

    deadline: float | None = None
    no_progress_timeout: float | None = None
    rules: Sequence[Rule] = ()
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    events: Callable[[RayEvent], object] | None = None
    report_dir: str | None = None
    name: str | None = None
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES


async def call_in_runner(
    fn: Callable[..., object],
    args: Sequence[object],
    kwargs: Mapping[str, object],
    options: CallOptions,
) -> object:
    """Run ``fn(*args, **kwargs)`` in a supervised runner and return its value.

    Raises:
        RunnerFailedError: The runner failed (or was cancelled); carries its final status.
        PayloadTooLargeError: The arguments pickle to more than ``max_payload_bytes``.
    """
    name = options.name or str(getattr(fn, "__qualname__", "supervised"))
    context = _ray_context()
    scratch = scratch_directory()
    try:
        call_path, result_path = scratch / "call.pkl", scratch / "result.pkl"
        write_call(call_path, fn, args, kwargs, options.max_payload_bytes)
        async with Supervisor(
            deadline=options.deadline,
            no_progress_timeout=options.no_progress_timeout,
            rules=options.rules,
        ) as supervisor:
            runner = await supervisor.spawn(
                _CHILD_TARGET,
                str(call_path),
                str(result_path),
                name,
                str(options.max_payload_bytes),
                name=name,
                restart=options.restart,
            )
            status = await _follow(runner, options.events, name, context)
        if options.report_dir is not None:
            _write_report(Path(options.report_dir), name, status, len(runner.attempts), context)
        if isinstance(status, RunnerSucceeded):
            return read_result(result_path)
        raise RunnerFailedError(status, context)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _follow(
    runner: Runner,
    sink: Callable[[RayEvent], object] | None,
    name: str,
    context: Mapping[str, str],
) -> RunnerStatus:
    """Consume the runner's events (forwarding them to ``sink``) until its final status."""
    deliver = _Delivery(sink) if sink is not None else None
    async for event in runner.events():
        if deliver is not None:
            labelled = RayEvent(
                name=name,
                ray_task_id=context.get("ray_task_id"),
                worker_pid=os.getpid(),
                event=event,
            )
            # A Ray queue's put is a blocking remote call: keep it off the supervisor's loop.
            await anyio.to_thread.run_sync(deliver, labelled)
    return await runner.wait()


class _Delivery:
    """Calls the user's sink; a failing sink is reported once on stderr, then skipped.

    Telemetry must never fail the task it describes (the same policy as the runner's channel).
    """

    def __init__(self, sink: Callable[[RayEvent], object]) -> None:
        self._sink = sink
        self._broken = False

    def __call__(self, event: RayEvent) -> None:
        if self._broken:
            return
        try:
            self._sink(event)
        except Exception as exc:
            self._broken = True
            print(
                f"crashsight: the events sink raised {type(exc).__name__}: {exc}; "
                "further events of this call are dropped",
                file=sys.stderr,
            )


def _ray_context() -> dict[str, str]:
    """Where this call runs: the Ray task id and node, when running in a Ray worker."""
    context = {"ray_worker_pid": str(os.getpid())}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        runtime = ray.get_runtime_context()
        context["ray_task_id"] = runtime.get_task_id() or ""
        context["ray_node_id"] = runtime.get_node_id() or ""
        actor = runtime.get_actor_id()
        if actor:
            context["ray_actor_id"] = actor
    return {key: value for key, value in context.items() if value}


def _write_report(
    directory: Path, name: str, status: RunnerStatus, attempts: int, context: Mapping[str, str]
) -> None:
    """Write this call's report where `crashsight aggregate` will find it with its siblings."""
    unique = context.get("ray_task_id") or uuid.uuid4().hex
    stem = _UNSAFE_FILE_CHARS.sub("_", f"{name}-{unique}")
    directory.mkdir(parents=True, exist_ok=True)
    report = Report.from_status(status, attempts=attempts, context=dict(context))
    write_report(report, directory / f"{stem}.json")
