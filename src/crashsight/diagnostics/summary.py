"""One readable line out of whatever text an exception or a process left: the summary's source.

Exceptions do not always start with their point. Ray colours forwarded lines with ANSI escapes;
torch's ``ProcessRaisedException`` and ``ChildFailedError`` start their message with a newline and
a rule of ``=`` signs, so the line after ``Type:`` is empty. `summary_line` strips the escapes,
skips lines without a letter or digit, and joins a bare ``Type:`` with the first line that says
something, so a summary is never empty while any text has words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .models import MessageAt

__all__ = ["message_line", "strip_ansi", "summary_line"]

# CSI sequences (colours, cursor moves) and the two-byte escapes (ESC followed by one character).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_BARE_TYPE = re.compile(r"^[A-Za-z_][\w.]*:$")
# "Error: x", "TypeError [ERR_INVALID_ARG_TYPE]: x", "java.io.IOException: x" at a line's start.
_ERROR_LINE = re.compile(r"^[\w.$]*(?:Error|Exception)(?: \[\w+\])?: \S")
_MAX_LOOK = 200  # lines searched around the matched one


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


def message_line(line: str, message_at: MessageAt, lines: Sequence[str]) -> str:
    """The line with the failure's own words, given the matched ``line`` and the stderr ``lines``.

    Args:
        line: The line a catalogue entry matched.
        message_at: Where that entry says the words are (`Signature.message_at`).
        lines: The stderr lines around it (the collected tail); the last occurrence of ``line``
            is the one looked around.

    Returns:
        That line, or ``line`` itself when it is not in ``lines`` or nothing fits.
    """
    if message_at == "line" or line not in lines:
        return line
    index = len(lines) - 1 - list(reversed(lines)).index(line)
    if message_at == "next_line":
        following = [text for text in lines[index + 1 : index + 4] if summary_line(text)]
        return following[0] if following else line
    for text in reversed(lines[max(0, index - _MAX_LOOK) : index]):
        if _ERROR_LINE.match(strip_ansi(text)):
            return text
    return line
