"""The JSON result of ``crashsight analyze``: what a renderer or the server reads.

Schema (``schema_version`` 1; fields may be added, never renamed)::

    AnalyzeResult
    ├── status       errors | clean | empty | binary | missing | unreadable
    ├── message      one line for a human
    ├── stats        bytes, lines, nul_bytes, seconds
    ├── truncated    the file ends mid-line or inside a traceback
    ├── errors[]     ErrorRow: one per (phase, message template), in order of first appearance,
    │                with count, first/last line and time, samples, signatures, verdict, and the
    │                first occurrence's traceback (TracebackInfo)
    ├── more_distinct_errors, more_distinct_errors_is_lower_bound, more_error_occurrences
    ├── traceback    TracebackInfo of the last traceback: exception (frames, cause, context) + chain
    ├── analysis     Analysis: verdict, phase, description, confidence and its basis, suggestions
    └── notes[]
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..protocol import ExceptionInfo
from ..version import crashsight_version
from .logtable import PhaseSource

__all__ = [
    "ANALYZE_SCHEMA_VERSION",
    "Analysis",
    "AnalyzeResult",
    "ChainLink",
    "ErrorRow",
    "Evidence",
    "LogStats",
    "Relation",
    "Status",
    "TracebackInfo",
    "chain_links",
]

ANALYZE_SCHEMA_VERSION = 1
Status = Literal["errors", "clean", "empty", "binary", "missing", "unreadable"]
Evidence = Literal["signature", "traceback", "level", "text"]
Relation = Literal["raised", "cause", "context"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChainLink(_Model):
    """One exception of a traceback's chain, outermost first."""

    relation: Relation = Field(
        description="'raised': the outermost exception; 'cause' / 'context': this one was the "
        "__cause__ / __context__ of the link before it."
    )
    type: str
    message: str
    frames: int = Field(description="Number of frames in its traceback.")


class TracebackInfo(_Model):
    """A Python traceback found in the log."""

    lineno: int = Field(description="Line of the record that holds it.")
    phase: str | None = None
    complete: bool = Field(description="False when the log ends inside it.")
    exception: ExceptionInfo | None = Field(
        default=None, description="Outermost exception, with frames, cause and context."
    )
    chain: list[ChainLink] = Field(default_factory=list)


class ErrorRow(_Model):
    """One distinct error: every record with the same phase and message template."""

    phase: str | None = Field(description="As the log names it, e.g. 'PreTokenize'.")
    phase_kind: str | None = Field(
        description="The kind of work it happened in: data, initialization, training, "
        "evaluation, checkpoint, export or monitoring (see crashsight.diagnostics.phases)."
    )
    phase_kind_basis: str | None = Field(
        default=None,
        description="How the kind is known: the phase field, a traceback frame, "
        "the last work phase before it, or the message's words.",
    )
    phase_kind_confidence: float = Field(default=0.8, ge=0, le=1)
    phase_source: PhaseSource | None = None
    rank: int | None = Field(
        default=None,
        description="The rank of its first occurrence, from torchrun's [rankN]: prefix.",
    )
    ranks: list[int] = Field(default_factory=list, description="Every rank it happened on.")
    level: str | None = Field(description="Log level; None for an unstructured line.")
    logger: str | None = None
    message: str = Field(description="First occurrence's message.")
    template: str = Field(description="Message with numbers, hex, paths, URLs, UUIDs masked.")
    count: int = Field(ge=1)
    first_lineno: int
    last_lineno: int
    first_time: str | None = Field(description="Timestamp as ISO 8601, when the log has one.")
    last_time: str | None
    samples: list[str] = Field(description="Up to 3 distinct raw messages.")
    lines: list[str] = Field(description="The first occurrence's lines (bounded).")
    signatures: list[str] = Field(description="Catalogue ids matched by the first occurrence.")
    traceback: TracebackInfo | None = None
    category: str
    subcategory: str | None = None
    hint: str | None = None


class Analysis(_Model):
    """Why the run failed: the verdict on the whole log, in the phase where it happened."""

    category: str
    subcategory: str | None = None
    phase: str | None = None
    phase_kind: str | None = None
    rank: int | None = None
    summary: str = Field(description="One line: verdict, phase, evidence.")
    description: str
    confidence: float = Field(ge=0, le=1)
    confidence_basis: list[str]
    suggestions: list[str]
    evidence: str | None = None
    error_index: int | None = Field(default=None, description="Index of the row in errors.")
    rule: str = Field(description="Which classification rule decided.")


class LogStats(_Model):
    """How much was read."""

    bytes: int
    lines: int
    nul_bytes: int
    seconds: float


class AnalyzeResult(_Model):
    """Everything ``crashsight analyze`` found in one log file."""

    schema_version: int = ANALYZE_SCHEMA_VERSION
    crashsight_version: str = Field(default_factory=crashsight_version)
    file: str
    status: Status
    message: str
    stats: LogStats
    truncated: bool = False
    errors: list[ErrorRow] = Field(default_factory=list)
    more_distinct_errors: int = 0
    more_distinct_errors_is_lower_bound: bool = False
    more_error_occurrences: int = 0
    traceback: TracebackInfo | None = None
    analysis: Analysis | None = None
    notes: list[str] = Field(default_factory=list)


_RAISED: Relation = "raised"
_CAUSE: Relation = "cause"
_CONTEXT: Relation = "context"


def chain_links(exception: ExceptionInfo | None) -> list[ChainLink]:
    """The exceptions linked by ``raise ... from`` (or implicitly), outermost first."""
    chain: list[ChainLink] = []
    link, relation = exception, _RAISED
    while link is not None:
        chain.append(
            ChainLink(
                relation=relation, type=link.type, message=link.message, frames=len(link.frames)
            )
        )
        relation = _CAUSE if link.cause else _CONTEXT
        link = link.cause or link.context
    return chain
