"""The JSON the error endpoint answers with: a contract with training servers' UIs.

Fields may be added, never renamed; ``schema_version`` changes only when a field changes meaning.

Shapes::

    JobErrors                        GET {prefix}/jobs/{job_id}/errors
    ├── job_id, status, source       status: running | succeeded | failed | cancelled | clean
    ├── summary                      one line, as `crashsight run` or `crashsight analyze` says it
    ├── errors[]                     ErrorEntry: deduplicated, with count, first/last line and time
    ├── more_errors                  distinct errors counted but not listed
    ├── termination_error            ExceptionInfo: frames, cause, context (nested)
    ├── chain[]                      ChainLink: the exceptions of that error, outermost first
    ├── analysis                     JobAnalysis: category, subcategory, phase, description,
    │                                confidence (+ basis), suggestions
    ├── blocked_in                   BlockedIn: where a stopped job was stuck (user's frame)
    ├── stacks[], process_tree[]     ThreadStack, ProcessInfo: every thread and process at a stop
    ├── notes[]
    └── truncated, truncation[]      what the size limits cut, one line per cut

    JobList                          GET {prefix}/jobs
    └── jobs[] JobSummary, more_jobs

    ErrorBody                        any 4xx/5xx: error (a stable tag), detail (for a human)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..diagnostics.analysis_model import ChainLink
from ..diagnostics.children import ChildProcess
from ..diagnostics.hangs import BlockedIn, ProcessInfo, ThreadStack
from ..protocol import ExceptionInfo

__all__ = [
    "SERVER_SCHEMA_VERSION",
    "ErrorBody",
    "ErrorEntry",
    "ErrorTag",
    "JobAnalysis",
    "JobErrors",
    "JobList",
    "JobStatus",
    "JobSummary",
    "Source",
]

SERVER_SCHEMA_VERSION = 1

#: ``clean``: no report, and the log records no error (finished without a report, or an empty log).
JobStatus = Literal["running", "succeeded", "failed", "cancelled", "clean"]
#: Where the answer came from: the job's crashsight report, an analysis of its log, or only its
#: running marker.
Source = Literal["report", "log", "marker"]
ErrorTag = Literal[
    "invalid_job_id",
    "unauthorized",
    "outside_folder",
    "not_found",
    "method_not_allowed",
    "unprocessable",
    "unreadable",
    "internal",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorEntry(_Model):
    """One distinct error of the job, with how often it happened."""

    kind: Literal["diagnostic", "log"] = Field(
        description="'diagnostic': a catalogue signature the supervisor matched in the run's "
        "output (from a report); 'log': one (phase, message template) of the log."
    )
    category: str
    subcategory: str | None = None
    phase: str | None = Field(default=None, description="As the log names it, e.g. 'PreTokenize'.")
    phase_kind: str | None = Field(
        default=None, description="data, initialization, training, evaluation, checkpoint, ..."
    )
    level: str | None = None
    message: str = Field(description="The first occurrence.")
    template: str | None = Field(
        default=None, description="Message with numbers, paths and ids masked (logs only)."
    )
    signatures: list[str] = Field(default_factory=list, description="Catalogue ids matched.")
    count: int = Field(ge=1)
    first_lineno: int
    last_lineno: int
    first_time: str | None = Field(default=None, description="ISO 8601, when known.")
    last_time: str | None = None
    hint: str | None = None


class JobAnalysis(_Model):
    """The verdict on the job and what to do about it."""

    category: str
    subcategory: str | None = None
    phase: str | None = None
    phase_kind: str | None = None
    description: str
    confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="How sure a log analysis is (see confidence_basis); None for a report, whose "
        "verdict the supervisor read from the exit status, signal and error channel itself.",
    )
    confidence_basis: list[str] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)


class JobErrors(_Model):
    """Why a job failed, or that it has not."""

    schema_version: int = SERVER_SCHEMA_VERSION
    job_id: str
    status: JobStatus
    source: Source
    summary: str = Field(description="One line for a human.")
    errors: list[ErrorEntry] = Field(default_factory=list)
    more_errors: int = Field(default=0, description="Distinct errors counted but not listed.")
    termination_error: ExceptionInfo | None = Field(
        default=None, description="The error that ended the job, with frames, cause and context."
    )
    chain: list[ChainLink] = Field(default_factory=list)
    in_child: ChildProcess | None = Field(
        default=None, description="The worker's child whose death explains the failure."
    )
    analysis: JobAnalysis | None = None
    blocked_in: BlockedIn | None = Field(
        default=None, description="Where a job crashsight stopped was stuck: the user's frame."
    )
    stacks: list[ThreadStack] = Field(
        default_factory=list, description="Every Python thread's stack at the stop."
    )
    process_tree: list[ProcessInfo] = Field(
        default_factory=list, description="The job's processes at the stop."
    )
    notes: list[str] = Field(default_factory=list)
    truncated: bool = Field(default=False, description="A size limit cut something.")
    truncation: list[str] = Field(default_factory=list, description="What was cut, one per line.")


class JobSummary(_Model):
    """One row of the job list."""

    job_id: str
    status: JobStatus | Literal["unreadable"]
    source: Source | None = Field(description="None when the job's files could not be located.")
    category: str | None = None
    subcategory: str | None = None
    summary: str
    updated_at: str | None = Field(description="ISO 8601 time of the newest of the job's files.")


class JobList(_Model):
    """The known jobs, most recently changed first."""

    schema_version: int = SERVER_SCHEMA_VERSION
    jobs: list[JobSummary]
    more_jobs: int = Field(default=0, description="Jobs not listed because of the row limit.")
    truncated: bool = False
    truncation: list[str] = Field(default_factory=list)


class ErrorBody(_Model):
    """Every error response: a stable tag for code, a sentence for a human."""

    error: ErrorTag
    detail: str
    job_id: str | None = None

    def response(self, status: int, headers: Mapping[str, str] | None = None) -> Response:
        """This body as a JSON response with ``status``."""
        return Response(
            self.model_dump_json(), status, headers=headers, media_type="application/json"
        )
