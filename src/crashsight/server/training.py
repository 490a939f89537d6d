"""The training-server error contract: the JSON an existing error-trace UI is written against.

Training servers that traced errors themselves defined this answer for
``GET /api/training/{job_id}/errors``; `crashsight.server.training_app` serves it so such a UI
works unchanged when crashsight replaces the home-made tracer::

    TrainingErrors
    ├── job_id
    ├── status          failed | cancelled | completed | running
    ├── error_summary   the one-line verdict; None while running or after a clean run
    ├── errors[]        TrainingError: timestamp, level (error | warning), phase, message,
    │                   dedupe_key (stable across calls and restarts), count
    ├── traceback       raw, frames[{file, line, function, code}], exception_type, exception_message
    ├── analysis        error_type, error_phase, description, confidence (high | medium | low),
    │                   suggestions
    └── crashsight      crashsight's own answer (`JobErrors`): category, subcategory, phase kind,
                        signatures, chain, notes ... under one namespaced key

The contract's fields are exactly the UI's; crashsight's richer view never changes them.
``error_type`` comes from the verdict and the phase kind (`ERROR_TYPES`), ``error_phase`` from the
phase kind (`CONTRACT_PHASES`: the UI knows four phases, so data preparation counts as
initialization and checkpointing or export as training), ``confidence`` from crashsight's number
(`CONFIDENCE_LEVELS`).
"""

from __future__ import annotations

import fnmatch
import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..protocol import ExceptionInfo
from ..report.traceback_text import python_traceback
from .models import ErrorEntry, JobErrors

__all__ = [
    "CONFIDENCE_LEVELS",
    "CONTRACT_PHASES",
    "ERROR_TYPES",
    "TrainingAnalysis",
    "TrainingError",
    "TrainingErrors",
    "TrainingFrame",
    "TrainingTraceback",
    "training_errors",
]

ErrorType = Literal["oom_eval", "oom_training", "timeout", "cuda_error", "config_error", "unknown"]
ContractPhase = Literal["evaluation", "training", "monitoring", "initialization"]

#: (verdict glob, phase kind or None for any, error type): the first match wins.
ERROR_TYPES: tuple[tuple[str, str | None, ErrorType], ...] = (
    ("gpu/oom", "evaluation", "oom_eval"),
    ("gpu/oom", None, "oom_training"),
    ("timeout/*", None, "timeout"),
    ("gpu/*", None, "cuda_error"),
    ("config/*", None, "config_error"),
)
#: crashsight's phase kinds as the contract's four phases.
CONTRACT_PHASES: dict[str, ContractPhase] = {
    "evaluation": "evaluation",
    "training": "training",
    "checkpoint": "training",
    "export": "training",
    "data": "initialization",
    "initialization": "initialization",
    "monitoring": "monitoring",
}
#: The lowest crashsight confidence of each contract level; a report's verdict (read by the
#: supervisor from the exit, the signal and the error channel, no guess) is high.
CONFIDENCE_LEVELS: tuple[tuple[float, Literal["high", "medium", "low"]], ...] = (
    (0.75, "high"),
    (0.5, "medium"),
    (0.0, "low"),
)
_STATUSES: dict[str, Literal["failed", "cancelled", "completed", "running"]] = {
    "failed": "failed",
    "cancelled": "cancelled",
    "succeeded": "completed",
    "clean": "completed",
    "running": "running",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainingError(_Model):
    """One distinct error of the job."""

    timestamp: str | None = Field(description="ISO 8601 time of its first occurrence, if known.")
    level: Literal["error", "warning"]
    phase: str | None
    message: str
    dedupe_key: str = Field(description="Stable across calls and server restarts.")
    count: int = Field(ge=1)


class TrainingFrame(_Model):
    """One frame, innermost last."""

    file: str
    line: int | None
    function: str
    code: str | None


class TrainingTraceback(_Model):
    """The error that ended the job."""

    raw: str = Field(description="As Python prints it, the exception chain included.")
    frames: list[TrainingFrame]
    exception_type: str
    exception_message: str


class TrainingAnalysis(_Model):
    """Why the job failed and what to do."""

    error_type: ErrorType
    error_phase: ContractPhase | None
    description: str
    confidence: Literal["high", "medium", "low"]
    suggestions: list[str]


class TrainingErrors(_Model):
    """The contract's answer, with crashsight's own under ``crashsight``."""

    job_id: str
    status: Literal["failed", "cancelled", "completed", "running"]
    error_summary: str | None
    errors: list[TrainingError]
    traceback: TrainingTraceback | None
    analysis: TrainingAnalysis | None
    crashsight: JobErrors


def training_errors(answer: JobErrors) -> TrainingErrors:
    """Map crashsight's answer (already redacted and bounded) onto the contract."""
    status = _STATUSES[answer.status]
    analysis = answer.analysis
    contract_analysis = None
    if analysis is not None:
        contract_analysis = TrainingAnalysis(
            error_type=error_type(analysis.category, analysis.subcategory, analysis.phase_kind),
            error_phase=CONTRACT_PHASES.get(analysis.phase_kind or ""),
            description=analysis.description,
            confidence=confidence_level(analysis.confidence),
            suggestions=analysis.suggestions,
        )
    return TrainingErrors(
        job_id=answer.job_id,
        status=status,
        error_summary=answer.summary if status in ("failed", "cancelled") else None,
        errors=[_error(entry) for entry in answer.errors],
        traceback=_traceback(answer.termination_error),
        analysis=contract_analysis,
        crashsight=answer,
    )


def error_type(category: str, subcategory: str | None, phase_kind: str | None) -> ErrorType:
    """The contract's error type of a verdict (see `ERROR_TYPES`)."""
    verdict = f"{category}/{subcategory or ''}"
    for pattern, kind, name in ERROR_TYPES:
        if fnmatch.fnmatchcase(verdict, pattern) and kind in (None, phase_kind):
            return name
    return "unknown"


def confidence_level(confidence: float | None) -> Literal["high", "medium", "low"]:
    """The contract's confidence level of crashsight's number (None: a supervised report)."""
    if confidence is None:
        return "high"
    return next(level for floor, level in CONFIDENCE_LEVELS if confidence >= floor)


def _error(entry: ErrorEntry) -> TrainingError:
    phase = CONTRACT_PHASES.get(entry.phase_kind or "") or entry.phase
    identity = entry.template or (entry.signatures[0] if entry.signatures else entry.message)
    key = "\x1f".join((entry.kind, entry.phase or "", identity))
    return TrainingError(
        timestamp=entry.first_time,
        level="warning" if (entry.level or "").upper().startswith("WARN") else "error",
        phase=phase,
        message=entry.message,
        dedupe_key=hashlib.sha256(key.encode()).hexdigest()[:16],
        count=entry.count,
    )


def _traceback(exception: ExceptionInfo | None) -> TrainingTraceback | None:
    if exception is None:
        return None
    return TrainingTraceback(
        raw="\n".join(python_traceback(exception)),
        frames=[TrainingFrame(**frame.model_dump()) for frame in exception.frames],
        exception_type=exception.type,
        exception_message=exception.message,
    )
