"""The errors a supervised Ray task raises on the driver.

::

    CrashsightError (crashsight.errors)
    ├── RunnerFailedError     the task's runner did not succeed; carries its whole final status
    └── PayloadTooLargeError  the pickled arguments or return value are over the size limit

Both travel from the Ray worker to the driver by pickle, as every exception a Ray task raises
does. Ray wraps them: ``ray.get`` raises ``RayTaskError(RunnerFailedError)``, an instance of both
classes whose unknown attributes are read from the original, so ``except RunnerFailedError`` and
``exc.status`` work on the driver.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import TypeAdapter

from ..diagnostics.hangs import BlockedIn, ThreadStack
from ..diagnostics.models import Diagnostic
from ..errors import CrashsightError
from ..report.model import Report
from ..report.terminal import render_verdict
from ..supervisor.status import RunnerCancelled, RunnerFailed

__all__ = ["PayloadTooLargeError", "RunnerFailedError"]

#: The final statuses of a runner that did not succeed.
_Outcome = RunnerFailed | RunnerCancelled
_OUTCOME = TypeAdapter[_Outcome](_Outcome)


class RunnerFailedError(CrashsightError):
    """Raised by a supervised Ray task or actor method when its runner failed or was cancelled.

    The message is the verdict block `crashsight run` prints: its first line is the one-line
    verdict (``crashsight: crash/segfault: Fatal Python error: Segmentation fault``), then the
    exit, evidence, hint, failing frame and tasks in flight.

    Args:
        status: The runner's final status (or its JSON, which is how the error unpickles).
        context: Where it ran: Ray task id, worker pid and node, as strings.

    Attributes:
        status: The whole `RunnerFailed` (or `RunnerCancelled` when the Ray task was cancelled):
            category, summary, diagnostics, exit, termination error, stacks and ``blocked_in``
            after a watchdog's stop, tasks in flight.
        context: Where it ran.
    """

    def __init__(self, status: _Outcome | str, context: Mapping[str, str] | None = None) -> None:
        if isinstance(status, str):
            status = _OUTCOME.validate_json(status)
        self.status: _Outcome = status
        self.context = dict(context or {})
        report = Report.from_status(status, attempts=status.attempt, context=self.context)
        super().__init__(render_verdict(report))

    def __reduce__(self) -> tuple[type[RunnerFailedError], tuple[str, dict[str, str]]]:
        # The status goes as JSON: the driver rebuilds it with its own models.
        return (type(self), (self.status.model_dump_json(), self.context))

    @property
    def category(self) -> str:
        """``crash``, ``memory``, ``timeout``, ... (``cancelled`` for a cancelled runner)."""
        return self.status.category if isinstance(self.status, RunnerFailed) else "cancelled"

    @property
    def subcategory(self) -> str | None:
        """``segfault``, ``memory_error``, ``deadline``, ..."""
        return self.status.subcategory if isinstance(self.status, RunnerFailed) else None

    @property
    def summary(self) -> str:
        """The one-line verdict, without the ``crashsight:`` label."""
        status = self.status
        return status.summary if isinstance(status, RunnerFailed) else f"cancelled: {status.reason}"

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """The deduplicated catalogue matches from the runner's stderr."""
        return self.status.diagnostics

    @property
    def stacks(self) -> list[ThreadStack]:
        """Every Python thread's stack at a stop crashsight made (a deadline, no progress)."""
        return self.status.stacks

    @property
    def blocked_in(self) -> BlockedIn | None:
        """The user's innermost frame in the stuck thread when a watchdog stopped the runner."""
        return self.status.blocked_in

    @property
    def in_flight(self) -> list[str]:
        """Tasks (`crashsight.runner.task`) that were running when the runner died."""
        return self.status.tasks.in_flight


class PayloadTooLargeError(CrashsightError):
    """Raised when a supervised call's pickled arguments or return value exceed the size limit.

    The limit is ``max_payload_bytes`` of `crashsight.ray.supervised`. The task body runs outside
    Ray, so it cannot fetch an ``ObjectRef`` itself: large data is better passed as a path or URL
    and loaded inside the body.
    """
