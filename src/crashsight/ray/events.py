"""What a supervised Ray call sends to the driver while it runs: the runner's events, labelled."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, SerializeAsAny

__all__ = ["RayEvent"]


class RayEvent(BaseModel):
    """One event of a supervised call's runner, with the Ray task it belongs to.

    Calls of many tasks share one event sink (a Ray queue), so each event says whose it is.
    ``event`` is what `Runner.events` yields: `Progress`, `TaskStarted`, `TaskFinished`, user
    events, the `RunnerTerminationError`, `ErrorChunk`s, then the final status of each attempt.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["ray_event"] = "ray_event"
    name: str
    ray_task_id: str | None = None
    worker_pid: int
    event: SerializeAsAny[BaseModel]
