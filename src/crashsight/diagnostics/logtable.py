"""Error records of a log and their deduplication: what `LogScanner` produces, what rows are made of.

`ErrorTable` counts every occurrence of one error (the same phase and message template) in one
`ErrorGroup`, within fixed bounds, so that 47 repeats of a template error are one row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from .logformats import normalize_message

__all__ = ["ErrorGroup", "ErrorTable", "LogRecord", "PhaseSource"]

PhaseSource = Literal["field", "marker"]

_MAX_OMITTED_KEYS = 100_000  # distinct omitted errors counted exactly up to here
_MAX_RANKS = 4096  # distinct ranks remembered per error


@dataclass
class LogRecord:
    """One error record: its first line's fields and every line that belongs to it (bounded).

    Attributes:
        lineno: 1-based line number of its first line.
        message: The message of its first line; for a bare traceback, its exception line.
        lines: Its lines, first included; a long record keeps its head and its tail.
        level: Upper-case level of a structured record; None for an unstructured line.
        phase: The phase it happened in, and ``phase_source`` how that is known.
        work_phase: The last phase declared before it that names a kind of work (see
            `crashsight.diagnostics.phases`): a wrapper phase such as ``[Main]`` is skipped.
        rank: The distributed rank whose ``[rankN]:`` prefix (torchrun's) its first line carries.
        format: Name of its `LineFormat`; None when unstructured.
        exception_line: The outermost ``Type: message`` of a traceback in it.
        traceback_complete: None without a traceback; False when the log ends inside it.
    """

    lineno: int
    message: str
    lines: list[str]
    level: str | None = None
    logger: str | None = None
    time: datetime | None = None
    phase: str | None = None
    phase_source: PhaseSource | None = None
    work_phase: str | None = None
    rank: int | None = None
    format: str | None = None
    exception_line: str | None = None
    traceback_complete: bool | None = None


@dataclass
class ErrorGroup:
    """Every occurrence of one error: the same phase and the same message template."""

    phase: str | None
    template: str
    first: LogRecord
    count: int
    last_lineno: int
    last_time: datetime | None
    samples: list[str] = field(default_factory=list)
    ranks: set[int] = field(default_factory=set)


class ErrorTable:
    """Deduplicates error records by phase and template, within fixed bounds.

    Args:
        max_groups: Distinct errors kept; later new ones are only counted (`omitted_groups`).
        max_samples: Distinct raw messages kept per error.
    """

    def __init__(self, *, max_groups: int = 500, max_samples: int = 3) -> None:
        self._max_groups, self._max_samples = max_groups, max_samples
        self._groups: dict[tuple[str | None, str], ErrorGroup] = {}
        #: The groups in order of first appearance.
        self.groups: list[ErrorGroup] = []
        self._omitted: set[int] = set()  # hashes of omitted errors' keys, up to a bound
        #: Occurrences of errors that did not get a group.
        self.omitted_occurrences = 0
        #: The last record with a traceback (kept even when its group is omitted), and its group.
        self.last_traceback: LogRecord | None = None
        self.last_traceback_group: ErrorGroup | None = None

    @property
    def omitted_groups(self) -> int:
        """Distinct errors beyond ``max_groups`` (at least this many if `omitted_is_lower_bound`)."""
        return len(self._omitted)

    @property
    def omitted_is_lower_bound(self) -> bool:
        """Whether `omitted_groups` stopped counting."""
        return len(self._omitted) >= _MAX_OMITTED_KEYS

    def add(self, record: LogRecord) -> None:
        """Count one occurrence."""
        template = normalize_message(record.message)
        if record.exception_line and record.format is not None:
            template += " | " + normalize_message(record.exception_line)
        key = (record.phase, template)
        group = self._groups.get(key)
        if group is not None:
            group.count += 1
            if record.rank is not None and len(group.ranks) < _MAX_RANKS:
                group.ranks.add(record.rank)
            group.last_lineno, group.last_time = record.lineno, record.time or group.last_time
            if len(group.samples) < self._max_samples and record.message not in group.samples:
                group.samples.append(record.message)
        elif len(self._groups) < self._max_groups:
            group = ErrorGroup(record.phase, template, record, 1, record.lineno, record.time)
            group.ranks.update(() if record.rank is None else (record.rank,))
            self._groups[key] = group
            self.groups.append(group)
            group.samples.append(record.message)
        else:
            self.omitted_occurrences += 1
            if len(self._omitted) < _MAX_OMITTED_KEYS:
                self._omitted.add(hash(key))
        if record.traceback_complete is not None:
            self.last_traceback, self.last_traceback_group = record, group
