"""Opt-in restarts of failed runners, with exponential backoff and a user predicate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .status import RunnerFailed

__all__ = ["RestartPolicy"]


def _always(_: RunnerFailed) -> bool:
    return True


@dataclass(frozen=True)
class RestartPolicy:
    """When and how often a failed runner is started again.

    Only `RunnerFailed` attempts are retried: a runner that succeeded or was cancelled is done.

    Args:
        max_restarts: Attempts after the first; 0 disables restarts.
        backoff: Seconds before the first restart.
        factor: Multiplier applied to the delay after each restart.
        max_backoff: Upper bound of the delay.
        retry_if: Decides from the failed status whether to retry, e.g.
            ``lambda s: s.category in {"http", "comm"}`` to retry only transient classes.
    """

    max_restarts: int = 0
    backoff: float = 1.0
    factor: float = 2.0
    max_backoff: float = 60.0
    retry_if: Callable[[RunnerFailed], bool] = _always

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.backoff < 0 or self.factor < 1 or self.max_backoff < 0:
            raise ValueError(
                "RestartPolicy needs max_restarts >= 0, backoff >= 0, factor >= 1, max_backoff >= 0"
            )

    def delay_before(self, restart: int) -> float:
        """Seconds to wait before restart number ``restart`` (1-based)."""
        return min(self.max_backoff, self.backoff * self.factor ** (restart - 1))

    def should_restart(self, status: RunnerFailed, restarts_done: int) -> bool:
        """Whether the attempt that ended in ``status`` gets another one."""
        return restarts_done < self.max_restarts and self.retry_if(status)
