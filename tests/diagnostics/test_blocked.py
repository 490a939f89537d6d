"""Where a hang is blocked: the user-code rule, the stuck thread, and the odd rank of a job."""

from __future__ import annotations

import pytest

from crashsight.diagnostics.blocked import odd_one_out
from crashsight.diagnostics.hangs import BlockedIn


def _at(function: str, line: int) -> BlockedIn:
    return BlockedIn(file="train.py", line=line, function=function, pid=1, thread_id=1)


@pytest.mark.parametrize(
    ("blocked", "odd"),
    [
        pytest.param({"a": _at("f", 1), "b": _at("f", 1), "c": _at("g", 2)}, "c", id="one-apart"),
        pytest.param({"a": _at("f", 1), "b": _at("f", 1), "c": None}, "c", id="no-stacks"),
        pytest.param({"a": _at("f", 1), "b": _at("f", 1)}, None, id="all-together"),
        pytest.param({"a": _at("f", 1), "b": _at("g", 2)}, None, id="two-apart"),
        pytest.param(
            {"a": _at("f", 1), "b": _at("g", 2), "c": _at("h", 3)}, None, id="no-consensus"
        ),
    ],
)
def test_odd_one_out_needs_a_consensus(
    blocked: dict[str, BlockedIn | None], odd: str | None
) -> None:
    """Only one runner apart from a place at least two others share is called the odd one."""
    assert odd_one_out(blocked) == odd
