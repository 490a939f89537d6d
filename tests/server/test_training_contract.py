"""The training-server contract, served by `training_app` at /api/training in a real FastAPI app.

Every answer is validated against a JSON Schema written by hand from the UI's interface (not
generated from crashsight's models), so a change to crashsight's models cannot quietly change it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI

from crashsight.server import training_app

from ..diagnostics.test_phases import training_server_log
from .conftest import TOKEN, TOKEN_ENV, serving

NULLABLE_STRING = {"type": ["string", "null"]}
CONTRACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["job_id", "status", "error_summary", "errors", "traceback", "analysis"],
    "properties": {
        "job_id": {"type": "string"},
        "status": {"enum": ["failed", "cancelled", "completed", "running"]},
        "error_summary": NULLABLE_STRING,
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["timestamp", "level", "phase", "message", "dedupe_key", "count"],
                "additionalProperties": False,
                "properties": {
                    "timestamp": NULLABLE_STRING,
                    "level": {"enum": ["error", "warning"]},
                    "phase": NULLABLE_STRING,
                    "message": {"type": "string"},
                    "dedupe_key": {"type": "string", "minLength": 1},
                    "count": {"type": "integer", "minimum": 1},
                },
            },
        },
        "traceback": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["raw", "frames", "exception_type", "exception_message"],
                    "additionalProperties": False,
                    "properties": {
                        "raw": {"type": "string"},
                        "frames": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["file", "line", "function", "code"],
                                "additionalProperties": False,
                                "properties": {
                                    "file": {"type": "string"},
                                    "line": {"type": ["integer", "null"]},
                                    "function": {"type": "string"},
                                    "code": NULLABLE_STRING,
                                },
                            },
                        },
                        "exception_type": {"type": "string"},
                        "exception_message": {"type": "string"},
                    },
                },
            ]
        },
        "analysis": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": [
                        "error_type",
                        "error_phase",
                        "description",
                        "confidence",
                        "suggestions",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "error_type": {
                            "enum": [
                                "oom_eval",
                                "oom_training",
                                "timeout",
                                "cuda_error",
                                "config_error",
                                "unknown",
                            ]
                        },
                        "error_phase": {
                            "enum": ["evaluation", "training", "monitoring", "initialization", None]
                        },
                        "description": {"type": "string"},
                        "confidence": {"enum": ["high", "medium", "low"]},
                        "suggestions": {"type": "array", "items": {"type": "string"}},
                    },
                },
            ]
        },
        # crashsight's richer answer: one namespaced key, never in place of a contract field.
        "crashsight": {"type": "object"},
    },
    "additionalProperties": False,
}


@pytest.fixture
def api(
    folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[httpx.Client, Path, Path]]:
    """A FastAPI app with `training_app` mounted at /api/training, and a client with the token."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    reports, logs = folders
    app = FastAPI()
    app.mount("/api/training", training_app(reports, logs, token_env=TOKEN_ENV))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        serving(app) as url,
        httpx.Client(base_url=url + "/api/training", headers=headers, timeout=30) as client,
    ):
        yield client, reports, logs


def contract(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/{job_id}/errors")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    jsonschema.validate(body, CONTRACT_SCHEMA)
    for error in body["errors"]:
        if error["timestamp"] is not None:
            datetime.fromisoformat(error["timestamp"])  # ISO 8601
    return body


def crashsight_run(*argv: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    return subprocess.Popen(
        [sys.executable, "-m", "crashsight", "run", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        **kwargs,
    )


def test_failed_job_reads_out_of_memory_during_evaluation(
    api: tuple[httpx.Client, Path, Path],
) -> None:
    """The issue's log through the contract: oom_eval in evaluation, the template errors as one
    deduplicated row, and the traceback as Python printed it."""
    client, _, logs = api
    (logs / "7f3a.log").write_text(training_server_log())
    body = contract(client, "7f3a")
    assert body["status"] == "failed"
    assert body["analysis"]["error_type"] == "oom_eval"
    assert body["analysis"]["error_phase"] == "evaluation"
    assert body["analysis"]["confidence"] == "high"
    assert "gpu/oom during evaluation" in body["error_summary"]
    template, main = body["errors"]
    assert (template["count"], template["level"], template["phase"]) == (
        47,
        "error",
        "initialization",
    )
    assert template["timestamp"] == "2025-12-10T03:58:01"
    assert (main["phase"], main["count"]) == ("evaluation", 1)
    traceback = body["traceback"]
    assert traceback["exception_type"] == "RuntimeError"
    assert "The above exception was the direct cause" in traceback["raw"]
    assert "torch.OutOfMemoryError: CUDA out of memory" in traceback["raw"]
    assert body["crashsight"]["analysis"]["phase_kind"] == "evaluation"


def test_dedupe_keys_are_stable_across_calls_and_restarts(
    folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two server processes' worth of apps give every error the same key; distinct errors differ."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    reports, logs = folders
    (logs / "job1.log").write_text(training_server_log())
    keys = []
    for _ in range(2):
        app = FastAPI()
        app.mount("/api/training", training_app(reports, logs, token_env=TOKEN_ENV))
        with serving(app) as url:
            answer = httpx.get(
                f"{url}/api/training/job1/errors",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            ).json()
        keys.append([error["dedupe_key"] for error in answer["errors"]])
    assert keys[0] == keys[1]
    assert len(set(keys[0])) == len(keys[0]) == 2


def test_running_completed_and_cancelled_jobs(
    api: tuple[httpx.Client, Path, Path], tmp_path: Path
) -> None:
    """A marker is running; a succeeded report is completed; a report of a run stopped by
    SIGTERM is cancelled. None of them has an error summary but the cancelled one."""
    client, reports, _ = api
    (reports / "live.running").touch()
    with crashsight_run(
        "--report", str(reports / "done.json"), "--", sys.executable, "-c", ""
    ) as done:
        assert done.wait(timeout=120) == 0
    stopped = crashsight_run(
        "--report",
        str(reports / "stopped.json"),
        "--",
        sys.executable,
        "-c",
        "import time; print('up', flush=True); time.sleep(600)",
    )
    assert stopped.stdout is not None
    assert stopped.stdout.readline() == b"up\n"  # the worker runs: stop it now
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(timeout=120) == 143
    stopped.stdout.close()
    running, completed, cancelled = (contract(client, j) for j in ("live", "done", "stopped"))
    assert (running["status"], running["error_summary"], running["analysis"]) == (
        "running",
        None,
        None,
    )
    assert (completed["status"], completed["errors"], completed["error_summary"]) == (
        "completed",
        [],
        None,
    )
    assert cancelled["status"] == "cancelled"
    assert cancelled["error_summary"].startswith("cancelled")


def test_missing_and_malformed_logs_and_refusals(api: tuple[httpx.Client, Path, Path]) -> None:
    """The contract's route keeps the endpoint's refusals: 404 unknown, 422 binary log, 400 a
    job id that could name a path, 401 without the token."""
    client, _, logs = api
    (logs / "bin.log").write_bytes(bytes(range(256)) * 100)
    assert client.get("/nope/errors").status_code == 404
    malformed = client.get("/bin/errors")
    assert malformed.status_code == 422
    assert malformed.json()["error"] == "unprocessable"
    assert client.get("/..%2Fsecret/errors").status_code in (400, 404)
    assert client.get("/bad$id/errors").status_code == 400
    unauthenticated = httpx.get(str(client.base_url) + "/7f3a/errors", timeout=30)
    assert unauthenticated.status_code == 401
