"""Markdown pieces shared by the GitHub step summary and the cross-shard aggregate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["MAX_TASK_LINES", "ReportLike", "cell", "fenced", "task_error_lines", "verdict_label"]

#: Failed-task lines shown per summary; the rest are counted.
MAX_TASK_LINES = 10


class _TaskError(Protocol):
    @property
    def task_id(self) -> str: ...
    @property
    def error(self) -> str: ...


class _Tasks(Protocol):
    @property
    def in_flight(self) -> Sequence[str]: ...
    @property
    def failed(self) -> Sequence[_TaskError]: ...


class ReportLike(Protocol):
    """What these helpers read: a full `Report`, or a leniently loaded shard report."""

    @property
    def status(self) -> str: ...
    @property
    def category(self) -> str | None: ...
    @property
    def subcategory(self) -> str | None: ...
    @property
    def summary(self) -> str: ...
    @property
    def tasks(self) -> _Tasks: ...


def verdict_label(report: ReportLike) -> str:
    """``gpu/oom``, ``unknown``, or the status when the report is not a failure."""
    if report.category is None:
        return report.status
    return report.category + (f"/{report.subcategory}" if report.subcategory else "")


def task_error_lines(report: ReportLike) -> list[str]:
    """``task: error`` for every failed task, then every task in flight when the runner died."""
    lines = [f"{task.task_id}: {task.error}" for task in report.tasks.failed]
    if report.status == "failed":
        lines.extend(f"{task_id}: {report.summary}" for task_id in report.tasks.in_flight)
    return lines


def cell(text: str) -> str:
    """Text made safe for one markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def fenced(lines: list[str]) -> str:
    """A code block that no line of ``lines`` can close early."""
    longest = max((len(line) - len(line.lstrip("`")) for line in lines), default=0)
    fence = "`" * max(3, longest + 1)
    return "\n".join([fence, *lines, fence])
