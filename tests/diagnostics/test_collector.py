from __future__ import annotations

import re
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crashsight.diagnostics.collector import StderrCollector
from crashsight.diagnostics.models import Signature

CHUNK = 64 * 1024


def signature(sig_id: str, pattern: str, *literals: str) -> Signature:
    return Signature(
        id=sig_id,
        category="test",
        subcategory=sig_id.rsplit(".", 1)[-1],
        pattern=pattern,
        literals=literals,
        description="d",
        hint="h",
        source="tests",
        samples=(literals[0],),
    )


OOM = signature(
    "cuda.oom", r"CUDA out of memory\. Tried to allocate (?P<size>\S+ [KMG]iB)", "CUDA out"
)
ENOSPC = signature("os.enospc", r"\[Errno (?P<errno>28)\] No space left on device", "No space left")
SEGV = signature("signal.segv", r"Segmentation fault", "Segmentation fault")
CATALOGUE = (OOM, ENOSPC, SEGV)


def collect(chunks: list[bytes], **kwargs: object) -> StderrCollector:
    collector = StderrCollector(CATALOGUE, **kwargs)  # type: ignore[arg-type]
    for chunk in chunks:
        collector.feed(chunk)
    collector.close()
    return collector


def reference_lines(data: bytes) -> list[str]:
    """The lines a simple, slow splitter finds: what the collector must agree with."""
    parts = re.split(rb"\r\n|\r|\n", data)
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", "replace") for p in parts]


def test_splits_on_lf_crlf_and_bare_cr() -> None:
    """Lines end at \\n, \\r\\n and a bare \\r, so each progress-bar redraw is its own line."""
    collector = collect([b"a\nb\r\nc\r 10%|#  |\r 50%|## |\r100%|###|\ndone"])
    assert collector.tail == ["a", "b", "c", " 10%|#  |", " 50%|## |", "100%|###|", "done"]
    assert collector.lines_seen == 7


def test_crlf_split_across_chunks_is_one_terminator() -> None:
    """A \\r\\n whose halves arrive in different chunks ends one line, not two."""
    collector = collect([b"first\r", b"\nsecond\r", b"\n", b"third"])
    assert collector.tail == ["first", "second", "third"]
    assert collector.lines_seen == 3


def test_invalid_utf8_is_replaced() -> None:
    """Bytes that are not UTF-8 become replacement characters instead of failing the collector."""
    collector = collect([b"ok \xff\xfe bad\n", b"caf\xc3", b"\xa9\n"])
    assert collector.tail == ["ok \ufffd\ufffd bad", "café"]


def test_huge_line_without_newline_keeps_memory_bounded() -> None:
    """A 20 MB line fed in 64 KiB chunks keeps its head, counts the rest, and never buffers it."""
    chunk = b"x" * CHUNK
    collector = StderrCollector(CATALOGUE, tail_bytes=128 * 1024)
    tracemalloc.start()
    try:
        for _ in range(20 * 1024 * 1024 // CHUNK):
            collector.feed(chunk)
        collector.feed(b"\nafter\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * 1024 * 1024
    head, after = collector.tail
    assert head.startswith("x" * 1000)
    assert head.endswith(" …[truncated 19.9 MiB]")
    assert len(head) < 64 * 1024 + 40
    assert after == "after"
    assert collector.bytes_seen == 20 * 1024 * 1024 + 7


def test_long_line_inside_one_chunk_is_truncated() -> None:
    """The truncation limit applies to lines that arrive whole, too."""
    collector = collect([b"y" * 5000 + b"\nshort\n"], max_line_bytes=1000)
    assert collector.tail == ["y" * 1000 + " …[truncated 3.9 KiB]", "short"]


def test_diagnostics_are_deduplicated_with_first_and_last() -> None:
    """Repeated matches of one signature give one diagnostic with count, first and last line."""
    times = iter(datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in range(100))
    data = (
        b"starting\n"
        b"RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0)\n"
        b"OSError: [Errno 28] No space left on device\n"
        + b"noise\n" * 3
        + b"RuntimeError: CUDA out of memory. Tried to allocate 4.00 GiB\n"
    )
    collector = collect([data], clock=lambda: next(times))
    oom, enospc = collector.diagnostics
    assert (oom.id, oom.count, oom.first_lineno, oom.last_lineno) == ("cuda.oom", 2, 2, 7)
    assert oom.first_line.endswith("2.00 GiB (GPU 0)")
    assert oom.last_line.endswith("4.00 GiB")
    assert oom.fields == {"size": "2.00 GiB"}
    assert oom.first_time <= oom.last_time
    assert (enospc.id, enospc.count, enospc.first_lineno) == ("os.enospc", 1, 3)
    assert enospc.description == "d"


def test_literal_without_pattern_match_is_not_a_diagnostic() -> None:
    """A literal only selects lines to try; the signature's regex has the last word."""
    collector = collect([b"CUDA out of patience\n"])
    assert collector.diagnostics == []


def test_enrich_adds_fields_once_per_signature() -> None:
    """``enrich`` sees the named groups of the first match and its result becomes ``fields``."""
    calls: list[str] = []

    def enrich(sig_id: str, fields: dict[str, str]) -> dict[str, str]:
        calls.append(sig_id)
        return {**fields, "errno_name": "ENOSPC"}

    line = b"[Errno 28] No space left on device\n"
    collector = collect([line * 3], enrich=enrich)
    assert calls == ["os.enospc"]
    assert collector.diagnostics[0].fields == {"errno": "28", "errno_name": "ENOSPC"}


def test_tail_is_bounded_by_lines_and_bytes() -> None:
    """The tail keeps the last lines only, within both its line and its byte budget."""
    lines = b"".join(b"line %05d\n" % i for i in range(10_000))
    by_lines = collect([lines[i : i + 777] for i in range(0, len(lines), 777)], tail_lines=5)
    assert by_lines.tail == [f"line {i:05d}" for i in range(9995, 10_000)]
    by_bytes = collect([lines], tail_lines=1000, tail_bytes=100)
    assert by_bytes.tail == [f"line {i:05d}" for i in range(9991, 10_000)]


def test_line_sinks_see_every_line_in_order() -> None:
    """Sinks receive each decoded line once, in order, whatever the chunking."""
    seen: list[str] = []
    data = b"one\r\ntwo\rthree\n" + b"four" * 10 + b"\nfive"
    collect([data[i : i + 3] for i in range(0, len(data), 3)], line_sinks=[seen.append])
    assert seen == ["one", "two", "three", "four" * 10, "five"]


class RecordingTriggeredSink:
    """A `TriggeredSink` that listens from a line with ``BEGIN`` to a line with ``END``."""

    triggers = ("BEGIN",)

    def __init__(self) -> None:
        self.active = False
        self.seen: list[str] = []

    def __call__(self, line: str) -> None:
        if self.active or "BEGIN" in line:
            self.seen.append(line)
            self.active = "END" not in line


def test_triggered_sink_gets_the_lines_it_listens_to() -> None:
    """A triggered sink is fed from its trigger line until it stops listening, and no more."""
    sink = RecordingTriggeredSink()
    data = b"a\nb\nx BEGIN\nc\nd END\ne\nf\n" + b"g\n" * 10_000 + b"BEGIN again\nh\n"
    collect([data[:9], data[9:]], line_sinks=[sink])
    assert sink.seen == ["x BEGIN", "c", "d END", "BEGIN again", "h"]


def test_non_utf8_chunk_still_matches_literals() -> None:
    """Invalid UTF-8 next to a literal does not hide the literal from the prefilter."""
    collector = collect([b"\xff\xfe Segmentation fault \xc3\n", "café ok\n".encode()])
    assert [d.id for d in collector.diagnostics] == ["signal.segv"]
    assert collector.tail == ["\ufffd\ufffd Segmentation fault \ufffd", "café ok"]


def test_feed_after_close_is_an_error() -> None:
    """Closing is final: more input would silently change a finished report."""
    collector = collect([b"x"])
    collector.close()
    with pytest.raises(ValueError, match="closed"):
        collector.feed(b"y")


def test_many_short_lines_keep_memory_bounded() -> None:
    """Memory stays bounded by the tail, however many lines pass through."""
    chunk = b"".join(
        b"step %d loss 0.123%s\n" % (i, b" Segmentation fault" if i % 100 == 0 else b"")
        for i in range(1800)
    )
    collector = StderrCollector(CATALOGUE)
    tracemalloc.start()
    try:
        for _ in range(300):
            collector.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024
    assert collector.diagnostics[0].count == 300 * 18
    assert collector.diagnostics[0].last_lineno == collector.lines_seen - 99 == 300 * 1800 - 99


_pieces = st.sampled_from(
    [
        b"\n",
        b"\r",
        b"\r\n",
        b"plain text ",
        b"Segmentation fault",
        b"\xff",
        b"x" * 50,
        b"[Errno 28] No space left on device",
        b"CUDA out of memory. Tried to allocate 1 GiB",
    ]
)


@given(
    st.lists(_pieces, max_size=60).map(b"".join),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=10),
    st.booleans(),
)
# Found by hypothesis: a chunk ending in "\r" + one more byte made the next chunk's "\n" look
# like the second half of a split "\r\n", losing a line.
@example(b"\r\nplain text \r\xff\n\n", [15], False)
def test_agrees_with_a_simple_splitter(data: bytes, sizes: list[int], sinks: bool) -> None:
    """Lines, line numbers and matches do not depend on how the stream is cut into chunks."""
    chunks, pos, turn = [], 0, 0
    while pos < len(data):
        size = sizes[turn % len(sizes)]
        chunks.append(data[pos : pos + size])
        pos, turn = pos + size, turn + 1
    seen: list[str] = []
    collector = collect(chunks, tail_lines=10_000, line_sinks=[seen.append] if sinks else [])
    expected = reference_lines(data)
    assert collector.tail == expected
    assert collector.lines_seen == len(expected)
    assert seen == (expected if sinks else [])
    for diagnostic in collector.diagnostics:
        sig = next(s for s in CATALOGUE if s.id == diagnostic.id)
        numbers = [i + 1 for i, line in enumerate(expected) if sig.regex.search(line)]
        assert diagnostic.count == len(numbers)
        assert (diagnostic.first_lineno, diagnostic.last_lineno) == (numbers[0], numbers[-1])
    matched = {s.id for s in CATALOGUE if any(s.regex.search(line) for line in expected)}
    assert {d.id for d in collector.diagnostics} == matched
