"""Under real torchrun, each rank's crashsight writes its verdict into torchrun's error file, so
torchrun's "Root Cause (first observed failure)" shows crashsight's verdict, never over a file
the worker's own ``@record`` wrote."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs torch: pip install 'crashsight[torch]' (torch==2.13.0)")
#: A torch job can take minutes on a loaded machine: more than the suite's 60 s per test.
pytestmark = [pytest.mark.torch, pytest.mark.timeout(300)]

WORKER = Path(__file__).resolve().parent / "gloo_texts_worker.py"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_torchruns_root_cause_shows_crashsights_verdict(tmp_path: Path) -> None:
    """Three ranks under torchrun, each in crashsight run; rank 1 segfaults (no error file of its
    own), rank 2 runs under @record (torch writes its file), rank 0 does not."""
    reports = tmp_path / "r"
    reports.mkdir()
    env = {**os.environ, "PG_TIMEOUT": "20", "VICTIM": "1", "RECORD_RANKS": "2",
           "PYTHONWARNINGS": "ignore", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    result = subprocess.run(
        [str(BIN / "torchrun"), "--nproc-per-node", "3", "--master-port", str(free_port()),
         "--log-dir", str(tmp_path / "logs"), "--no-python", str(BIN / "crashsight"), "run",
         "--report", f"{reports}/rank{{rank}}.json", "--", sys.executable, str(WORKER),
         "segfault"],
        capture_output=True, text=True, timeout=180, check=False, env=env, cwd=tmp_path,
        start_new_session=True,
    )  # fmt: skip
    assert result.returncode != 0, result.stderr[-2000:]
    found = re.search(r"Root Cause \(first observed failure\):\n(.*?)\n={10,}", result.stderr, re.S)
    assert found, result.stderr[-3000:]
    block = found.group(1)
    assert re.search(r"rank\s*: 1 \(local_rank: 1\)", block), block
    assert "error_file: <N/A>" not in block
    assert "crashsight: crash/segfault: " in block
    assert "[its own fault]" in block
    reports_by_rank = {
        r["rank"]: r for p in reports.glob("rank*.json") for r in [json.loads(p.read_text())]
    }
    assert reports_by_rank[1]["role"] == "root_cause"
    # rank 2's own @record file is kept: torch's message, not crashsight's verdict.
    own = [json.loads(p.read_text()) for p in (tmp_path / "logs").glob("*/attempt_0/2/error.json")]
    assert len(own) == 1, list((tmp_path / "logs").rglob("*"))
    message = own[0]["message"]
    assert message["message"].startswith("RuntimeError: "), message
    assert "crashsight" not in message["extraInfo"]["py_callstack"]
