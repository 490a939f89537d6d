"""torchrun's error-file timestamp is true: own-fault ranks give their first error's second, the
others the second they ended (the first error they saw was their peer's)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crashsight.report.model import Report
from crashsight.report.torchelastic import error_file_data

FIRST = datetime(2026, 11, 29, 12, 0, 0, 900_000, tzinfo=UTC)
ENDED = datetime(2026, 11, 29, 12, 0, 1, 200_000, tzinfo=UTC)


def report(role: str) -> Report:
    return Report.model_validate(
        {
            "name": "rank", "status": "failed", "category": "comm", "subcategory": "gloo",
            "summary": "comm/gloo: Connection closed by peer [127.0.0.1]:4000",
            "exit": {"code": 1, "description": "exited with code 1"}, "command": ["python"],
            "pid": 1, "started_at": FIRST, "duration_s": 1.0, "role": role,
            "first_error_at": FIRST, "ended_at": ENDED, "rank": 0,
            "blamed_peers": ["[127.0.0.1]:4000"],
        }
    )  # fmt: skip


@pytest.mark.parametrize(
    ("role", "timestamp"),
    [
        ("root_cause", int(FIRST.timestamp())),
        ("consequence", int(ENDED.timestamp())),
        ("collateral", int(ENDED.timestamp())),
    ],
)
def test_timestamp_follows_the_role(role: str, timestamp: int) -> None:
    """A consequence seen first in time still sorts after an own fault of the same second."""
    message = error_file_data(report(role))["message"]
    assert isinstance(message, dict)
    assert message["extraInfo"]["timestamp"] == str(timestamp)
    assert "peers named: [127.0.0.1]:4000" in message["extraInfo"]["py_callstack"]
