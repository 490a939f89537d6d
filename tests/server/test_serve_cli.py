"""``crashsight serve``: the endpoint standalone, as an operator starts it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from crashsight.server import JobList

from .conftest import TOKEN, TOKEN_ENV

CRASHSIGHT = [sys.executable, "-m", "crashsight"]


def test_serve_answers_on_loopback_and_stops_on_ctrl_c(folders: tuple[Path, Path]) -> None:
    """It prints where it listens (port 0: any free one), serves the jobs, and exits 130 on SIGINT."""
    reports, logs = folders
    (reports / "r1.running").write_text("")
    env = {**os.environ, TOKEN_ENV: TOKEN}
    command = [*CRASHSIGHT, "serve", "--reports", str(reports), "--logs", str(logs),
               "--port", "0", "--token-env", TOKEN_ENV]  # fmt: skip
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) as server:
        assert server.stderr is not None
        line = server.stderr.readline()  # printed once the socket listens
        found = re.search(r"http://127\.0\.0\.1:\d+/crashsight/jobs", line)
        assert found, line
        try:
            with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
                response = client.get(found.group())
            assert response.status_code == 200
            assert JobList.model_validate_json(response.content).jobs[0].status == "running"
        finally:
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=20) == 130
            server.stderr.read()


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        pytest.param([], {}, "CRASHSIGHT_TOKEN is not set", id="no-token"),
        pytest.param(["--unauthenticated", "--host", "0.0.0.0"], {}, "would show every job",
                     id="open-to-the-network"),
        pytest.param(["--prefix", "crashsight"], {"CRASHSIGHT_TOKEN": TOKEN}, "must start with '/'",
                     id="bad-prefix"),
    ],
)  # fmt: skip
def test_bad_options_exit_2(
    folders: tuple[Path, Path], extra: list[str], env: dict[str, str], message: str
) -> None:
    """Options that would serve insecurely or not at all stop it before it listens."""
    clean = {k: v for k, v in os.environ.items() if k != "CRASHSIGHT_TOKEN"}
    result = subprocess.run(
        [*CRASHSIGHT, "serve", "--reports", str(folders[0]), *extra],
        capture_output=True, text=True, timeout=60, check=False, env={**clean, **env},
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr


def test_without_the_extra_it_says_what_to_install(folders: tuple[Path, Path]) -> None:
    """The core CLI works without starlette; ``serve`` then names the extra and exits 2."""
    code = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "from crashsight.cli.main import main\n"
        f"main(['serve', '--reports', {str(folders[0])!r}])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "crashsight serve needs the server extra: pip install 'crashsight[server]'"
    )
