from __future__ import annotations

import subprocess
import sys
import traceback
from typing import NoReturn

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crashsight.diagnostics.faultdump import parse_faulthandler
from crashsight.diagnostics.tracebacks import TracebackCapture, parse_traceback
from crashsight.protocol import ExceptionInfo


class CustomError(Exception):
    """An exception class that is not a builtin, so its MRO is unknown to the parser."""


def raise_at(depth: int, exc: BaseException) -> NoReturn:
    if depth == 0:
        raise exc
    raise_at(depth - 1, exc)


def raise_from(exc: BaseException, cause: BaseException) -> NoReturn:
    raise exc from cause


def lines_of(exc: BaseException) -> list[str]:
    return "".join(traceback.format_exception(exc)).splitlines()


def caught(func: object, *args: object) -> Exception:
    try:
        func(*args)  # type: ignore[operator]
    except Exception as exc:
        return exc
    raise AssertionError("did not raise")


def expected(exc: BaseException) -> dict[str, object]:
    """What the parser should recover from ``exc``: the facts that text carries."""
    cls = type(exc)
    context = exc.__context__ if not exc.__suppress_context__ else None
    return {
        "type": cls.__qualname__,
        "module": cls.__module__,
        "message": str(exc),
        "notes": list(getattr(exc, "__notes__", [])),
        "frames": [
            (f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)
        ],
        "cause": expected(exc.__cause__) if exc.__cause__ else None,
        "context": expected(context) if context else None,
    }


def actual(info: ExceptionInfo) -> dict[str, object]:
    return {
        "type": info.type,
        "module": info.module,
        "message": info.message,
        "notes": info.notes,
        "frames": [(f.file, f.line, f.function, f.code) for f in info.frames],
        "cause": actual(info.cause) if info.cause else None,
        "context": actual(info.context) if info.context else None,
    }


_line = st.text("abcdefghijklmnopqrstuvwxyz0123456789 .,:!'", min_size=1, max_size=20).filter(
    str.strip
)
_message = st.one_of(st.just(""), st.lists(_line, min_size=1, max_size=3).map("\n".join))
_link = st.sampled_from(["cause", "context"])
_spec = st.tuples(
    st.sampled_from([ValueError, RuntimeError, KeyError, CustomError]),
    _message,
    _link,
    st.integers(min_value=0, max_value=5),
    st.lists(_line, max_size=2),
)


def build_chain(specs: list[tuple[type[Exception], str, str, int, list[str]]]) -> BaseException:
    """Raise real exceptions, each linked to the one before by ``from`` or by handling it."""
    previous: BaseException | None = None
    for cls, message, link, depth, notes in specs:
        new = cls(message) if message else cls()
        for note in notes if not message else []:
            new.add_note(note)
        try:
            if previous is None:
                raise_at(depth, new)
            try:
                raise previous
            except Exception:
                if link == "cause":
                    raise_from(new, previous)
                raise_at(depth, new)
        except Exception as exc:
            previous = exc
    assert previous is not None
    return previous


@settings(max_examples=150)
@given(st.lists(_spec, min_size=1, max_size=4), st.sampled_from(["", "[rank3]: "]))
def test_real_tracebacks_round_trip(
    specs: list[tuple[type[Exception], str, str, int, list[str]]], prefix: str
) -> None:
    """Types, modules, messages, frames, notes and the chain survive printing and streaming."""
    exc = build_chain(specs)
    lines = [f"{prefix}{line}" for line in lines_of(exc)]
    info = parse_traceback(["some earlier output", *lines])
    assert info is not None
    assert actual(info) == expected(exc)
    capture = TracebackCapture()
    for line in ["some earlier output", *lines, "[rank0]: later output"]:
        capture(line)
    streamed = capture.result()
    assert streamed is not None
    assert actual(streamed) == expected(exc)


@given(st.lists(st.text(max_size=80), max_size=40))
def test_arbitrary_text_never_raises(lines: list[str]) -> None:
    """Whatever a child prints, parsing it returns a value instead of raising."""
    parse_traceback(lines)
    parse_faulthandler(lines)
    capture = TracebackCapture()
    for line in lines:
        capture(line)
    capture.result()


_fragments = st.sampled_from(
    [
        "Traceback (most recent call last):",
        '  File "x.py", line 3, in f',
        "    code()",
        "    ~~~^^",
        "  [Previous line repeated 5 more times]",
        "ValueError: boom",
        "KeyError",
        "",
        "The above exception was the direct cause of the following exception:",
        "During handling of the above exception, another exception occurred:",
        "  + Exception Group Traceback (most recent call last):",
        "  | ExceptionGroup: eg (2 sub-exceptions)",
        "  +-+---------------- 1 ----------------",
        "    | Traceback (most recent call last):",
        "    | TypeError: t",
        "    +---------------- 2 ----------------",
        "    +------------------------------------",
        "  | ",
        "Fatal Python error: Segmentation fault",
        "Current thread 0x00007f3b2c1ff740 (most recent call first):",
        '  File "x.py", line 3 in f',
        "  <no Python frame>",
        "[rank1]: Traceback (most recent call last):",
    ]
)


@given(st.lists(st.one_of(_fragments, st.text(max_size=10)), max_size=60))
def test_traceback_shaped_garbage_never_raises(lines: list[str]) -> None:
    """Shuffled pieces of real tracebacks and dumps are parsed without an exception."""
    parse_traceback(lines)
    parse_faulthandler(lines)
    capture = TracebackCapture(max_lines=8, max_bytes=200)
    for line in lines:
        capture(line)
    capture.result()
    capture.fault_dump()


def test_builtin_exception_gets_its_real_mro_and_errno() -> None:
    """A builtin exception's MRO comes from the builtins module; ``[Errno N]`` gives errno."""
    exc = caught(raise_at, 2, OSError(28, "No space left on device"))
    info = parse_traceback(lines_of(exc))
    assert info is not None
    assert (info.type, info.module) == ("OSError", "builtins")
    assert info.mro_names == ["OSError", "Exception", "BaseException"]
    assert (info.errno, info.errno_name) == (28, "ENOSPC")
    assert info.message == "[Errno 28] No space left on device"


def test_dotted_names_split_into_module_and_type() -> None:
    """``json.decoder.JSONDecodeError`` is type JSONDecodeError of module json.decoder.

    Text tells no MRO, so a class that is not a builtin is taken to be an ``Exception``.
    """
    info = parse_traceback(
        ["Traceback (most recent call last):", "json.decoder.JSONDecodeError: x"]
    )
    assert info is not None
    assert (info.type, info.module, info.mro_names) == (
        "JSONDecodeError",
        "json.decoder",
        ["json.decoder.JSONDecodeError", "Exception", "BaseException"],
    )


def test_deep_recursion_expands_repeated_lines() -> None:
    """``[Previous line repeated N more times]`` stands for N more copies of the frame above."""
    exc = caught(raise_at, 50, ValueError("deep"))
    info = parse_traceback(lines_of(exc))
    assert info is not None
    assert len(info.frames) == len(traceback.extract_tb(exc.__traceback__)) > 50


def test_messageless_exception_lines_are_notes() -> None:
    """With no message, the lines after the exception can only be ``__notes__``."""
    exc = ValueError()
    exc.add_note("first note")
    exc.add_note("second note")
    info = parse_traceback(lines_of(caught(raise_at, 0, exc)))
    assert info is not None
    assert (info.message, info.notes) == ("", ["first note", "second note"])


def test_consistent_prefix_skips_other_sources() -> None:
    """With ``[rank3]: `` on every line, interleaved lines of other ranks are ignored."""
    exc = caught(raise_at, 1, RuntimeError("rank 3 failed"))
    lines = ["[rank0]: loading"]
    for line in lines_of(exc):
        lines += [f"[rank3]: {line}", "[rank1]: step 10 loss 0.5"]
    info = parse_traceback(lines)
    assert info is not None
    assert actual(info) == expected(exc)


def test_prefix_on_the_first_line_only() -> None:
    """A logging prefix before ``Traceback`` alone (logger.exception) is tolerated."""
    exc = caught(raise_at, 0, KeyError("missing"))
    lines = ["2025-12-10 03:58:22 ERROR Traceback (most recent call last):", *lines_of(exc)[1:]]
    info = parse_traceback(lines)
    assert info is not None
    assert actual(info) == expected(exc)


def test_exception_groups_keep_their_members() -> None:
    """Group members, nested groups, chains inside members and '... more' blocks are parsed."""
    inner = caught(raise_at, 0, ExceptionGroup("inner", [TypeError("t")]))
    member = caught(raise_from, KeyError("k"), ValueError("v"))
    group = ExceptionGroup("outer", [member, inner, *[OSError(i, "e") for i in range(16)]])
    info = parse_traceback(["noise", *lines_of(caught(raise_at, 1, group)), "after"])
    assert info is not None
    assert (info.type, info.message) == ("ExceptionGroup", "outer (18 sub-exceptions)")
    assert len(info.exceptions) == 15  # Python prints 15 members and "and 3 more exceptions"
    key, nested = info.exceptions[:2]
    assert (key.type, key.cause and key.cause.type) == ("KeyError", "ValueError")
    assert [e.type for e in nested.exceptions] == ["TypeError"]
    assert info.exceptions[2].errno == 0


def test_syntax_error_location_is_not_a_frame() -> None:
    """A SyntaxError's ``File "x.py", line 1`` caret block is not mistaken for a call frame."""
    exc = caught(compile, "foo(", "bad.py", "exec")
    info = parse_traceback(lines_of(exc))
    assert info is not None
    assert info.type == "SyntaxError"
    assert all(frame.file != "bad.py" for frame in info.frames)


def run_faulting(code: str) -> list[str]:
    """Run ``code`` in a real interpreter with faulthandler on and return its stderr lines."""
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode < 0
    return proc.stderr.splitlines()


SEGFAULT_WITH_THREAD = """
import ctypes, threading
started = threading.Event()
def idle():
    started.set()
    threading.Event().wait()
threading.Thread(target=idle, daemon=True).start()
started.wait()
def crash():
    ctypes.memset(0, 0, 1)
crash()
"""


def test_real_segfault_dump_is_parsed() -> None:
    """A real faulthandler dump gives the crashing thread innermost last, plus the other threads."""
    dump = parse_faulthandler(run_faulting(SEGFAULT_WITH_THREAD))
    assert dump is not None
    assert dump.fatal_error == "Segmentation fault"
    assert [f.function for f in dump.current_thread] == ["<module>", "crash"]
    assert dump.current_thread[-1].line == 10
    assert len(dump.other_threads) == 1
    assert dump.other_threads[0][-1].function == "wait"
    info = dump.to_exception_info()
    assert (info.type, info.module, info.message) == (
        "SIGSEGV",
        "faulthandler",
        "Segmentation fault",
    )


def test_real_abort_with_prefix() -> None:
    """An abort dump is parsed when every line carries a launcher's prefix."""
    lines = [f"[rank2]: {line}" for line in run_faulting("import os; os.abort()")]
    dump = parse_faulthandler(["[rank2]: starting", *lines])
    assert dump is not None
    assert dump.to_exception_info().type == "SIGABRT"
    assert [(f.file, f.function) for f in dump.current_thread] == [("<string>", "<module>")]


def test_no_python_frame() -> None:
    """``<no Python frame>`` gives an empty frame list, not an error."""
    dump = parse_faulthandler(
        [
            "Fatal Python error: Bus error",
            "",
            "Thread 0x00007f0000000001 (most recent call first):",
            "  <no Python frame>",
            "",
            "Extension modules: numpy.core._multiarray_umath (total: 1)",
        ]
    )
    assert dump is not None
    assert (dump.current_thread, dump.other_threads) == ([], [[]])
    assert dump.to_exception_info().type == "SIGBUS"


def test_capture_recovers_a_traceback_after_megabytes() -> None:
    """The last traceback is recovered even when a lot of other output follows it."""
    capture = TracebackCapture()
    capture("INFO starting")
    exc = caught(raise_at, 3, CustomError("the real one"))
    for line in lines_of(exc):
        capture(line)
    for i in range(100_000):
        capture(f"INFO step {i} " + "x" * 40)
    info = capture.result()
    assert info is not None
    assert actual(info) == expected(exc)


def test_capture_keeps_head_and_tail_of_a_huge_traceback() -> None:
    """A traceback longer than the budget keeps its first and last frames and the exception."""
    capture = TracebackCapture(max_lines=100)
    capture("Traceback (most recent call last):")
    for i in range(5000):
        capture(f'  File "m.py", line {i + 1}, in f{i}')
        capture(f"    f{i + 1}()")
    capture("RecursionError: maximum recursion depth exceeded")
    info = capture.result()
    assert info is not None
    assert info.type == "RecursionError"
    assert info.frames[0].function == "f0"
    assert info.frames[-1].function == "f4999"
    assert len(info.frames) < 100


def test_capture_prefers_what_came_last() -> None:
    """A fault dump after a logged traceback is the cause of death, and the other way round."""
    capture = TracebackCapture()
    for line in lines_of(caught(raise_at, 0, ValueError("logged, then carried on"))):
        capture(line)
    for line in ["Fatal Python error: Segmentation fault", "", "Stack (most recent call first):"]:
        capture(line)
    capture('  File "native.py", line 7 in call')
    result = capture.result()
    assert result is not None
    assert (result.type, result.frames[0].function) == ("SIGSEGV", "call")
    for line in lines_of(caught(raise_at, 0, RuntimeError("parent gave up"))):
        capture(line)
    result = capture.result()
    assert result is not None
    assert result.type == "RuntimeError"
    fault = capture.fault_dump()
    assert fault is not None
    assert fault.fatal_error == "Segmentation fault"


@pytest.mark.parametrize("link", ["cause", "context"])
def test_capture_keeps_the_whole_chain(link: str) -> None:
    """A chained traceback streamed line by line keeps its earlier links."""
    exc = build_chain([(ValueError, "first", link, 0, []), (RuntimeError, "second", link, 1, [])])
    capture = TracebackCapture()
    for line in lines_of(exc):
        capture(line)
    capture("INFO shutting down")
    info = capture.result()
    assert info is not None
    linked = info.cause if link == "cause" else info.context
    assert linked is not None
    assert (info.message, linked.message) == ("second", "first")
