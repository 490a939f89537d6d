"""The wire models: strict about unknown fields and kinds, and the helpers on `ExceptionInfo`."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from crashsight.protocol import (
    MESSAGE_ADAPTER,
    ExceptionInfo,
    FrameInfo,
    Heartbeat,
    Progress,
    Ready,
    RunnerTerminationError,
    TaskFinished,
)


def _error_types(exc_info: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {error["type"] for error in exc_info.value.errors()}


def _info(type_: str, **links: Any) -> ExceptionInfo:
    return ExceptionInfo(type=type_, module="builtins", **links)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"kind": "heartbeat", "color": "red"}, id="heartbeat"),
        pytest.param({"kind": "ready", "pid": 1, "python": "3.11", "extra": 1}, id="ready"),
        pytest.param({"kind": "user", "name": "x", "data": None, "more": []}, id="user"),
        pytest.param(
            {"kind": "termination_error", "phase": "target", "type": "E", "module": "m", "x": 1},
            id="termination",
        ),
        pytest.param(
            {
                "kind": "termination_error",
                "phase": "target",
                "type": "E",
                "module": "m",
                "frames": [{"file": "f.py", "function": "f", "locals": {}}],
            },
            id="nested-frame",
        ),
    ],
)
def test_unknown_fields_are_rejected(payload: dict[str, Any]) -> None:
    """Every wire model, nested ones included, refuses a field it does not declare."""
    with pytest.raises(ValidationError) as exc_info:
        MESSAGE_ADAPTER.validate_python(payload)
    assert _error_types(exc_info) == {"extra_forbidden"}


@pytest.mark.parametrize(
    ("payload", "error_type"),
    [
        pytest.param({"kind": "shutdown"}, "union_tag_invalid", id="unknown-kind"),
        pytest.param({"seq": 0}, "union_tag_not_found", id="missing-kind"),
    ],
)
def test_unknown_or_missing_kind_fails_validation(payload: dict[str, Any], error_type: str) -> None:
    """The discriminated union rejects a frame whose ``kind`` it does not know or that has none."""
    with pytest.raises(ValidationError) as exc_info:
        MESSAGE_ADAPTER.validate_python(payload)
    assert _error_types(exc_info) == {error_type}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"kind": "heartbeat", "seq": -1}, id="negative-seq"),
        pytest.param({"kind": "progress", "message": "m", "fraction": 1.5}, id="fraction-above-1"),
        pytest.param({"kind": "progress", "message": "m", "fraction": -0.1}, id="fraction-below-0"),
        pytest.param({"kind": "task_finished", "task_id": "t"}, id="missing-ok"),
        pytest.param({"kind": "termination_error", "type": "E", "module": "m"}, id="no-phase"),
    ],
)
def test_field_constraints_are_enforced(payload: dict[str, Any]) -> None:
    """Sequence numbers are non-negative, fractions lie in [0, 1], required fields are required."""
    with pytest.raises(ValidationError):
        MESSAGE_ADAPTER.validate_python(payload)


def test_kind_selects_the_model() -> None:
    """The ``kind`` tag alone decides which model a payload validates into."""
    assert MESSAGE_ADAPTER.validate_json(b'{"kind":"heartbeat","seq":3}') == Heartbeat(seq=3)
    assert MESSAGE_ADAPTER.validate_python(
        {"kind": "task_finished", "task_id": "t", "ok": False, "error": "E: x"}
    ) == TaskFinished(task_id="t", ok=False, error="E: x")
    termination = MESSAGE_ADAPTER.validate_python(
        {"kind": "termination_error", "phase": "bootstrap", "type": "E", "module": "m"}
    )
    assert isinstance(termination, RunnerTerminationError)
    assert termination.phase == "bootstrap"


def test_defaults_fill_optional_fields() -> None:
    """Messages are cheap to build: ``seq`` starts at 0 and ``kind`` is implied by the class."""
    ready = Ready(pid=42, python="3.11.9")
    assert (ready.kind, ready.seq, ready.target) == ("ready", 0, None)
    assert Progress(message="half").fraction is None
    assert FrameInfo(file="f.py", function="f").line is None


def test_chain_is_depth_first_cause_then_context_then_members() -> None:
    """`chain()` lists the exception first, then each link's subtree: cause, context, members."""
    root = _info(
        "Root",
        cause=_info("Cause", context=_info("CauseContext")),
        context=_info("Context"),
        exceptions=[_info("Member1", cause=_info("Member1Cause")), _info("Member2")],
    )
    assert [info.type for info in root.chain()] == [
        "Root",
        "Cause",
        "CauseContext",
        "Context",
        "Member1",
        "Member1Cause",
        "Member2",
    ]


def test_chain_of_a_lone_exception_is_itself() -> None:
    """An exception with no links has a chain of exactly one entry, itself."""
    info = _info("ValueError")
    assert info.chain() == [info]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param("boom", "ValueError: boom", id="with-message"),
        pytest.param("", "ValueError", id="without-message"),
    ],
)
def test_summary_is_the_last_traceback_line(message: str, expected: str) -> None:
    """`summary()` reads like Python's last traceback line, dropping the colon for no message."""
    assert _info("ValueError", message=message).summary() == expected
