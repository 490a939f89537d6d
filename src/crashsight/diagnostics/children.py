"""Which child of the worker died, and how: the evidence behind a wrapper exception.

A worker whose pool, DataLoader, ``torch.multiprocessing`` process or ``subprocess`` command dies
raises a wrapper (``BrokenProcessPool``, ``CalledProcessError``...). The wrapper is a consequence;
the child's own evidence decides the verdict. This module gathers that evidence:

* `find_child` reads who died and how from the wrapper entries of the catalogue
  (``signatures/wrappers.py``, fields ``child_*``), in stderr or in the exception chain's messages,
  from the attributes the runner kept (``CalledProcessError.cmd``, ``ProcessException.error_pid``),
  and from a faulthandler dump on the inherited stderr that the worker itself did not die of (the
  supervisor sets ``PYTHONFAULTHANDLER=1`` for its runners, so every Python descendant dumps);
* `child_exceptions` parses the tracebacks that wrappers carry in their message
  (``ProcessRaisedException``, concurrent.futures' ``_RemoteTraceback``), so the child's own
  exception can be classified before the wrapper.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import signal
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from ..protocol import ExceptionInfo
from .catalogue import match_line
from .models import Diagnostic
from .signatures import wrappers
from .tracebacks import parse_traceback

__all__ = ["ChildProcess", "child_exceptions", "find_child", "signal_name_of"]

_FATAL = re.compile(r"Fatal Python error: (?P<words>[A-Z][\w ]*\w)")
_QUOTES = re.compile(r"^\s*(?:'''|\"\"\")\s*$")
#: `ExceptionInfo.attributes` (set by the runner's describe) and the child fields they give.
_ATTRIBUTE_FIELDS = {
    "error_pid": "child_pid",
    "returncode": "child_exit_code",
    "exit_code": "child_exit_code",
    "signal_name": "child_signal",
    "cmd": "child_cmd",
}
#: strsignal() words ("Segmentation fault") to names, as this platform's C library says them.
_WORDS = {signal.strsignal(s) or s.name: s.name for s in signal.Signals}


class ChildProcess(BaseModel):
    """What is known of the worker's child whose death the worker reported."""

    model_config = ConfigDict(extra="forbid")

    pid: int | None = None
    name: str | None = Field(default=None, description="e.g. 'toktx', 'DataLoader worker'.")
    cmdline: list[str] | None = None
    exit: str | None = Field(
        default=None, description="'killed by signal SIGSEGV (11)' or 'exited with code 3'."
    )
    signal: str | None = Field(default=None, description="Signal name, e.g. 'SIGSEGV'.")

    def label(self) -> str:
        """``toktx (pid 4242)``, ``process 1``, ``pid 4242``, or ``a child process``."""
        pid = f"pid {self.pid}" if self.pid is not None else ""
        if self.name and pid:
            return f"child {self.name} ({pid})"
        if self.name or pid:
            return f"child {self.name or pid}"
        return "a child process"

    def describe(self) -> str:
        """``toktx (pid 4242) killed by signal SIGSEGV (11): toktx --t2 out.ktx2 in.png``."""
        who = self.label().removeprefix("child ")
        exit_text = f" {self.exit}" if self.exit else ""
        command = f": {shlex.join(self.cmdline)}" if self.cmdline else ""
        return f"{who}{exit_text}{command}"


def signal_name_of(text: str) -> str | None:
    """``SIGSEGV``, ``Segmentation fault``, ``11`` or ``-11`` → ``'SIGSEGV'``; else None."""
    text = text.strip()
    if text.startswith("SIG") and text[3:].isalnum():
        return text
    if text.lstrip("-").isdigit():
        number = abs(int(text))
        try:
            return signal.Signals(number).name
        except ValueError:
            return f"SIG{number}"
    return _WORDS.get(text)


def find_child(
    chain: Sequence[ExceptionInfo], diagnostics: Iterable[Diagnostic], worker_signal: str | None
) -> ChildProcess | None:
    """Return the child whose death the worker reports, or None when nothing points to one.

    Args:
        chain: The termination error's chain; wrappers often never reach stderr.
        diagnostics: The collected diagnostics (wrapper texts and faulthandler dumps on stderr).
        worker_signal: The signal the worker itself died of: a faulthandler dump of that signal
            is the worker's own, not a child's.
    """
    fields: dict[str, str] = {}
    found = False
    diagnostics = list(diagnostics)
    for info in chain:
        named = {
            _ATTRIBUTE_FIELDS[k]: str(v)
            for k, v in info.attributes.items()
            if k in _ATTRIBUTE_FIELDS
        }
        if named.keys() & {"child_pid", "child_cmd"}:  # a lone exit_code may be anyone's
            found = True
            _merge(fields, named)
        for line in info.message.splitlines():
            for signature in wrappers.SIGNATURES:
                matched = match_line(signature, line)
                if matched is not None:
                    found = True
                    _merge(fields, matched)
    # stderr's wrapper texts after the chain's: the exception that ended the worker names the
    # child that mattered, where stderr may also hold an earlier, unrelated child's death.
    for diagnostic in diagnostics:
        if any(key.startswith("child_") for key in diagnostic.fields):
            found = True
            _merge(fields, diagnostic.fields)
    dumped = _dumped_signal(diagnostics, worker_signal)
    if not found and dumped is None:
        return None
    return _child(fields, dumped)


def child_exceptions(chain: Sequence[ExceptionInfo]) -> list[ExceptionInfo]:
    """The exceptions whose tracebacks wrappers carry as text in their messages, innermost cause.

    ``torch.multiprocessing``'s ``ProcessRaisedException`` and concurrent.futures'
    ``_RemoteTraceback`` put the child's formatted traceback in their message; parsed, the child's
    exception can be matched by rules like any other.
    """
    found: list[ExceptionInfo] = []
    for info in chain:
        if "Traceback (most recent call last):" not in info.message:
            continue
        lines = [line for line in info.message.splitlines() if not _QUOTES.match(line)]
        parsed = parse_traceback(lines)
        if parsed is not None:
            found.extend(parsed.chain())
    return found


def _merge(fields: dict[str, str], new: dict[str, str]) -> None:
    """Keep the first value of each field: the most authoritative source comes first."""
    for key, value in new.items():
        if key.startswith("child_"):
            fields.setdefault(key, value)


def _dumped_signal(diagnostics: Sequence[Diagnostic], worker_signal: str | None) -> str | None:
    """The signal of a faulthandler dump that is not the worker's own death, if any."""
    for diagnostic in diagnostics:
        if not diagnostic.id.startswith("faulthandler."):
            continue
        words = _FATAL.search(diagnostic.first_line)
        name = signal_name_of(words.group("words")) if words else None
        if name is not None and name != worker_signal:
            return name
    return None


def _child(fields: dict[str, str], dumped: str | None) -> ChildProcess:
    cmdline = _cmdline(fields["child_cmd"]) if "child_cmd" in fields else None
    name = fields.get("child_name") or (os.path.basename(cmdline[0]) if cmdline else None)
    code = fields.get("child_exit_code")
    named = fields.get("child_signal") or fields.get("child_signal_number")
    by_code = code if code is not None and code.startswith("-") else None
    sig = signal_name_of(named or by_code or "") or dumped
    exit_text = None
    if sig is not None:
        number = getattr(signal.Signals, sig, None) if sig.isalnum() else None
        exit_text = f"killed by signal {sig}" + (f" ({int(number)})" if number else "")
    elif code is not None:
        exit_text = f"exited with code {code}"
    pid = fields.get("child_pid")
    return ChildProcess(
        pid=int(pid) if pid else None, name=name, cmdline=cmdline, exit=exit_text, signal=sig
    )


def _cmdline(text: str) -> list[str] | None:
    """CalledProcessError's ``cmd``: a list's repr or a shell string."""
    try:
        value = ast.literal_eval(text) if text.startswith(("[", "(")) else shlex.split(text)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, list | tuple) and value:
        return [str(part) for part in value]
    return None
