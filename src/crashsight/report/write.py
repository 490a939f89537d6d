"""Writing reports so that a reader never sees half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ConfigurationError
from .model import Report

__all__ = ["check_report_path", "write_report"]


def check_report_path(path: str | os.PathLike[str]) -> Path:
    """Fail before any runner starts if the report could not be written later.

    Raises:
        ConfigurationError: The directory is missing or not writable, or the path is a directory.
    """
    target = Path(path)
    parent = target.parent
    if target.is_dir():
        raise ConfigurationError(f"report path {str(target)!r} is a directory; name a file")
    if not parent.is_dir():
        raise ConfigurationError(
            f"cannot write the report to {str(target)!r}: directory {str(parent)!r} does not exist"
        )
    if not os.access(parent, os.W_OK):
        raise ConfigurationError(
            f"cannot write the report to {str(target)!r}: directory {str(parent)!r} is not writable"
        )
    return target


def write_report(report: Report, path: str | os.PathLike[str]) -> Path:
    """Write ``report`` as JSON atomically: temporary file, fsync, rename over ``path``."""
    target = Path(path)
    data = report.model_dump_json(indent=2).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
