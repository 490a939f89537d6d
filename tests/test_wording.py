"""Counts in the verdicts read as English: one process, two processes."""

from __future__ import annotations

import pytest

from crashsight.wording import counted


@pytest.mark.parametrize(
    ("n", "noun", "text"),
    [
        (1, "process", "1 process"),
        (2, "process", "2 processes"),
        (0, "thread", "0 threads"),
        (1, "fork", "1 fork"),
        (3, "leftover process", "3 leftover processes"),
    ],
)
def test_counted(n: int, noun: str, text: str) -> None:
    assert counted(n, noun) == text
