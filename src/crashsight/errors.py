"""Every exception crashsight raises, in one place.

The tree::

    CrashsightError                  base of everything below
    ├── ProtocolError                a frame on the private channel could not be decoded
    ├── ChannelError                 the runner side could not send an event
    │   ├── ChannelClosedError       ...because this process closed the channel itself
    │   ├── ChannelBrokenError       ...because the supervisor end went away
    │   └── FrameTooLargeError       ...because the event is larger than the frame limit
    ├── SpawnError                   a runner could not be started at all
    ├── RunnerStateError             a runner handle was used in a state that does not allow it
    └── ConfigurationError           bad user configuration (options, rules files, paths)
        └── RulesError               a rules file is malformed; names file, rule index and problem

Following trio, "you closed it" (`ChannelClosedError`) is kept apart from "something outside broke it"
(`ChannelBrokenError`): the first is a bug in the caller, the second a fact about the world.
"""

from __future__ import annotations

__all__ = [
    "ChannelBrokenError",
    "ChannelClosedError",
    "ChannelError",
    "ConfigurationError",
    "CrashsightError",
    "FrameTooLargeError",
    "ProtocolError",
    "RulesError",
    "RunnerStateError",
    "SpawnError",
]


class CrashsightError(Exception):
    """Base class of every error crashsight raises on purpose."""


class ProtocolError(CrashsightError):
    """Returned as a value (never raised) by the frame decoder for bytes that are not a valid frame.

    The supervisor never lets it escape: it becomes a protocol diagnostic on the runner's report.
    When a frame failed validation, the pydantic ``ValidationError`` is the ``__cause__``.
    """

    def __init__(self, problem: str, detail: str, *, offset: int) -> None:
        super().__init__(f"{problem} at channel offset {offset}: {detail}")
        #: A short machine-readable tag: ``garbage``, ``oversize``, ``invalid`` or ``truncated``.
        self.problem = problem
        self.detail = detail
        self.offset = offset


class ChannelError(CrashsightError):
    """Raised by the runner-side API when an event cannot be delivered to the supervisor."""


class ChannelClosedError(ChannelError):
    """Raised when code in the runner uses the channel after closing it itself."""


class ChannelBrokenError(ChannelError):
    """Raised when the supervisor's end of the channel is gone (it died or closed it)."""


class FrameTooLargeError(ChannelError):
    """Raised by ``emit`` when an event encodes to more than the channel's maximum frame size.

    Nothing was sent; shrink the event or raise the limit (``Supervisor(max_frame_bytes=...)``).
    """


class SpawnError(CrashsightError):
    """Raised by the supervisor when the operating system refuses to start a runner.

    When the OS refused, the cause is the original ``OSError`` (command not found, not executable,
    bad working directory); an empty command has no cause.
    """


class RunnerStateError(CrashsightError):
    """Raised when a runner handle is used in a state that does not allow the call."""


class ConfigurationError(CrashsightError):
    """Raised before any runner starts when options, paths or files given by the user are unusable."""


class RulesError(ConfigurationError):
    """Raised by the rules loader for a malformed rules file, naming the file, rule index and problem."""
