"""Describing live exceptions: what is captured, how chains and groups are walked, the bounds."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from crashsight.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameDecoder,
    encode_frame,
    encode_json_frame,
)
from crashsight.protocol import RunnerTerminationError
from crashsight.runner import describe
from crashsight.runner.describe import describe_exception, termination_error, termination_fields


class ShardError(RuntimeError):
    """A user-defined exception, to see module-qualified names in the MRO."""


class UnprintableError(Exception):
    """An exception whose ``__str__`` and ``__repr__`` both fail."""

    def __str__(self) -> str:
        raise RuntimeError("str is broken")

    def __repr__(self) -> str:
        raise LookupError("repr is broken")


def _caught(action: Callable[[], object]) -> BaseException:
    """Run ``action`` and return what it raised, with its traceback."""
    try:
        action()
    except BaseException as exc:
        return exc
    raise AssertionError("the action did not raise")


def _fail_shard() -> None:
    raise ShardError("shard 3 failed")


def _recurse(depth: int) -> int:
    return _recurse(depth + 1) + 1


def _chained(*, explicit: bool, suppress: bool = False) -> None:
    try:
        raise KeyError("id")
    except KeyError as exc:
        if suppress:
            raise ValueError("bad row") from None
        if explicit:
            raise ValueError("bad row") from exc
        raise ValueError("bad row")  # noqa: B904 - the implicit context is the point


def _errno_info(action: Callable[[], object]) -> tuple[str, int | None, str | None]:
    info = describe_exception(_caught(action))
    return info.type, info.errno, info.errno_name


def test_identity_of_the_exception() -> None:
    """Type, defining module, qualified MRO names, message and repr come from the exception."""
    info = describe_exception(_caught(_fail_shard))
    assert (info.type, info.module) == ("ShardError", ShardError.__module__)
    assert info.mro_names == [
        f"{ShardError.__module__}.ShardError",
        "RuntimeError",
        "Exception",
        "BaseException",
    ]
    assert (info.message, info.repr) == ("shard 3 failed", "ShardError('shard 3 failed')")
    assert info.summary() == "ShardError: shard 3 failed"
    assert (info.errno, info.errno_name) == (None, None)


def test_frames_point_at_the_raising_line() -> None:
    """Frames run outermost first and name file, line, function and source of each call."""
    info = describe_exception(_caught(_fail_shard))
    assert [f.function for f in info.frames] == ["_caught", "_fail_shard"]
    innermost = info.frames[-1]
    assert (innermost.file, innermost.line) == (__file__, _fail_shard.__code__.co_firstlineno + 1)
    assert innermost.code == 'raise ShardError("shard 3 failed")'


def test_missing_file_gives_enoent(tmp_path: Path) -> None:
    """An OSError keeps its errno and the symbolic name, here from opening a missing file."""
    missing = tmp_path / "missing.txt"
    assert _errno_info(missing.read_bytes) == ("FileNotFoundError", errno.ENOENT, "ENOENT")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_device_gives_enospc() -> None:
    """Writing to /dev/full is a real ENOSPC, described with its errno name."""

    def write_full() -> None:
        fd = os.open("/dev/full", os.O_WRONLY)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)

    assert _errno_info(write_full) == ("OSError", errno.ENOSPC, "ENOSPC")


def test_oserror_without_errno() -> None:
    """An OSError built from a plain message has no errno to report."""

    def plain() -> None:
        raise OSError("no code")

    assert _errno_info(plain) == ("OSError", None, None)


def test_notes_are_kept_and_bounded() -> None:
    """``add_note`` texts travel in order, at most 16 of them."""
    exc = ValueError("x")
    for i in range(20):
        exc.add_note(f"note {i}")
    assert describe_exception(exc).notes == [f"note {i}" for i in range(16)]


def test_raise_from_sets_cause_and_hides_context() -> None:
    """``raise ... from exc`` is a cause; the context it suppresses is not repeated."""
    info = describe_exception(_caught(lambda: _chained(explicit=True)))
    assert info.cause is not None
    assert (info.cause.type, info.cause.message) == ("KeyError", "'id'")
    assert info.context is None


def test_implicit_context() -> None:
    """Raising while handling another exception records that one as the context."""
    info = describe_exception(_caught(lambda: _chained(explicit=False)))
    assert info.cause is None
    assert info.context is not None
    assert info.context.type == "KeyError"
    assert info.context.frames[-1].function == "_chained"


def test_from_none_suppresses_context() -> None:
    """``raise ... from None`` leaves neither cause nor context."""
    info = describe_exception(_caught(lambda: _chained(explicit=False, suppress=True)))
    assert [i.type for i in info.chain()] == ["ValueError"]


def test_nested_exception_groups() -> None:
    """Group members, and members of nested groups, are described in order."""

    def fail() -> None:
        inner = ExceptionGroup("inner", [KeyError("k"), OSError(errno.EPIPE, "pipe")])
        raise ExceptionGroup("outer", [ValueError("v"), inner])

    info = describe_exception(_caught(fail))
    assert info.message == "outer (2 sub-exceptions)"
    value, inner = info.exceptions
    assert (value.type, inner.type) == ("ValueError", "ExceptionGroup")
    assert [(m.type, m.errno_name) for m in inner.exceptions] == [
        ("KeyError", None),
        ("BrokenPipeError", "EPIPE"),
    ]
    assert [i.type for i in info.chain()] == [
        "ExceptionGroup",
        "ValueError",
        "ExceptionGroup",
        "KeyError",
        "BrokenPipeError",
    ]


def test_wide_group_is_bounded() -> None:
    """Only the first members of a very wide group are described."""
    group = ExceptionGroup("many", [ValueError(str(i)) for i in range(100)])
    members = describe_exception(group).exceptions
    assert [m.message for m in members] == [str(i) for i in range(len(members))]
    assert len(members) == describe._MAX_GROUP_MEMBERS


def test_cycle_in_the_chain_terminates() -> None:
    """An exception reachable from itself is described once, not forever."""
    first, second = ValueError("first"), KeyError("second")
    first.__context__ = second
    second.__context__ = first
    second.__cause__ = second
    assert [i.type for i in describe_exception(first).chain()] == ["ValueError", "KeyError"]


def test_deep_chain_is_bounded() -> None:
    """A chain of a thousand causes is cut at a fixed depth."""
    exc: BaseException = ValueError("0")
    for i in range(1, 1000):
        outer = ValueError(str(i))
        outer.__cause__ = exc
        exc = outer
    chain = describe_exception(exc).chain()
    assert [i.message for i in chain] == [str(999 - d) for d in range(describe._MAX_DEPTH + 1)]


def test_recursion_error_keeps_head_and_tail_frames() -> None:
    """A RecursionError's thousand frames shrink to the outermost and innermost halves."""
    exc = _caught(lambda: _recurse(0))
    assert isinstance(exc, RecursionError)
    info = describe_exception(exc, max_frames=10)
    functions = [f.function for f in info.frames]
    assert functions[:2] == ["_caught", "<lambda>"]
    assert functions[2:] == ["_recurse"] * 8
    assert len(describe_exception(exc).frames) == describe._MAX_FRAMES


def test_broken_str_and_repr_do_not_break_the_description() -> None:
    """An exception whose ``__str__``/``__repr__`` raise is still described, saying so."""
    info = describe_exception(UnprintableError())
    assert info.message == "<str() failed: RuntimeError>"
    assert info.repr == "<repr() failed: LookupError>"


def test_huge_message_is_clipped() -> None:
    """A 10 MB message is clipped to a bounded size that says how much was dropped."""
    text = "x" * 10_000_000
    info = describe_exception(ValueError(text))
    assert info.message.startswith("x" * 1000)
    assert len(info.message) < 20_000
    assert info.message.endswith(f"[{10_000_000 - describe.MAX_TEXT} more characters]")
    assert len(info.repr) < 20_000


def _wide_unprintable() -> UnprintableError:
    exc = UnprintableError()
    for _ in range(16):
        exc.add_note("n" * 4000)
    return exc


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(ValueError("x" * 10_000_000), id="huge-ascii-message"),
        pytest.param(ValueError("\x00" * 10_000_000), id="huge-escaped-message"),
        pytest.param(ValueError("😀" * 10_000_000), id="huge-multibyte-message"),
        pytest.param(_caught(lambda: _recurse(0)), id="recursion-error"),
        pytest.param(_caught(lambda: _chained(explicit=True)), id="chained"),
        pytest.param(_wide_unprintable(), id="unprintable-with-notes"),
    ],
)
def test_termination_error_fits_a_small_frame(exc: BaseException) -> None:
    """Whatever the exception, the termination message fits the frame limit it was given."""
    message = termination_error(exc, "target", max_frame_bytes=2048)
    assert len(encode_frame(message)) <= 2048
    assert (message.phase, message.type) == ("target", type(exc).__qualname__)


def test_termination_error_keeps_everything_when_it_fits() -> None:
    """With room to spare, the termination message is the full description plus the phase."""
    exc = _caught(lambda: _chained(explicit=True))
    message = termination_error(exc, "bootstrap", max_frame_bytes=DEFAULT_MAX_FRAME_BYTES)
    full = describe_exception(exc)
    assert message.phase == "bootstrap"
    assert message.model_dump(exclude={"kind", "seq", "phase"}) == full.model_dump()


def test_undecodable_file_name_still_makes_a_valid_frame() -> None:
    """An OSError about a file name that is not UTF-8 (a lone surrogate) still frames and decodes."""
    name = b"/nonexistent/shard-\xff.tar".decode("utf-8", "surrogateescape")
    exc = _caught(lambda: open(name))  # noqa: SIM115 - it fails before anything is open
    fields = {**termination_fields(exc, "target", DEFAULT_MAX_FRAME_BYTES), "seq": 0}
    [decoded] = FrameDecoder().feed(encode_json_frame(fields))
    assert isinstance(decoded, RunnerTerminationError)
    assert decoded.errno_name == "ENOENT"
    assert "shard-" in decoded.message
