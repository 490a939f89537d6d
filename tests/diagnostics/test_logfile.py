from __future__ import annotations

from datetime import datetime

import pytest

from crashsight.diagnostics.logfile import LogScanner
from crashsight.diagnostics.logformats import LINE_FORMATS, LineFormat, normalize_message
from crashsight.diagnostics.logtable import ErrorTable, LogRecord

INFO = "[2025-12-10 03:58:{s:02d}] [trainer] [INFO] [SFT] step {i} loss 0.{i:03d}\n"
PRETOKENIZE = (
    "[2025-12-10 04:{m:02d}:{s:02d}] [__main__] [ERROR] [PreTokenize] Failed to tokenize "
    "/data/shard_{i:04d}.jsonl: bad byte 0x{i:x} at offset {o}\n"
)
RAW_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/train.py", line 10, in <module>\n'
    "    main()\n"
    "RuntimeError: boom {n}\n"
)


def scan(text: str, chunk: int = 4096, **table_options: int) -> tuple[LogScanner, ErrorTable]:
    """Run ``text`` through a scanner in chunks of ``chunk`` bytes, into a table."""
    scanner, table = LogScanner(), ErrorTable(**table_options)
    data = text.encode()
    for start in range(0, len(data), chunk):
        for record in scanner.feed(data[start : start + chunk]):
            table.add(record)
    for record in scanner.close():
        table.add(record)
    return scanner, table


def records(text: str, chunk: int = 4096) -> list[LogRecord]:
    """Every error record in ``text``, first occurrences and repeats alike, in order."""
    scanner, out = LogScanner(), []
    data = text.encode()
    for start in range(0, len(data), chunk):
        out += scanner.feed(data[start : start + chunk])
    return out + scanner.close()


def pretokenize_log() -> str:
    lines = [INFO.format(s=0, i=0)]
    for i in range(47):
        lines.append(PRETOKENIZE.format(m=i // 60, s=i % 60, i=i * 13 + 1, o=i * 977))
        lines.append(INFO.format(s=i % 60, i=i))
    return "".join(lines)


@pytest.mark.parametrize("chunk", [1, 7, 100, 1 << 20], ids=lambda c: f"chunk-{c}")
def test_repeated_template_error_is_one_row_with_count_and_times(chunk: int) -> None:
    """47 errors that differ only in numbers, hex and paths are one row: count 47, first/last time.

    The result must not depend on where chunk edges fall, down to one byte per chunk.
    """
    scanner, table = scan(pretokenize_log(), chunk=chunk)
    [group] = table.groups
    assert group.count == 47
    assert group.phase == "PreTokenize"
    assert group.template == "Failed to tokenize <path>: bad byte <hex> at offset <n>"
    assert group.first.lineno == 2
    assert group.last_lineno == 94
    assert group.first.time == datetime(2025, 12, 10, 4, 0, 0)
    assert group.last_time == datetime(2025, 12, 10, 4, 0, 46)
    assert len(group.samples) == 3, "samples are bounded"
    assert scanner.lines_seen == 95


@pytest.mark.parametrize("line_format", LINE_FORMATS, ids=lambda f: f.name)
def test_every_documented_format_is_recognised(line_format: LineFormat) -> None:
    """Each format's own example, at ERROR, becomes a record with its fields."""
    [record] = records(line_format.example + "\n")
    assert (record.format, record.level, record.message) == (line_format.name, "ERROR", "message")


def test_continuation_lines_belong_to_the_record_before_them() -> None:
    """A multi-line message and a logger.exception traceback stay in one record, up to the next."""
    text = (
        "2025-12-10 03:58:22,123 - trainer - ERROR - saving failed\n"
        "  while writing shard 3\n"
        "Traceback (most recent call last):\n"
        '  File "/app/save.py", line 3, in save\n'
        "    os.write(fd, data)\n"
        "OSError: [Errno 28] No space left on device\n"
        "2025-12-10 03:58:23,000 - trainer - INFO - retrying\n"
    )
    [record] = records(text)
    assert record.message == "saving failed"
    assert len(record.lines) == 6
    assert record.exception_line == "OSError: [Errno 28] No space left on device"
    assert record.traceback_complete is True


def test_back_to_back_raw_tracebacks_are_separate_records() -> None:
    """Two tracebacks with nothing between them (ranks, retries) are counted as two errors."""
    text = RAW_TRACEBACK.format(n=1) + RAW_TRACEBACK.format(n=2) + "done\n"
    found = records(text)
    assert [r.message for r in found] == ["RuntimeError: boom 1", "RuntimeError: boom 2"]
    assert [r.lineno for r in found] == [1, 5]


def test_unstructured_phase_markers_set_the_phase() -> None:
    """Marker lines in plain text give the phase of the errors after them; the latest one wins."""
    text = (
        "***** Running training *****\n"
        "RuntimeError: CUDA error: an illegal memory access was encountered\n"
        "***** Running Evaluation *****\n"
        "Evaluating:  10%|#         | 5/50\n"
        "RuntimeError: CUDA error: device-side assert triggered\n"
        "=== PreTokenize ===\n"
        "ERROR could not read /data/x.jsonl\n"
    )
    found = records(text, chunk=16)
    assert [(r.phase, r.phase_source) for r in found] == [
        ("train", "marker"),
        ("eval", "marker"),
        ("PreTokenize", "marker"),
    ]


def test_structured_phase_carries_to_unstructured_lines() -> None:
    """A raw traceback after a structured line inherits that line's [PHASE] field."""
    text = "[2025-12-10 03:58:22] [trainer] [INFO] [EVAL] batch 3\n" + RAW_TRACEBACK.format(n=1)
    [record] = records(text)
    assert (record.phase, record.phase_source, record.lineno) == ("EVAL", "field", 2)


def test_info_lines_with_error_words_are_not_errors() -> None:
    """A structured INFO line is judged by its level, whatever words its message holds."""
    text = "[2025-12-10 03:58:22] [m] [INFO] [SFT] ERROR rate 0.1, KeyError: none\n"
    assert records(text) == []


def test_normalize_message_masks_what_varies() -> None:
    """UUIDs, URLs, hex, paths and numbers are masked; the words stay."""
    message = (
        "worker 3 at 0x7f3a9c00 read /data/a/b_12.bin for run "
        "123e4567-e89b-12d3-a456-426614174000 from https://host/x?y=1"
    )
    assert normalize_message(message) == (
        "worker <n> at <hex> read <path> for run <uuid> from <url>"
    )


def test_distinct_errors_beyond_the_cap_are_counted() -> None:
    """Past ``max_groups`` new errors are only counted, so memory stays bounded."""
    text = "".join(f"ERROR kind{chr(97 + i % 26)}{chr(97 + i // 26)}\n" for i in range(30))
    _, table = scan(text + "ERROR kindaa\n", max_groups=10)
    assert len(table.groups) == 10
    assert table.omitted_groups == 20
    assert table.omitted_occurrences == 20
    assert table.groups[0].count == 2


def test_long_lines_and_nul_bytes_are_bounded() -> None:
    """A line without newlines is cut at max_line_bytes; NUL bytes are dropped and counted."""
    scanner = LogScanner(max_line_bytes=1000)
    out = scanner.feed(b"x" * 5000)
    out += scanner.feed(b"y" * 5000 + b" ERROR tail\n\0\0\0ERROR after nul\n")
    out += scanner.close()
    assert [r.message for r in out] == ["ERROR after nul"]
    assert [r.lineno for r in out] == [2]
    assert scanner.nul_bytes == 3
    assert not scanner.ended_mid_line


def test_file_cut_mid_traceback_keeps_what_is_there() -> None:
    """A traceback cut before its exception line is still a record, marked incomplete."""
    text = "ERROR earlier\n" + RAW_TRACEBACK.format(n=1)[:70]
    scanner, table = scan(text)
    last = table.last_traceback
    assert table.groups[0].first.message == "ERROR earlier"
    assert last is not None
    assert last.traceback_complete is False
    assert scanner.ended_mid_line
