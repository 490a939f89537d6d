"""The stderr collector: raw stderr bytes in, a bounded tail and deduplicated diagnostics out.

The supervisor reads the child's stderr pipe and calls `StderrCollector.feed` with each chunk as it
arrives, then `StderrCollector.close` at EOF::

    child stderr ──pipe──▶ supervisor ──feed(chunk)──▶ StderrCollector ──▶ tail, diagnostics
                                                             └──▶ line sinks (TracebackCapture)

A worker can print gigabytes, so the collector does no per-line Python work unless it has to. Each
chunk is cut at its last line terminator; the complete lines before it form a *region*. One pass of
a compiled Rust regex (pydantic-core's, so no new dependency) over the chunk tells whether any
signature literal occurs in it at all; for the rare chunk where one does, each distinct literal is
looked up with `bytes.find`, and only the lines containing one are decoded and run through their
signatures' regexes. Python's own `re` and a `bytes.find` per literal both cost time in proportion
to the number of literals, which makes them too slow for a catalogue over gigabytes. Line numbers
come from `bytes.count`, and the tail keeps references to the last raw bytes, decoded only when
someone asks for it. Line sinks that need every line force every line to be decoded; a
`TriggeredSink` (such as `TracebackCapture`) is only fed from a line with one of its triggers on,
until it says it has stopped listening.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from pydantic_core import SchemaValidator, core_schema

from .models import Diagnostic, Signature
from .prefilter import build_prefilter, minimal_needles
from .rayprefix import split_ray_prefix

__all__ = ["StderrCollector", "TriggeredSink"]

#: Tells valid UTF-8 from invalid, so that a failed prefilter check means "no literal".
_UTF8 = SchemaValidator(core_schema.str_schema())
_NL = b"\n"
_CR = b"\r"
_CRLF = b"\r\n"
#: How a line with Ray's worker prefix starts: its "(" or the ANSI colour code before it.
_RAY_PREFIX_STARTS = ("(", "\x1b[")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size = n / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


@runtime_checkable
class TriggeredSink(Protocol):
    """A line sink that ignores every line until one contains a trigger, and says when it listens.

    The collector feeds such a sink only from a line containing one of ``triggers`` on, for as long
    as ``active`` is true, which spares decoding every line of the stream for it.
    """

    @property
    def triggers(self) -> tuple[str, ...]:
        """Plain substrings; a line containing none of them is ignored while inactive."""
        ...  # pragma: no cover

    @property
    def active(self) -> bool:
        """Whether the sink currently needs every line."""
        ...  # pragma: no cover

    def __call__(self, line: str) -> None:
        """Consume one decoded line."""
        ...  # pragma: no cover


@dataclass
class _Hit:
    """The mutable record behind one `Diagnostic`, so repeated matches cost no model validation."""

    signature: Signature
    count: int
    first_line: str
    last_line: str
    first_lineno: int
    last_lineno: int
    first_time: datetime
    last_time: datetime
    fields: dict[str, str]
    #: Some matching line was not a warning or a retry, so the diagnostic may decide a verdict.
    decisive: bool


#: Lines that report a problem the program survived (a warning, a retry): a signature found on
#: such a line is evidence, never the verdict on its own. Formats: glog ``W1122 10:00:00``,
#: torch's ``[W socket.cpp:663]``, Python ``WARNING``/``Warning:``/``UserWarning:``, retry loggers.
_WARNING_LINE = re.compile(
    r"^\s*(?:\[rank\d+\]:\s*)?(?:W\d{4} |\[W[ \d])|\bWARN(?:ING)?\b|Warning: |\bRetrying\b|"
    r"\[Retry \d|[Ss]kipping batch"
)


class StderrCollector:
    """Collects a child's stderr: a bounded tail, per-signature diagnostics and optional line sinks.

    Lines end at ``\\n``, ``\\r\\n`` or a bare ``\\r`` (progress bars redraw with ``\\r``),
    also when a ``\\r\\n`` is split across two chunks. Bytes that are not UTF-8 become replacement
    characters. A line longer than ``max_line_bytes`` keeps its head and ends with a marker such as
    `` …[truncated 19.1 MiB]``; the rest is counted, never stored, so memory stays bounded by the
    tail, the diagnostics and one partial line whatever the child prints.

    Args:
        signatures: The catalogue to match every line against.
        max_line_bytes: Longest line kept; longer lines are truncated with a marker.
        tail_lines: At most this many last lines are kept in `tail`.
        tail_bytes: At most this many bytes of last lines are kept in `tail` (the very last line is
            always kept).
        line_sinks: Called with every decoded line, in order (a `TriggeredSink` only with the lines
            it listens to). A sink that is not a `TriggeredSink` makes collection slower, because
            then every line must be decoded.
        enrich: Called once per signature with its id and the named groups of its first match; its
            result becomes the diagnostic's ``fields`` (the catalogue adds errno names this way).
        clock: Source of the first and last times of each diagnostic.
    """

    def __init__(
        self,
        signatures: Sequence[Signature],
        *,
        max_line_bytes: int = 64 * 1024,
        tail_lines: int = 200,
        tail_bytes: int = 64 * 1024,
        line_sinks: Sequence[Callable[[str], None]] = (),
        enrich: Callable[[str, dict[str, str]], dict[str, str]] | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if max_line_bytes < 1 or tail_lines < 1 or tail_bytes < 1:
            raise ValueError("max_line_bytes, tail_lines and tail_bytes must be positive")
        self._max_line = max_line_bytes
        self._tail_lines = tail_lines
        self._tail_bytes = tail_bytes
        self._sinks = tuple(line_sinks)
        self._triggered = tuple(s for s in self._sinks if isinstance(s, TriggeredSink))
        self._every_line = len(self._triggered) < len(self._sinks)
        self._triggers = tuple({t.encode() for s in self._triggered for t in s.triggers if t})
        self._enrich = enrich
        self._clock = clock
        self._signatures: dict[str, tuple[Signature, tuple[bytes, ...]]] = {}
        for sig in signatures:
            literals = tuple(
                lit.encode() for lit in sig.literals if "\n" not in lit and "\r" not in lit
            )
            self._signatures.setdefault(sig.id, (sig, literals))
        self._needles = minimal_needles(
            lit for _, lits in self._signatures.values() for lit in lits
        )
        self._prefilter = build_prefilter((*self._needles, *self._triggers))
        self._hits: dict[str, _Hit] = {}
        # The tail: decoded lines (str) or references to raw complete lines (bytes, start, end).
        self._tail: deque[str | tuple[bytes, int, int]] = deque()
        self._tail_size = 0
        self._partial = bytearray()
        self._dropped = 0
        self._pending_cr = False
        self._closed = False
        self._lines = 0
        self._bytes = 0

    @property
    def lines_seen(self) -> int:
        """Number of complete lines so far (the unterminated last line counts after `close`)."""
        return self._lines

    @property
    def bytes_seen(self) -> int:
        """Number of bytes fed so far, terminators included."""
        return self._bytes

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """One `Diagnostic` per signature that matched, in order of first appearance."""
        return [
            Diagnostic.of(
                hit.signature,
                first=(hit.first_line, hit.first_lineno, hit.first_time),
                last=(hit.last_line, hit.last_lineno, hit.last_time),
                count=hit.count,
                fields=hit.fields,
                decisive=hit.decisive,
            )
            for hit in self._hits.values()
        ]

    @property
    def tail(self) -> list[str]:
        """The last lines, oldest first, bounded by ``tail_lines`` and ``tail_bytes``."""
        lines: list[str] = []
        budget = self._tail_bytes
        for block in reversed(self._tail):
            if isinstance(block, str):
                rendered = [block]
            else:
                data, start, end = block
                rendered = [self._render(raw) for raw in data[start:end].splitlines()]
            for line in reversed(rendered):
                budget -= len(line.encode()) + 1
                if lines and (budget < 0 or len(lines) >= self._tail_lines):
                    return lines[::-1]
                lines.append(line)
        return lines[::-1]

    def feed(self, data: bytes) -> None:
        """Consume the next chunk of the stream.

        Raises:
            ValueError: The collector was already closed.
        """
        if self._closed:
            raise ValueError("feed() called on a closed StderrCollector")
        if not data:
            return
        data = bytes(data)  # a caller's bytearray may be reused; the tail keeps references
        self._bytes += len(data)
        pos = 0
        if self._pending_cr:
            self._pending_cr = False
            if data[0] == 0x0A:  # the "\n" of a "\r\n" split across two chunks
                pos = 1
        if self._partial or self._dropped:
            pos = self._finish_partial(data, pos)
            if pos < 0:
                return
        last = max(data.rfind(_NL, pos), data.rfind(_CR, pos))
        if last < 0:
            self._extend_partial(data, pos, len(data))
            return
        # Only a "\r" that ends the chunk can be the first half of a split "\r\n".
        self._pending_cr = data[last] == 0x0D and last + 1 == len(data)
        self._scan_region(data, pos, last + 1)
        self._extend_partial(data, last + 1, len(data))

    def close(self) -> None:
        """Flush the last line if the stream did not end with a terminator; idempotent."""
        if not self._closed and (self._partial or self._dropped):
            self._emit_line(bytes(self._partial), self._dropped)
            self._partial.clear()
            self._dropped = 0
        self._closed = True

    def _extend_partial(self, data: bytes, start: int, end: int) -> None:
        take = max(0, min(end - start, self._max_line - len(self._partial)))
        self._partial += data[start : start + take]
        self._dropped += end - start - take

    def _finish_partial(self, data: bytes, pos: int) -> int:
        """Complete the open line with the head of ``data``; return where the rest starts, or -1."""
        nl, cr = data.find(_NL, pos), data.find(_CR, pos)
        term = min(nl, cr) if nl >= 0 and cr >= 0 else max(nl, cr)
        if term < 0:
            self._extend_partial(data, pos, len(data))
            return -1
        self._extend_partial(data, pos, term)
        self._emit_line(bytes(self._partial), self._dropped)
        self._partial.clear()
        self._dropped = 0
        if data[term] == 0x0D:
            if term + 1 == len(data):
                self._pending_cr = True
            elif data[term + 1] == 0x0A:
                term += 1
        return term + 1

    def _render(self, raw: bytes, dropped: int = 0) -> str:
        """Decode one line, truncating it to ``max_line_bytes`` with a marker that says how much."""
        if len(raw) > self._max_line:
            dropped += len(raw) - self._max_line
            raw = raw[: self._max_line]
        text = raw.decode("utf-8", "replace")
        return f"{text} …[truncated {_human_size(dropped)}]" if dropped else text

    def _emit_line(self, raw: bytes, dropped: int) -> None:
        """Process one line on its own: the path for lines that spanned chunks."""
        self._lines += 1
        line = self._render(raw, dropped)
        for sink in self._sinks:
            sink(line)
        if self._maybe_contains_literal(raw):
            self._match(raw[: self._max_line], line, self._lines, self._clock())
        self._remember(line)

    def _scan_region(self, data: bytes, begin: int, end: int) -> None:
        """Process the complete lines in ``data[begin:end]``, which ends with a terminator."""
        has_cr = data.find(_CR, begin, end) >= 0
        # A chunk edge may cut a UTF-8 character in two; the region ends at a line end, so it won't.
        maybe = self._maybe_contains_literal(data if data.isascii() else data[begin:end])
        if self._sinks:
            start = self._sink_start(data, begin, end, has_cr, maybe)
            for raw in data[start:end].splitlines() if start is not None else ():
                line = self._render(raw)
                for sink in self._sinks:
                    sink(line)
        candidates = self._candidate_lines(data, begin, end, has_cr) if maybe else {}
        base, cursor = self._lines, begin
        if candidates:
            now = self._clock()
            for start in sorted(candidates):
                base += _count_terminators(data, cursor, start, has_cr)
                cursor = start
                raw = data[start : candidates[start]]
                self._match(raw[: self._max_line], self._render(raw), base + 1, now)
        self._lines = base + _count_terminators(data, cursor, end, has_cr)
        self._remember_region(data, begin, end)

    def _maybe_contains_literal(self, data: bytes) -> bool:
        """False only if no literal or trigger occurs anywhere in ``data``: one Rust regex pass."""
        if self._prefilter is None:
            return bool(self._needles or self._triggers)
        if self._prefilter.found_in(data):
            return True
        if data.isascii() or _UTF8.isinstance_python(data, strict=False):
            return False
        # Invalid UTF-8 fails validation whatever the pattern: decode with replacement and retry.
        return self._prefilter.found_in(data.decode("utf-8", "replace"))

    def _sink_start(
        self, data: bytes, begin: int, end: int, has_cr: bool, maybe: bool
    ) -> int | None:
        """Where the sinks must start reading this region, or None if none needs any of it."""
        if self._every_line or any(sink.active for sink in self._triggered):
            return begin
        hits = [i for t in self._triggers if maybe and (i := data.find(t, begin, end)) >= 0]
        return _line_start(data, begin, min(hits), has_cr) if hits else None

    def _candidate_lines(self, data: bytes, begin: int, end: int, has_cr: bool) -> dict[int, int]:
        """Return ``{line start: line end}`` of the lines in the region that contain a literal."""
        found: dict[int, int] = {}
        for needle in self._needles:
            i = data.find(needle, begin, end)
            while i >= 0:
                stop = data.find(_NL, i, end)
                if has_cr:
                    cr = data.find(_CR, i, end)
                    stop = cr if stop < 0 or 0 <= cr < stop else stop
                found[_line_start(data, begin, i, has_cr)] = stop
                i = data.find(needle, stop, end)
        return found

    def _match(self, raw: bytes, line: str, lineno: int, now: datetime) -> None:
        """Run the signatures whose literals occur in ``raw`` and record their matches.

        A line a Ray driver forwarded from a worker is matched and kept without Ray's
        ``(name pid=N)`` prefix, whose name and pid become fields of the diagnostic.
        """
        origin: dict[str, str] = {}
        if line.startswith(_RAY_PREFIX_STARTS):
            line, origin = split_ray_prefix(line)
        for sig_id, (sig, literals) in self._signatures.items():
            if not any(lit in raw for lit in literals):
                continue
            hit = self._hits.get(sig_id)
            if hit is not None:
                if sig.regex.search(line):
                    hit.count += 1
                    hit.last_line, hit.last_lineno, hit.last_time = line, lineno, now
                    hit.decisive = hit.decisive or not _WARNING_LINE.search(line)
                continue
            match = sig.regex.search(line)
            if match is None:
                continue
            fields = {k: v for k, v in match.groupdict().items() if v is not None}
            if self._enrich is not None:
                fields = self._enrich(sig_id, fields)
            fields |= origin
            decisive = not _WARNING_LINE.search(line)
            self._hits[sig_id] = _Hit(
                sig, 1, line, line, lineno, lineno, now, now, fields, decisive
            )

    def _remember(self, line: str) -> None:
        self._tail.append(line)
        self._tail_size += len(line)
        self._trim_tail()

    def _remember_region(self, data: bytes, begin: int, end: int) -> None:
        if end - begin > self._tail_bytes:
            begin = max(data.rfind(_NL, begin, end - self._tail_bytes) + 1, begin)
        if (end - begin) * 4 < len(data):
            # Copy small pieces: a reference would pin the whole chunk for a few lines.
            data, begin, end = data[begin:end], 0, end - begin
        self._tail.append((data, begin, end))
        self._tail_size += end - begin
        self._trim_tail()

    def _trim_tail(self) -> None:
        while len(self._tail) > 1:
            first = self._tail[0]
            size = len(first) if isinstance(first, str) else first[2] - first[1]
            if self._tail_size - size < self._tail_bytes and len(self._tail) <= self._tail_lines:
                return
            self._tail.popleft()
            self._tail_size -= size


def _line_start(data: bytes, begin: int, index: int, has_cr: bool) -> int:
    """Start of the line holding ``data[index]``, in a region starting at ``begin``."""
    start = max(data.rfind(_NL, begin, index), begin - 1) + 1
    return max(start, data.rfind(_CR, begin, index) + 1) if has_cr else start


def _count_terminators(data: bytes, start: int, end: int, has_cr: bool) -> int:
    """Count line ends in ``data[start:end]``, where ``start`` and ``end`` are line starts."""
    count = data.count(_NL, start, end)
    if has_cr:
        count += data.count(_CR, start, end) - data.count(_CRLF, start, end)
    return count
