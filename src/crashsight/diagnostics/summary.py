"""One readable line out of whatever text an exception or a process left: the summary's source.

Exceptions do not always start with their point. Ray colours forwarded lines with ANSI escapes;
torch's ``ProcessRaisedException`` and ``ChildFailedError`` start their message with a newline and
a rule of ``=`` signs, so the line after ``Type:`` is empty. `summary_line` strips the escapes,
skips lines without a letter or digit, and joins a bare ``Type:`` with the first line that says
something, so a summary is never empty while any text has words.
"""

from __future__ import annotations

import re

__all__ = ["strip_ansi", "summary_line"]

# CSI sequences (colours, cursor moves) and the two-byte escapes (ESC followed by one character).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_BARE_TYPE = re.compile(r"^[A-Za-z_][\w.]*:$")


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (colours, bold, cursor movement)."""
    return _ANSI.sub("", text)


def summary_line(text: str) -> str:
    """The first line of ``text`` that has a letter or digit, with escapes stripped.

    ``"ProcessRaisedException: \\n\\n-- Process 0 terminated with the following error:"`` gives
    ``"ProcessRaisedException: -- Process 0 terminated with the following error:"``.

    Returns:
        The line, stripped of surrounding whitespace; empty only when ``text`` has no words.
    """
    lines = (line.strip() for line in strip_ansi(text).splitlines())
    meaningful = [line for line in lines if any(c.isalnum() for c in line)][:2]
    if not meaningful:
        return ""
    if _BARE_TYPE.match(meaningful[0]) and len(meaningful) > 1:
        return f"{meaningful[0]} {meaningful[1]}"
    return meaningful[0]
