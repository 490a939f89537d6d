"""`assert_verdict`: check why a runner ended, with a failure message that needs no debugger.

The message is built here, in full, rather than left to pytest's assertion rewriting: it then
reads the same under any test runner, with ``python -O`` and with ``--assert=plain``, so this
module needs no ``pytest.register_assert_rewrite``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: workers import this package (see crashsight/__init__.py)
if TYPE_CHECKING:
    from ..supervisor.status import RunnerStatus

__all__ = ["assert_verdict", "verdict_of"]

#: Lines of the stderr tail quoted in a failure message.
_TAIL_LINES = 15


def verdict_of(status: RunnerStatus) -> str:
    """The verdict as one word: ``category/subcategory`` (or ``category``) of a failed runner,
    ``succeeded`` or ``cancelled`` otherwise."""
    if status.status == "failed":
        sub = status.subcategory
        return f"{status.category}/{sub}" if sub else status.category
    return status.status


def assert_verdict(status: RunnerStatus, expected: str) -> None:
    """Fail unless ``status`` has the ``expected`` verdict, explaining what happened instead.

    Args:
        status: A runner's final status (`RunnerFailed`, `RunnerSucceeded`, `RunnerCancelled`).
        expected: ``"gpu/oom"``, ``"python/ValueError"``, ``"unknown"``, or ``"succeeded"`` /
            ``"cancelled"`` for runners that did not fail.

    Raises:
        AssertionError: The verdict differs. The message shows expected and actual verdicts, the
            summary, the exit, the diagnostics, the termination error, the tasks in flight and
            the end of stderr.
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this function's body
    actual = verdict_of(status)
    if actual != expected:
        raise AssertionError(_explain(status, expected, actual))


def _explain(status: RunnerStatus, expected: str, actual: str) -> str:
    lines = [
        f"runner {status.name!r} (pid {status.pid}): expected verdict {expected!r}, got {actual!r}",
        f"  exit:        {status.exit.description}",
    ]
    if status.status == "failed":
        lines.append(f"  summary:     {status.summary}")
        if status.termination_error is not None:
            error = status.termination_error
            lines.append(f"  exception:   {error.summary()} (from {error.source})")
    elif status.status == "cancelled":
        lines.append(f"  reason:      {status.reason}")
    lines.append(f"  diagnostics: {len(status.diagnostics) or 'none'}")
    for found in status.diagnostics:
        evidence = ", evidence only" if found.evidence_only else ""
        lines.append(
            f"    {found.id} ({found.category}/{found.subcategory}{evidence}) "
            f"x{found.count}: {found.first_line}"
        )
    if status.tasks.in_flight:
        lines.append(f"  in flight:   {', '.join(status.tasks.in_flight)}")
    for failed in status.tasks.failed:
        lines.append(f"  task failed: {failed.task_id}: {failed.error}")
    if status.signals_sent:
        lines.append(f"  signals sent by the supervisor: {', '.join(status.signals_sent)}")
    tail = status.stderr_tail[-_TAIL_LINES:]
    shown = f"last {len(tail)} of {len(status.stderr_tail)}" if tail else "empty"
    lines.append(f"  stderr tail ({shown}):")
    lines.extend(f"    | {line}" for line in tail)
    return "\n".join(lines)
