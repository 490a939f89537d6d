"""`python_traceback` prints what Python prints, from what crossed the process boundary."""

from __future__ import annotations

import re
import traceback

from crashsight.protocol import ExceptionInfo, FrameInfo
from crashsight.report.traceback_text import python_traceback
from crashsight.runner.describe import describe_exception


class ShardError(Exception):
    """Defined in this test module, so Python prints it qualified."""


def _as_python_prints(exc: BaseException) -> str:
    """Python's own text, less the caret lines under a failing expression: those come from the
    source's column offsets, which do not travel with a frame."""
    text = "".join(traceback.format_exception(exc)).rstrip("\n")
    return re.sub(r"\n *[~^]+ *(?=\n)", "", text)


def _load(path: str) -> None:
    raise FileNotFoundError(2, "No such file or directory", path)


def _open_shard() -> None:
    try:
        _load("/data/shard-7")
    except OSError as exc:
        raise ShardError("shard 7 is unreadable") from exc


def _raised() -> BaseException:
    try:
        try:
            _open_shard()
        except ShardError as exc:
            exc.add_note("while preparing epoch 3")
            raise
    except ShardError as exc:
        return exc
    raise AssertionError("unreachable")


def _parse(text: str) -> int:
    return int(text)


def _handled_then_failed() -> BaseException:
    try:
        try:
            raise KeyError("missing")
        except KeyError:
            _parse("not a number")
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


def test_a_chain_with_a_cause_and_notes_reads_as_python_printed_it() -> None:
    exc = _raised()
    assert "\n".join(python_traceback(describe_exception(exc))) == _as_python_prints(exc)


def test_an_implicit_context_reads_as_python_printed_it() -> None:
    exc = _handled_then_failed()
    assert "\n".join(python_traceback(describe_exception(exc))) == _as_python_prints(exc)


def test_a_frame_without_a_line_number_is_printed_without_one() -> None:
    info = ExceptionInfo(
        type="RuntimeError",
        module="builtins",
        message="boom",
        frames=[FrameInfo(file="<native>", line=None, function="kernel")],
    )
    assert python_traceback(info) == [
        "Traceback (most recent call last):",
        '  File "<native>", in kernel',
        "RuntimeError: boom",
    ]


def test_max_frames_keeps_the_innermost_of_each_exception_and_counts_the_rest() -> None:
    frames = [FrameInfo(file="train.py", line=n, function=f"f{n}") for n in range(1, 6)]
    cause = ExceptionInfo(type="OSError", module="builtins", message="disk", frames=frames)
    info = ExceptionInfo(
        type="RuntimeError", module="builtins", message="save", frames=frames, cause=cause
    )
    lines = python_traceback(info, max_frames=2)
    assert lines.count("  ... 3 earlier frames") == 2
    assert [line for line in lines if line.startswith("  File")] == [
        '  File "train.py", line 4, in f4',
        '  File "train.py", line 5, in f5',
    ] * 2
    assert lines[-1] == "RuntimeError: save"
