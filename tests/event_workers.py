"""Workers that emit user events of their own models, and those models, for the tests to expect.

The tests load this file by path as a runner target (``event_workers.py:emit_large_events``) and
import its models by name; it imports nothing from them.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from crashsight import runner

#: Text of 8 KiB in UTF-8: past `crashsight.runner.modeljson.LARGE`, and not ASCII.
BIG = "é" * 4096


class Shard(BaseModel):
    n: int
    text: str


class Bounds(BaseModel):
    """Writes infinities as JSON's ``Infinity``, where pydantic's default writes null."""

    model_config = ConfigDict(ser_json_inf_nan="constants")
    high: float
    text: str


#: What `emit_large_events` emits, in order.
LARGE_EVENTS: list[BaseModel] = [
    Shard(n=1, text=BIG),
    Shard(n=2**70, text=BIG),  # beyond 64 bits: orjson refuses it
    Shard(n=3, text=BIG),
    Shard(n=4, text="small"),
    Bounds(high=math.inf, text=BIG),
    Bounds(high=math.inf, text=BIG),
]


def emit_large_events() -> None:
    """Emits `LARGE_EVENTS`."""
    for event in LARGE_EVENTS:
        runner.emit(event)
