"""Versions every layer needs: the wire protocol's and the installed package's.

Kept below every other module, with the standard library only, because the runner announces the
protocol version before it has loaded pydantic, and reports, analyses and the server all stamp
the package version on what they write.
"""

from __future__ import annotations

__all__ = ["PROTOCOL_VERSION", "crashsight_version"]

#: Bumped whenever a change to the wire models would make an older supervisor misread a newer
#: runner.
PROTOCOL_VERSION = 1


def crashsight_version() -> str:
    """The installed crashsight version, for reports read by other versions."""
    # Imported here: importlib.metadata costs a worker's start-up, and only writers need it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crashsight")
    except PackageNotFoundError:
        return "unknown"
