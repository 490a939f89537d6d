"""Counts in plain English for the one-line verdicts and notes: "1 process", "3 processes".

A report is read by an operator in a hurry; "killed 1 processes" reads as a bug in the tool.
"""

from __future__ import annotations

__all__ = ["counted"]


def counted(n: int, noun: str) -> str:
    """``n`` followed by ``noun``, made plural (``-es`` after an ``s``, else ``-s``) unless n is 1."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun}{'es' if noun.endswith('s') else 's'}"
