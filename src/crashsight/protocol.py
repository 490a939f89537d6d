"""The wire models: everything a runner sends to its supervisor.

The supervisor decodes with this module, and a worker imports it once it emits crashsight's own
models (its heartbeats, progress and tasks are written without it, see `crashsight.runner.api`),
so it depends on the standard library and pydantic only. The stream from a runner is a sequence
of `Message` values, one per frame (see `crashsight.framing`). Every model forbids unknown fields
and carries a ``kind`` tag, so a frame from a newer or foreign writer fails loudly instead of
being half-understood.

Each message carries ``seq``: the writer numbers messages 0, 1, 2, ... and the supervisor checks the
numbering, which is how it proves that nothing between two messages was lost. A new `Ready` (a new
writer process on the same channel) starts a new numbering.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from .version import PROTOCOL_VERSION

__all__ = [
    "MESSAGE_ADAPTER",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "Event",
    "ExceptionInfo",
    "FrameInfo",
    "Heartbeat",
    "Message",
    "Progress",
    "Ready",
    "RunnerTerminationError",
    "TaskFinished",
    "TaskStarted",
    "UserEvent",
]


class WireModel(BaseModel):
    """Base of every model that crosses the process boundary: strict about unknown fields.

    Schemas are built on first use (``defer_build``), not at import: a worker that imports this
    module uses only the models it sends, and building all of them (and the union adapter) up
    front cost about 18 ms of its start-up (``python -X importtime``, see
    ``benchmarks/bench_spawn.py``).
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)


class _Message(WireModel):
    seq: int = Field(
        default=0, ge=0, description="Position of this message in its writer's stream."
    )


class Ready(_Message):
    """First message of every writer: who is speaking and which protocol it speaks."""

    kind: Literal["ready"] = "ready"
    pid: int
    python: str
    protocol: int = PROTOCOL_VERSION
    target: str | None = None


class Heartbeat(_Message):
    """Proof of life with no other content; resets the supervisor's no-progress watchdog."""

    kind: Literal["heartbeat"] = "heartbeat"


class Progress(_Message):
    """A human-readable progress note, with an optional completed fraction in [0, 1]."""

    kind: Literal["progress"] = "progress"
    message: str
    fraction: float | None = Field(default=None, ge=0.0, le=1.0)


class TaskStarted(_Message):
    """The runner began a unit of work; if it dies before `TaskFinished`, the task gets an ErrorChunk."""

    kind: Literal["task_started"] = "task_started"
    task_id: str


class TaskFinished(_Message):
    """The runner finished a unit of work, successfully or with a one-line error summary."""

    kind: Literal["task_finished"] = "task_finished"
    task_id: str
    ok: bool
    error: str | None = None


class UserEvent(_Message):
    """An event of the user's own: a name and JSON data.

    The runner cannot be assumed to share the supervisor's Python classes (it may be another virtual
    environment, or not Python at all), so user events travel as named JSON. A supervisor given
    ``user_events=[MyModel, ...]`` validates ``data`` into the model whose name matches.
    """

    kind: Literal["user"] = "user"
    name: str
    data: JsonValue = None


class FrameInfo(WireModel):
    """One stack frame, innermost last, as Python's traceback module shows it."""

    file: str
    line: int | None = None
    function: str
    code: str | None = None


class ExceptionInfo(WireModel):
    """A description of one exception that survives the process that raised it."""

    type: str = Field(description="Qualified class name, e.g. 'JSONDecodeError'.")
    module: str = Field(description="Module that defines the class, e.g. 'json.decoder'.")
    mro_names: list[str] = Field(
        default_factory=list, description="Qualified names of the classes in the MRO, self first."
    )
    message: str = ""
    repr: str = ""
    errno: int | None = None
    errno_name: str | None = None
    frames: list[FrameInfo] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    cause: ExceptionInfo | None = Field(
        default=None, description="Explicit __cause__ (raise from)."
    )
    context: ExceptionInfo | None = Field(
        default=None, description="Implicit __context__, unless suppressed by 'raise ... from'."
    )
    exceptions: list[ExceptionInfo] = Field(
        default_factory=list, description="Members of an exception group."
    )
    attributes: dict[str, str | int] = Field(
        default_factory=dict,
        description="Attributes that describe a child process that died: CalledProcessError's "
        "returncode, cmd and captured stderr (its end), torch ProcessException's error_pid, "
        "exit_code and signal_name.",
    )

    def chain(self) -> list[ExceptionInfo]:
        """Return this exception and every exception reachable from it, outermost first."""
        seen: list[ExceptionInfo] = []
        stack: list[ExceptionInfo] = [self]
        while stack:
            info = stack.pop()
            seen.append(info)
            linked = [info.cause, info.context, *info.exceptions]
            stack.extend(reversed([e for e in linked if e is not None]))
        return seen

    def summary(self) -> str:
        """Return ``Type: message`` the way Python's last traceback line shows it."""
        return f"{self.type}: {self.message}" if self.message else self.type


class RunnerTerminationError(ExceptionInfo):
    """Sent by the bootstrap when the target (or loading it) raised, just before the runner exits."""

    kind: Literal["termination_error"] = "termination_error"
    seq: int = Field(default=0, ge=0)
    phase: Literal["bootstrap", "target"] = Field(
        description="'bootstrap': importing or starting the target; 'target': the target itself."
    )


Event = Ready | Heartbeat | Progress | TaskStarted | TaskFinished | UserEvent
Message = Annotated[
    Event | RunnerTerminationError,
    Field(discriminator="kind"),
]

#: The classes of `Message`, for isinstance checks.
MESSAGE_TYPES = (
    Ready,
    Heartbeat,
    Progress,
    TaskStarted,
    TaskFinished,
    UserEvent,
    RunnerTerminationError,
)

#: Validates one frame's JSON payload into a `Message`. Built on first use, like the models: only
#: the supervisor validates frames, and a worker should not pay for it.
MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message, config=ConfigDict(defer_build=True))
