"""torchrun's error file: crashsight's verdict where torchrun looks for a rank's root cause.

torchrun (torch.distributed.elastic) gives every worker a ``TORCHELASTIC_ERROR_FILE`` path. A
worker decorated with ``@record`` writes its exception there; torchrun reads the files of the
failed ranks, takes the smallest ``timestamp`` as the "Root Cause (first observed failure)" and
prints its ``py_callstack``, or ``error_file: <N/A>`` and a bare exit code when there is none.
The format, from torch/distributed/elastic/multiprocessing/errors/error_handler.py
(``ErrorHandler.record_exception``) and ``ProcessFailure._get_error_data`` in the same package::

    {"message": {"message": "ValueError: ...",
                 "extraInfo": {"py_callstack": "Traceback ...", "timestamp": "1764441600"}}}

`crashsight run` writes its verdict there when the worker wrote nothing itself: the message is
``category/subcategory: summary`` with the role, and ``py_callstack`` starts with crashsight's
verdict, then the traceback. The timestamp (whole seconds, as torchrun reads it) is true either
way: for a rank that failed of its own fault, its first failure evidence; for a consequence or
collateral failure, when the rank ended, since the first error it saw was its peer's. torchrun's
pick is still torchrun's own (whole seconds, ties unordered); `crashsight aggregate` of the ranks'
reports decides with microseconds and roles.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .model import Report
from .terminal import ROLE_WORDS
from .traceback_text import python_traceback

__all__ = ["ERROR_FILE_ENV", "error_file_data", "write_error_file"]

ERROR_FILE_ENV = "TORCHELASTIC_ERROR_FILE"

#: Frames and stderr lines put in the callstack; torchrun prints all of it in its summary.
_MAX_FRAMES = 30
_MAX_TAIL = 20


def error_file_data(report: Report) -> dict[str, object]:
    """The error-file document torchrun reads, for a report that is not a success."""
    label = report.summary
    role = f" [{ROLE_WORDS[report.role]}]" if report.role else ""
    lines = [f"crashsight: {label}{role}"]
    if report.rank is not None:
        host = f" on {report.host}" if report.host else ""
        lines.append(f"  rank:      {report.rank}{host}")
    if report.first_error_at is not None:
        lines.append(f"  first error at {report.first_error_at.isoformat()}")
    if report.blamed_peers:
        lines.append(f"  peers named: {', '.join(report.blamed_peers)}")
    if report.hint:
        lines.append(f"  hint:      {report.hint}")
    if report.termination_error is not None:
        lines += python_traceback(report.termination_error, _MAX_FRAMES)
    elif report.stderr_tail:
        lines += ["stderr tail:", *report.stderr_tail[-_MAX_TAIL:]]
    return {
        "message": {
            "message": f"{label}{role}",
            "extraInfo": {
                "py_callstack": "\n".join(lines) + "\n",
                "timestamp": str(_timestamp(report)),
            },
        }
    }


def _timestamp(report: Report) -> int:
    ended = report.ended_at.timestamp() if report.ended_at else report.started_at.timestamp()
    if report.role in ("consequence", "collateral"):
        return math.floor(ended)
    first = report.first_error_at.timestamp() if report.first_error_at else ended
    return math.floor(first)


def write_error_file(report: Report, path: str | os.PathLike[str]) -> bool:
    """Write the verdict to torchrun's error file unless the worker already wrote one.

    The file is created exclusively, so a file the worker's ``@record`` wrote is never replaced,
    even by a race.

    Returns:
        True when crashsight wrote it, False when a file was already there.

    Raises:
        OSError: the file could not be created or written.
    """
    data = json.dumps(error_file_data(report)).encode()
    try:
        fd = os.open(Path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True
