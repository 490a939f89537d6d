"""Writing reports so that a reader never sees half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ConfigurationError
from .model import Report

__all__ = ["check_report_path", "write_report", "write_text_atomically"]


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
    """Write ``report`` as JSON atomically (see `write_text_atomically`)."""
    return write_text_atomically(report.model_dump_json(indent=2) + "\n", path)


def write_text_atomically(text: str, path: str | os.PathLike[str]) -> Path:
    """Write to a temporary file beside ``path``, fsync, then rename it over ``path``.

    A reader (a CI step, a dashboard polling the file) sees the old file or the whole new one,
    never half of it, even if crashsight is killed while writing.
    """
    target = Path(path)
    data = text.encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, _new_file_mode(target))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _new_file_mode(target: Path) -> int:
    """The mode an ordinary ``open()`` would give: the existing file's, else 0o666 less the umask.

    ``mkstemp`` creates files as 0o600, which would make reports unreadable to the CI user or
    dashboard that collects them. The umask is read from /proc (Linux) rather than set and reset
    with ``os.umask``, which would race with other threads creating files.
    """
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        pass
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644
