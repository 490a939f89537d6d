"""What training-log lines look like: structured formats, phase markers, and message templates.

Data for `crashsight.diagnostics.logfile`: a new log format or phase marker is one more row here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "LINE_FORMATS",
    "PHASE_MARKERS",
    "TIME_PATTERN",
    "LineFormat",
    "PhaseMarker",
    "normalize_message",
]


@dataclass(frozen=True)
class LineFormat:
    """A structured line: groups ``level``, ``message``, and maybe ``time``, ``logger``, ``phase``."""

    name: str
    pattern: re.Pattern[str]
    example: str


@dataclass(frozen=True)
class PhaseMarker:
    """Text that starts a phase (None: the ``phase`` group names it); every match holds a literal."""

    phase: str | None
    pattern: re.Pattern[str]
    literals: tuple[str, ...]


TIME_PATTERN = r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?"
# fmt: off
LINE_FORMATS: tuple[LineFormat, ...] = (
    LineFormat("bracketed", re.compile(rf"^\[(?P<time>{TIME_PATTERN})\] \[(?P<logger>[^\]]*)\] \[(?P<level>[A-Za-z]+)\](?: \[(?P<phase>[A-Za-z][\w.-]*)\])?:? ?(?P<message>.*)$"),
               "[2025-12-10 03:58:22] [__main__] [ERROR] [SFT] message"),
    LineFormat("logging", re.compile(rf"^(?P<time>{TIME_PATTERN}) - (?P<logger>\S+) - (?P<level>[A-Z]+) - (?P<message>.*)$"),
               "2025-12-10 03:58:22,123 - name - ERROR - message"),
    LineFormat("loguru", re.compile(rf"^(?P<time>{TIME_PATTERN}) \| (?P<level>[A-Z]+) *\| (?P<logger>\S+) - (?P<message>.*)$"),
               "2025-12-10 03:58:22.123 | ERROR    | __main__:main:12 - message"),
    LineFormat("basic", re.compile(r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL):(?P<logger>[^:\s]*):(?P<message>.*)$"),
               "ERROR:root:message"),
)

PHASE_MARKERS: tuple[PhaseMarker, ...] = (
    PhaseMarker("eval", re.compile(r"Running [Ee]valuation|\bEvaluating\b|[Ss]tarting evaluation"),
                ("Running Evaluation", "Running evaluation", "Evaluating", "tarting evaluation")),
    PhaseMarker("train", re.compile(r"Running training|[Ss]tarting training|\bEpoch[ :]+\d+"),
                ("Running training", "tarting training", "Epoch")),
    PhaseMarker("PreTokenize", re.compile(r"\b[Pp]re-?[Tt]okeniz"),
                ("PreTokeniz", "Pretokeniz", "pretokeniz", "Pre-tokeniz", "pre-tokeniz", "Pre-Tokeniz")),
    PhaseMarker(None, re.compile(r"\b(?:[Pp]hase|[Ss]tage)[=:] ?(?P<phase>[A-Za-z][\w-]*)"),
                ("phase=", "phase:", "Phase=", "Phase:", "stage=", "stage:", "Stage=", "Stage:")),
    PhaseMarker(None, re.compile(r"^\s*[=*#-]{2,} *(?P<phase>(?i:train(?:ing)?|eval(?:uation)?|validation|test(?:ing)?)) *[=*#-]*\s*$"),
                ("==", "**", "##", "--")),
)
# fmt: on

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+"), "<url>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[\w.~@+-]*[/\\])+[\w.~@+-]*"), "<path>"),
    (re.compile(r"\b[0-9a-fA-F]{12,}\b"), "<hex>"),
    # Request ids and short hashes: a token of 6+ characters mixing digits and letters (a3f9c2e,
    # Root=1-64f34d30-2a1f...), so repeats that differ only there are counted together.
    (re.compile(r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{6,}\b"), "<id>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def normalize_message(message: str) -> str:
    """Return the template of a message: UUIDs, URLs, hex, paths and numbers masked.

    Two errors that differ only in a file name, a step number or an address are one error to a
    reader, so they share a template and are counted together.
    """
    for pattern, mask in _MASKS:
        message = pattern.sub(mask, message)
    return message.strip()
