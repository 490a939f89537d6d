"""From a job's report or log analysis to each route's answer: `JobErrors`, `JobSummary`, a page.

A report and a log analysis say the same things in different shapes; this module maps both onto
the endpoint's models, so a UI reads one shape whatever the job left behind. Every answer then
passes `finish` (or `finish_panel`): redaction with the server's `Redactor` first, then the size
`Limits`, so a cut can never split a secret into pieces the redactor would miss.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from ..diagnostics.analysis_model import AnalyzeResult, chain_links
from ..protocol import ExceptionInfo
from ..redact import Redactor
from ..report.aggregate import ShardReport, Unreadable
from ..report.analysis_text import render_text
from ..report.html import Panel
from ..report.model import Report
from ..report.panels import panel_from_analysis, panel_from_report
from .bounds import Limits, bound
from .models import ErrorEntry, JobAnalysis, JobErrors, JobSummary

__all__ = [
    "errors_from_analysis",
    "errors_from_report",
    "finish",
    "finish_panel",
    "panel_for",
    "running_errors",
    "summary_of",
]

_Answer = TypeVar("_Answer", bound=BaseModel)
_RUNNING = "running: no verdict until the job ends and writes its report"
_SUPERVISED = (
    "the supervisor's verdict on the run, read from its exit status, signal and error channel"
)
_ROW_FIELDS = set(ErrorEntry.model_fields) - {"kind"}
_ANALYSIS_FIELDS = set(JobAnalysis.model_fields)
_REPORT_STATUSES = ("succeeded", "failed", "cancelled")


def running_errors(job_id: str) -> JobErrors:
    """The answer for a job whose running marker is there and whose report is not yet."""
    return JobErrors(job_id=job_id, status="running", source="marker", summary=_RUNNING)


def errors_from_report(job_id: str, report: Report, limits: Limits) -> JobErrors:
    """The answer for a job that left a report; a succeeded run lists no errors."""
    failed = report.status != "succeeded"
    rows = [
        ErrorEntry(
            kind="diagnostic",
            category=d.category,
            subcategory=d.subcategory,
            message=d.first_line,
            signatures=[d.id],
            count=d.count,
            first_lineno=d.first_lineno,
            last_lineno=d.last_lineno,
            first_time=d.first_time.isoformat(),
            last_time=d.last_time.isoformat(),
            hint=d.hint,
        )
        for d in (report.diagnostics if failed else [])
    ]
    error = report.termination_error
    exception = (
        ExceptionInfo.model_validate(error.model_dump(exclude={"phase", "source"}))
        if error is not None
        else None
    )
    analysis = None
    if failed and report.category is not None:
        analysis = JobAnalysis(
            category=report.category,
            subcategory=report.subcategory,
            phase_kind=report.phase_kind,
            description=_describe(report, exception),
            confidence_basis=[_SUPERVISED],
            suggestions=[report.hint] if report.hint else [],
        )
    return JobErrors(
        job_id=job_id,
        status=report.status,
        source="report",
        summary=report.summary,
        errors=rows[: limits.max_errors],
        more_errors=max(len(rows) - limits.max_errors, 0),
        termination_error=exception,
        chain=chain_links(exception),
        in_child=report.in_child,
        analysis=analysis,
        blocked_in=report.blocked_in,
        stacks=report.stacks,
        process_tree=report.process_tree,
        notes=report.notes,
    )


def errors_from_analysis(job_id: str, result: AnalyzeResult) -> JobErrors:
    """The answer for a job that left only a log (the analyzer already capped the rows)."""
    traceback = result.traceback
    analysis = result.analysis
    return JobErrors(
        job_id=job_id,
        status="failed" if result.status == "errors" else "clean",
        source="log",
        summary=result.message,
        errors=[
            ErrorEntry(kind="log", **row.model_dump(include=_ROW_FIELDS)) for row in result.errors
        ],
        more_errors=result.more_distinct_errors,
        termination_error=traceback.exception if traceback is not None else None,
        chain=traceback.chain if traceback is not None else [],
        analysis=(
            JobAnalysis(**analysis.model_dump(include=_ANALYSIS_FIELDS))
            if analysis is not None
            else None
        ),
        notes=result.notes,
    )


def summary_of(
    job_id: str, updated_at: str | None, found: ShardReport | Unreadable | AnalyzeResult | None
) -> JobSummary:
    """One row of the job list: from a leniently read report, a log analysis, or a marker.

    Args:
        job_id: The job.
        updated_at: When its newest file changed; None when its files could not be located.
        found: What its report or log said; an `Unreadable` for a file that could not be used
            (its path says which: ``.json`` or ``.log``, or the bare job id when none could be
            located); None for a running job.
    """
    row: dict[str, object] = {"job_id": job_id, "updated_at": updated_at}
    if isinstance(found, ShardReport) and found.status in _REPORT_STATUSES:
        row |= found.model_dump(include={"status", "category", "subcategory", "summary"})
        row["source"] = "report"
    elif isinstance(found, ShardReport | Unreadable):
        reason = (
            found.reason if isinstance(found, Unreadable) else f"unknown status {found.status!r}"
        )
        source = {".json": "report", ".log": "log"}.get(Path(found.path).suffix)
        row |= {"status": "unreadable", "source": source, "summary": reason}
    elif isinstance(found, AnalyzeResult):
        answer = errors_from_analysis(job_id, found)
        row |= answer.model_dump(include={"status", "source", "summary"})
        if answer.analysis is not None:
            row |= answer.analysis.model_dump(include={"category", "subcategory"})
    else:
        row |= {"status": "running", "source": "marker", "summary": _RUNNING}
    return JobSummary.model_validate(row)


def panel_for(job_id: str, found: Report | AnalyzeResult | None) -> Panel:
    """The HTML panel `--html` writes, for a report, a log analysis or a running job."""
    if isinstance(found, Report):
        return panel_from_report(found)
    if isinstance(found, AnalyzeResult):
        return panel_from_analysis(found, render_text(found))
    return Panel(
        title=f"crashsight: {job_id}", status="running", verdict="running", summary=_RUNNING
    )


def finish(answer: _Answer, rows: str, redactor: Redactor, limits: Limits) -> _Answer:
    """Redact, then bound ``answer``; the cuts go to its ``truncated`` / ``truncation`` fields.

    Args:
        answer: A `JobErrors` or `JobList`.
        rows: Its list already capped by a row limit (``errors`` or ``jobs``).
        redactor: The server's redactor.
        limits: The size limits.
    """
    bounded, cuts = bound(
        redactor.value(answer.model_dump(mode="json")), limits, whole=frozenset({rows})
    )
    assert isinstance(bounded, dict)
    return type(answer).model_validate({**bounded, "truncated": bool(cuts), "truncation": cuts})


def finish_panel(panel: Panel, redactor: Redactor, limits: Limits) -> Panel:
    """Redact and bound a page; the cuts are listed among its facts.

    The rows were capped when they were read, and ``full_text`` (the copy button's text) is
    built from bounded parts, so both are left whole.
    """
    bounded, cuts = bound(
        redactor.value(panel.model_dump(mode="json")),
        limits,
        whole=frozenset({"rows", "full_text"}),
    )
    assert isinstance(bounded, dict)
    result = Panel.model_validate(bounded)
    result.facts.extend(("cut", cut) for cut in cuts)
    return result


def _describe(report: Report, exception: ExceptionInfo | None) -> str:
    """What happened, in a sentence: the matching signature's description, else the exception."""
    for d in report.diagnostics:
        if (d.category, d.subcategory) == (report.category, report.subcategory):
            return d.description
    if exception is not None:
        return f"Python raised {exception.summary()}."
    return f"The process {report.exit.description}."
