"""Training logs read back as error records: a streaming record parser, phases and deduplication.

``crashsight analyze`` explains failures that only left a log file behind::

    file ──chunks──▶ LogScanner ──LogRecord──▶ ErrorTable ──ErrorGroup──▶ analysis.analyze_file

What is recognised (tables, so a format or a marker is one more row): the structured lines of
`logformats.LINE_FORMATS`, whose following unstructured lines continue them (multi-line messages,
``logger.exception`` tracebacks); as errors, structured records at `ERROR_LEVELS`, lines a catalogue
signature matches (the `CATALOGUE` and `match_line` of ``crashsight run``), Python tracebacks with
their chains, and unstructured lines with the word ERROR/CRITICAL/FATAL or an exception line
(``ValueError: ...``); as the phase of a record, its ``[PHASE]`` field, else the latest line before
it that declares one by its field or a `logformats.PHASE_MARKERS` text.

Speed: almost no line of a training log is an error, so no Python code runs per line unless it has
to. Each chunk, cut at its last newline, gets one pass of the collector's Rust prefilter for error
literals; a chunk with one is bisected with the same check down to the lines holding one, and only
those are parsed. The phase at such a line is found by searching backwards (`str.rfind`) for the
nearest declaration, which in a structured log is the line just above.

Memory: one chunk, one partial line of at most ``max_line_bytes``, and a byte budget per record.
NUL bytes (a log preallocated or cut by a crash) are dropped and counted.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from datetime import datetime

from .catalogue import CATALOGUE, match_line
from .logformats import (
    LINE_FORMATS,
    PHASE_MARKERS,
    TIME_PATTERN,
    LineFormat,
)
from .logtable import LogRecord, PhaseSource
from .models import Signature
from .phases import phase_kind
from .prefilter import build_prefilter, minimal_needles

__all__ = ["ERROR_LEVELS", "RANK_PREFIX", "LogScanner"]

#: Levels whose records are errors whatever their text says.
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL", "FATAL"})
_MAX_CONTINUATION = 2000  # lines after a record's first that can still continue it
_MAX_LINE_CHARS = 4096  # a longer line keeps its head: enough for any message worth reading
_MAX_MESSAGE_LINES = 20  # lines after a traceback's exception line taken as more of its message
_DECLARATION_TRIES = 16  # lines a backward phase search verifies per literal, at most
_WORK_DECLARATION_TRIES = 64  # the same, looking past wrapper phases for a kind of work
_LEAF_CHARS = 4096  # below this many characters, bisection checks line by line

#: The prefix torchrun puts on each line of a rank's output: ``[rank3]:`` (torch >= 2.2, from
#: torch/distributed/elastic/multiprocessing/api.py's log line prefix) or ``[default3]:`` (its
#: older ``{role}{local_rank}`` form).
RANK_PREFIX = re.compile(r"^\[(?:rank|default)(?P<rank>\d+)\]:\s?")


_HEADER = re.compile(r"(?:Exception Group )?Traceback \(most recent call last\):\s*$")
_UNSTRUCTURED_ERROR = re.compile(
    r"\b(?:ERROR|CRITICAL|FATAL)\b|(?:^|[\s:])[A-Za-z_][\w.]*(?:Error|Exception): "
)
_ERROR_LITERALS = ("ERROR", "CRITICAL", "FATAL", "Error: ", "Exception: ", "Traceback (most rec")
_LEADING_TIME = re.compile(rf"^\[?({TIME_PATTERN})")
_FIELD_LITERAL = "] ["  # every bracketed line with a [PHASE] field holds it


class _Lines:
    """A record's lines within a byte budget: the head, then a rolling tail."""

    def __init__(self, first: str, half_budget: int = 16 * 1024) -> None:
        self.head, self.tail, self._half = [first], deque[str](), half_budget
        self._head_size, self._tail_size = len(first), 0

    def add(self, line: str) -> None:
        if not self.tail and self._head_size + len(line) <= self._half:
            self.head.append(line)
            self._head_size += len(line)
            return
        self.tail.append(line)
        self._tail_size += len(line)
        while len(self.tail) > 1 and self._tail_size > self._half:
            self._tail_size -= len(self.tail.popleft())


class _TracebackTracker:
    """Follows a traceback line by line to tell where it ends; `parse_traceback` parses it later."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.state = "frames"  # then "message", "gap" (blank after it) or "chain" (a link text)
        self.exception_line: str | None = None
        self._message_lines = 0

    @property
    def complete(self) -> bool:
        return self.exception_line is not None and self.state != "frames"

    def belongs(self, line: str, candidate: bool) -> bool:
        """Whether ``line`` continues the traceback; ``candidate``: it holds an error literal."""
        text = line[len(self.prefix) :] if self.prefix and line.startswith(self.prefix) else line
        indented, blank = text[:1] in (" ", "\t"), not text.strip()
        if self.state == "frames":
            if not (blank or indented):
                self.exception_line, self.state = text.strip(), "message"
            return True
        if _HEADER.match(text):
            self.state = "frames" if self.state == "chain" else self.state
            return self.state == "frames"
        if blank:
            self.state = "chain" if self.state == "chain" else "gap"
            return True
        if self.state != "message":
            self.state = "chain" if "above exception" in text else self.state
            return self.state == "chain"
        if indented:  # exception-group boxes and indented notes
            return True
        self._message_lines += 1
        return not candidate and self._message_lines <= _MAX_MESSAGE_LINES


class _OpenRecord:
    """A record whose end is not known yet."""

    def __init__(self, record: LogRecord, tracker: _TracebackTracker | None) -> None:
        self.record = record
        self.tracker = tracker
        self.lines = _Lines(record.lines[0])
        self.continued = 0

    def belongs(self, line: str, candidate: bool) -> bool:
        """Add ``line`` if it continues this record; False closes the record before it."""
        if self.continued >= _MAX_CONTINUATION or _structured(line) is not None:
            return False
        if self.record.format is None:  # unstructured: only a traceback spans lines
            if self.tracker is None or not self.tracker.belongs(line, candidate):
                return False
        elif self.tracker is not None and self.tracker.complete and _HEADER.search(line):
            self.tracker = _traceback_tracker(line) or self.tracker
        elif self.tracker is not None:
            self.tracker.belongs(line, candidate)
        else:
            self.tracker = _traceback_tracker(line)
        self.lines.add(line)
        self.continued += 1
        return True

    def finish(self) -> LogRecord:
        record = self.record
        record.lines = [*self.lines.head, *self.lines.tail]
        if self.tracker is not None:
            record.exception_line = self.tracker.exception_line
            record.traceback_complete = self.tracker.complete
            if record.format is None:
                record.message = self.tracker.exception_line or record.message
        return record


def _structured(line: str) -> tuple[LineFormat, re.Match[str]] | None:
    for line_format in LINE_FORMATS:
        found = line_format.pattern.match(line)
        if found is not None:
            return line_format, found
    return None


def _traceback_tracker(line: str) -> _TracebackTracker | None:
    header = _HEADER.search(line) if "Traceback (most" in line else None
    prefix = line[: header.start()] if header else ""
    if header is None or prefix.rstrip().endswith("|"):  # inside an exception group's box
        return None
    return _TracebackTracker(prefix)


def _time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace(",", ".")) if text else None
    except ValueError:
        return None


def _visible(line: str) -> str:
    """What a terminal shows of a line: the text after its last carriage return (progress bars)."""
    line = line.rstrip("\r")
    return line.rsplit("\r", 1)[-1][:_MAX_LINE_CHARS] if "\r" in line else line[:_MAX_LINE_CHARS]


class LogScanner:
    """Turns a log's bytes, fed chunk by chunk, into error `LogRecord` objects in order.

    Args:
        signatures: The catalogue whose matches make a line an error record.
        max_line_bytes: A longer line is cut there, and the rest of it skipped, so that a file
            without newlines cannot grow memory.
    """

    def __init__(
        self, signatures: Sequence[Signature] = CATALOGUE, *, max_line_bytes: int = 1 << 20
    ) -> None:
        self._signatures = tuple(signatures)
        literals = [lit for sig in self._signatures for lit in sig.literals]
        needles = minimal_needles(s.encode() for s in (*literals, *_ERROR_LITERALS))
        self._errors = build_prefilter(needles)
        marker_literals = tuple(lit for marker in PHASE_MARKERS for lit in marker.literals)
        self._markers = build_prefilter(tuple(lit.encode() for lit in marker_literals))
        self._decl_literals = (_FIELD_LITERAL, *marker_literals)
        self._max_line = max_line_bytes
        self._partial = bytearray()
        self._skipping = False  # dropping the rest of a line longer than max_line_bytes
        self._open: _OpenRecord | None = None
        self._phase: tuple[str, PhaseSource] | None = None
        self._work_phase: str | None = None
        self._cursor = (0, 0)  # (position, lines before it) in the current region
        #: Complete lines so far (a last line without a newline counts after `close`).
        self.lines_seen = 0
        #: Bytes fed so far, NUL bytes included.
        self.bytes_seen = 0
        #: NUL bytes dropped.
        self.nul_bytes = 0
        #: Whether the data ended without a final newline (seen by `close`).
        self.ended_mid_line = False

    def feed(self, data: bytes) -> list[LogRecord]:
        """Consume the next chunk; return the records it completed, in order."""
        self.bytes_seen += len(data)
        if b"\0" in data:
            self.nul_bytes += data.count(b"\0")
            data = data.replace(b"\0", b"")
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return []
            data, self._skipping = data[newline:], False
        cut = data.rfind(b"\n")
        if cut < 0:
            room = max(self._max_line - len(self._partial), 0)
            self._partial += data[:room]
            self._skipping = len(data) > room
            return []
        region = bytes(self._partial) + data[: cut + 1] if self._partial else data[: cut + 1]
        rest = data[cut + 1 :]
        self._partial[:] = rest[: self._max_line]
        self._skipping = len(rest) > self._max_line
        return self._scan(region.decode("utf-8", "replace"))

    def close(self) -> list[LogRecord]:
        """Flush the last line and any open record; return the records that completes."""
        records: list[LogRecord] = []
        if self._partial or self._skipping:
            self.ended_mid_line = True
            records = self._scan(self._partial.decode("utf-8", "replace") + "\n")
            self._partial.clear()
        if self._open is not None:
            records.append(self._open.finish())
            self._open = None
        return records

    def _scan(self, text: str) -> list[LogRecord]:
        """Find the error records in ``text``, a run of complete lines."""
        out: list[LogRecord] = []
        self._cursor = (0, self.lines_seen)
        candidates = self._candidates(text)
        marked = set(candidates)
        markers = self._markers is not None and self._markers.found_in(text)
        pos = self._continue(text, 0, marked, out) if self._open is not None else 0
        for start in candidates:
            if start < pos:
                continue
            self._update_phase(text, pos, start, markers)
            end = text.find("\n", start)
            self._open = self._start(_visible(text[start:end]), self._lineno(text, start))
            pos = self._continue(text, end + 1, marked, out) if self._open else end + 1
        self._update_phase(text, pos, len(text), markers)
        self.lines_seen = self._lineno(text, len(text)) - 1
        return out

    def _lineno(self, text: str, pos: int) -> int:
        """1-based line number of the line starting at ``pos``; positions only grow."""
        start, before = self._cursor
        before += text.count("\n", start, pos)
        self._cursor = (pos, before)
        return before + 1

    def _candidates(self, text: str) -> list[int]:
        """Starts of the lines holding an error literal, by bisection with the Rust prefilter."""
        check = self._errors
        if check is None or not check.found_in(text):
            return []
        found: list[int] = []
        stack = [(0, len(text))]
        while stack:
            lo, hi = stack.pop()
            mid = text.rfind("\n", lo, (lo + hi) // 2) + 1
            if hi - lo > _LEAF_CHARS and lo < mid < hi:
                halves = ((mid, hi), (lo, mid))
                stack.extend(h for h in halves if check.found_in(text[h[0] : h[1]]))
                continue
            while lo < hi:
                end = text.find("\n", lo, hi) + 1 or hi
                if check.found_in(text[lo:end]):
                    found.append(lo)
                lo = end
        return sorted(found)

    def _continue(self, text: str, pos: int, marked: set[int], out: list[LogRecord]) -> int:
        """Add the lines from ``pos`` to the open record until one does not belong to it."""
        assert self._open is not None
        while pos < len(text):
            end = text.find("\n", pos)
            if not self._open.belongs(_visible(text[pos:end]), pos in marked):
                out.append(self._open.finish())
                self._open = None
                return pos
            pos = end + 1
        return pos

    def _start(self, line: str, lineno: int) -> _OpenRecord | None:
        """Open a record if ``line`` starts an error, updating the phase if it declares one."""
        raw, tracker = line, _traceback_tracker(line)  # both keep the prefix: a traceback's
        prefix = RANK_PREFIX.match(line)  # parser strips it from every line of the record
        line = line[prefix.end() :] if prefix else line
        self._set_phase(self._declaration(line))
        structured = _structured(line)
        if structured is not None:
            line_format, found = structured
            level = found["level"].upper()
            if level not in ERROR_LEVELS and not self._in_catalogue(line):
                return None
            extra = found.groupdict()
            record = LogRecord(lineno, found["message"].strip(), [raw], level, extra.get("logger"))
            record.time, record.format = _time(extra.get("time")), line_format.name
        else:
            error = _UNSTRUCTURED_ERROR.search(line) or self._in_catalogue(line)
            if not (error or tracker):
                return None
            stamp = _LEADING_TIME.match(line)
            record = LogRecord(lineno, line.strip(), [raw], time=_time(stamp and stamp.group(1)))
        record.phase, record.phase_source = self._phase or (None, None)
        record.work_phase = self._work_phase
        record.rank = int(prefix["rank"]) if prefix else None
        return _OpenRecord(record, tracker)

    def _in_catalogue(self, line: str) -> bool:
        return any(match_line(signature, line) is not None for signature in self._signatures)

    def _declaration(self, line: str) -> tuple[str, PhaseSource] | None:
        """The phase ``line`` declares: its ``[PHASE]`` field, else a marker in its message."""
        structured = _structured(line)
        if structured is not None:
            phase = structured[1].groupdict().get("phase")
            if phase:
                return phase, "field"
            line = structured[1]["message"]
        for marker in PHASE_MARKERS:
            found = marker.pattern.search(line)
            if found is not None:
                return marker.phase or found["phase"], "marker"
        return None

    def _set_phase(self, declared: tuple[str, PhaseSource] | None) -> None:
        if declared is not None:
            self._phase = declared
            if phase_kind(declared[0]) is not None:
                self._work_phase = declared[0]

    def _update_phase(self, text: str, lo: int, hi: int, markers: bool) -> None:
        """Set the phase to the latest declaration in ``text[lo:hi]``, if there is one, and the
        work phase to the latest one that names a kind of work."""
        declared = self._latest_declaration(text, lo, hi, markers, _DECLARATION_TRIES, work=False)
        self._set_phase(declared)
        if declared is not None and phase_kind(declared[0]) is None:
            work = self._latest_declaration(
                text, lo, hi, markers, _WORK_DECLARATION_TRIES, work=True
            )
            self._work_phase = work[0] if work is not None else self._work_phase

    def _latest_declaration(
        self, text: str, lo: int, hi: int, markers: bool, tries: int, *, work: bool
    ) -> tuple[str, PhaseSource] | None:
        """The latest declaration in ``text[lo:hi]`` (with ``work``, the latest of a kind of work)."""
        best, declared = lo - 1, None
        for literal in self._decl_literals if markers else self._decl_literals[:1]:
            end = hi
            for _ in range(tries):
                index = text.rfind(literal, best + 1, end)
                if index < 0:
                    break
                start = max(text.rfind("\n", lo, index) + 1, lo)
                stop = text.find("\n", index, hi)
                found = self._declaration(_visible(text[start : hi if stop < 0 else stop]))
                if found is not None and (not work or phase_kind(found[0]) is not None):
                    best, declared = start, found
                    break
                end = start
        return declared
