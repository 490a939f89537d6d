"""When a runner's failure began: the first evidence of it, timed as it arrived.

A job of many ranks is explained by which rank failed first (`crashsight.diagnostics.jobverdict`),
so each failed status carries ``first_error_at``: the earliest of the first decisive diagnostic
line (the collector stamps each line when it arrives), the first traceback or fatal-error line on
stderr, the structured exception's arrival on the channel, and the death itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from ..diagnostics.models import Diagnostic

__all__ = ["TracebackClock", "first_error_at"]


class TracebackClock:
    """A collector line sink that remembers when the first traceback or fatal error began.

    It is a `crashsight.diagnostics.collector.TriggeredSink` that never asks for more lines, so
    it costs one call per trigger line and nothing on ordinary output.
    """

    triggers = ("Traceback (most recent call last):", "Fatal Python error: ")
    active = False

    def __init__(self) -> None:
        self.first: datetime | None = None

    def __call__(self, line: str) -> None:
        """Stamp the first trigger line; later ones change nothing."""
        if self.first is None:
            self.first = datetime.now(UTC)


def first_error_at(diagnostics: Iterable[Diagnostic], *moments: datetime | None) -> datetime | None:
    """The earliest of the decisive diagnostics' first lines and the given moments (None skipped).

    Evidence-only diagnostics (warnings, retries the program survived) are not failure evidence.
    """
    times = [d.first_time for d in diagnostics if not d.evidence_only]
    times += [moment for moment in moments if moment is not None]
    return min(times, default=None)
