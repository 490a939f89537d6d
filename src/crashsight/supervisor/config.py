"""What the supervisor needs to start and judge one runner: the configuration its attempts share.

Its own module so that the attempt (which runs the process) and the verdict (which judges it)
both read it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .cgroup import CgroupHost
from .guardian import Guardian
from .output import OutputSink
from .snapshot import StackOptions
from .stop import StopPolicy

if TYPE_CHECKING:
    from ..diagnostics.classify import Classifier
    from ..diagnostics.models import Signature
    from ..redact import Redactor
    from .forkserver import ForkServer

__all__ = ["RunnerConfig"]


@dataclass
class RunnerConfig:
    """Everything the supervisor needs to start and judge one runner; shared by its attempts."""

    runner_id: str
    name: str
    argv: list[str]
    env: Mapping[str, str] | None
    cwd: str | None
    stop_policy: StopPolicy
    deadline: float | None
    no_progress_timeout: float | None
    drain_timeout: float
    max_frame_bytes: int
    stdout: OutputSink
    stderr: OutputSink
    inherit_stdin: bool
    classifier: Classifier
    signatures: Sequence[Signature]
    user_events: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    guardian: Guardian | None = None
    #: Extra collector line sinks for the runner's stderr (the torchrun splitter, for one).
    stderr_sinks: Sequence[Callable[[str], None]] = ()
    #: How stacks are taken before a stop; None takes none.
    stacks: StackOptions | None = None
    #: Where this runner's cgroups go (or why it gets none); None: cgroups are off.
    cgroups: CgroupHost | None = None
    #: Fork the runner from this fork server with these bootstrap arguments, instead of ``argv``.
    fork: tuple[ForkServer, list[str]] | None = None
    #: Redacts the runner's status; None: one for its environment, made for each status.
    redactor: Redactor | None = None
