"""Data shapes shared by the catalogue, the collector, the classifier and the reports."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ROLES", "Diagnostic", "MessageAt", "Role", "Signature", "TimeoutKind"]

TimeoutKind = Literal["deadline", "no_progress"]
MessageAt = Literal["line", "next_line", "error_above"]

#: What a failure means for a job of many ranks: its own fault (``root_cause``), a peer's failure
#: that reached it (``consequence``), or a stop it did not cause (``collateral``).
Role = Literal["root_cause", "consequence", "collateral"]

#: The roles, strongest claim to be a job's root cause first.
ROLES: tuple[Role, ...] = ("root_cause", "consequence", "collateral")


class Signature(BaseModel):
    """One known failure text: how to recognise it and what it means.

    ``literals`` are plain substrings of which at least one occurs in every line the pattern can
    match. The collector searches for them first and runs ``pattern`` only on lines that contain
    one, which is what keeps matching fast on logs that are almost all ordinary lines.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
    category: str
    subcategory: str
    pattern: str = Field(description="Python regex; named groups become extracted fields.")
    literals: tuple[str, ...] = Field(min_length=1)
    description: str
    hint: str
    source: str = Field(description="Which library or system prints it, and since which version.")
    samples: tuple[str, ...] = Field(min_length=1, description="Real lines, verbatim.")
    evidence_only: bool = Field(
        default=False,
        description="Kept in the report as evidence, but never the verdict on its own.",
    )
    role: Role = Field(
        default="root_cause",
        description="The role of a verdict this line decides: comm failures are consequences.",
    )
    message_at: MessageAt = Field(
        default="line",
        description="Where the failure's own words are, for the summary: on the matched line, "
        "on the line after it (a Rust panic's message), or on the nearest 'SomethingError: ...' "
        "line above it (Node.js prints its version after the uncaught error).",
    )

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """The compiled ``pattern``."""
        return re.compile(self.pattern)


class Diagnostic(BaseModel):
    """Every line that matched one signature, deduplicated: counted, with the first and last."""

    model_config = ConfigDict(extra="forbid")

    id: str
    category: str
    subcategory: str
    count: int = Field(ge=1)
    first_line: str
    last_line: str
    first_lineno: int = Field(ge=1, description="1-based line number in the collected stream.")
    last_lineno: int = Field(ge=1)
    first_time: datetime
    last_time: datetime
    fields: dict[str, str] = Field(
        default_factory=dict, description="Named groups extracted from the first matching line."
    )
    description: str
    hint: str
    evidence_only: bool = False
    role: Role = "root_cause"

    @classmethod
    def of(
        cls,
        signature: Signature,
        *,
        first: tuple[str, int, datetime],
        last: tuple[str, int, datetime],
        count: int,
        fields: dict[str, str],
        decisive: bool = True,
    ) -> Diagnostic:
        """The diagnostic of ``signature`` from its first and last (line, line number, time).

        ``decisive=False`` (every line was a warning or a retry) makes it evidence only.
        """
        return cls(
            id=signature.id,
            category=signature.category,
            subcategory=signature.subcategory,
            count=count,
            first_line=first[0],
            last_line=last[0],
            first_lineno=first[1],
            last_lineno=last[1],
            first_time=first[2],
            last_time=last[2],
            fields=fields,
            description=signature.description,
            hint=signature.hint,
            evidence_only=signature.evidence_only or not decisive,
            role=signature.role,
        )
