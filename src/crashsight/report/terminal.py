"""The short verdict block `crashsight run` prints on its stderr when a runner fails.

Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org): CI logs and files
get plain text that greps cleanly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

from ..protocol import FrameInfo
from .model import Report
from .stacks_text import blocked_rows

__all__ = ["ROLE_WORDS", "render_verdict", "wants_colour"]

_BOLD_RED, _BOLD, _DIM, _RESET = "\x1b[1;31m", "\x1b[1m", "\x1b[2m", "\x1b[0m"

_MAX_DIAGNOSTICS = 5
_MAX_TASKS = 10


def wants_colour(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Whether to colour output for ``stream``: a terminal, and ``NO_COLOR`` unset."""
    env = os.environ if env is None else env
    return stream.isatty() and not env.get("NO_COLOR")


#: How a role reads in a sentence, here and in torchrun's error file.
ROLE_WORDS = {
    "root_cause": "its own fault",
    "consequence": "a consequence of a peer's failure",
    "collateral": "collateral: stopped by a signal it did not cause",
}


def _rank_line(report: Report) -> str:
    """``2 of 4 on node-a, a consequence of a peer's failure (peers named: [10.0.0.5]:4100)``."""
    line = f"{report.rank}" + (f" of {report.world_size}" if report.world_size else "")
    line += f" on {report.host}" if report.host else ""
    line += f", {ROLE_WORDS[report.role]}" if report.role else ""
    if report.blamed_peers:
        line += f" (peers named: {', '.join(report.blamed_peers[:3])})"
    return line


def render_verdict(report: Report, report_path: str | None = None, *, colour: bool = False) -> str:
    """Render a failed or cancelled report as a few plain lines an operator can read at a glance.

    Example::

        crashsight: gpu/oom: CUDA out of memory. Tried to allocate 2.00 GiB
          exit:      exited with code 1
          child:     toktx (pid 4242) killed by signal SIGSEGV (11): toktx in.png  (a child's death)
          evidence:  cuda.oom x3  torch.OutOfMemoryError: CUDA out of memory. ...
          hint:      lower the batch size ...
          failed in: train.py:42 in step
          report:    r.json
    """
    rows = [("exit", report.exit.description)]
    if report.in_child is not None:
        rows.append(("child", report.in_child.describe()[:200]))
    if report.rank is not None:
        rows.append(("rank", _rank_line(report)))
    if report.signals_sent:
        rows.append(("sent", f"{', '.join(report.signals_sent)} (by crashsight)"))
    for diagnostic in report.diagnostics[:_MAX_DIAGNOSTICS]:
        first = diagnostic.first_line.strip()[:160]
        rows.append(("evidence", f"{diagnostic.id} x{diagnostic.count}  {first}"))
    if report.hint:
        rows.append(("hint", report.hint))
    error = report.termination_error
    if error is not None and error.frames:
        frame = _own_frame(error.frames)
        rows.append(("failed in", f"{frame.file}:{frame.line} in {frame.function}"))
    rows += blocked_rows(report.blocked_in, report.stacks, report.process_tree)
    if report.tasks.in_flight:
        rows.append(("in flight", ", ".join(report.tasks.in_flight[:_MAX_TASKS])))
    rows += [("task", f"{t.task_id}: {t.error}") for t in report.tasks.failed[:_MAX_TASKS]]
    rows += [("note", note) for note in report.notes]
    if report_path:
        rows.append(("report", report_path))
    head = f"crashsight: {report.summary}"
    if not colour:
        return "\n".join([head, *(f"  {label + ':':<10} {value}" for label, value in rows)])
    verdict, _, rest = report.summary.partition(": ")
    lines = [f"{_DIM}crashsight:{_RESET} {_BOLD_RED}{verdict}{_RESET}: {_BOLD}{rest}{_RESET}"]
    lines += [f"  {_DIM}{label + ':':<10}{_RESET} {value}" for label, value in rows]
    return "\n".join(lines)


def _own_frame(frames: list[FrameInfo]) -> FrameInfo:
    """The innermost frame of the user's own code, not of an installed library or Python itself.

    ``httpx/_models.py in raise_for_status`` is where an error was raised, but the line an operator
    wants is the caller's: the worker's own code that made the request.
    """
    for frame in reversed(frames):
        path = frame.file.replace("\\", "/")
        if not any(part in path for part in _LIBRARY_PATHS) and not path.startswith("<frozen"):
            return frame
    return frames[-1]


#: Path fragments of installed packages and of the standard library.
_LIBRARY_PATHS = ("/site-packages/", "/dist-packages/", f"/lib/python{sys.version_info[0]}.")
