"""The README's examples are run, so the first thing a new user copies works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

pytest_plugins = ["pytester"]


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _python_blocks(section: str) -> dict[str, str]:
    """Code blocks that start with a ``# filename.py`` comment, by file name."""
    blocks = re.findall(r"```python\n# (\S+\.py)\n(.*?)```", section, flags=re.S)
    return {name: body for name, body in blocks}


def test_testing_your_workers_example_passes(pytester: pytest.Pytester) -> None:
    """The "Testing your workers" example, written to files as a user would, passes as shown."""
    blocks = _python_blocks(_section("Testing your workers"))
    assert set(blocks) == {"myworker.py", "test_myworker.py"}
    for name, body in blocks.items():
        pytester.path.joinpath(name).write_text(body)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_demo_shows_every_verdict() -> None:
    """`crashsight demo` (the README's main job) ends with the right verdict for every worker."""
    result = subprocess.run(
        [sys.executable, "-m", "crashsight", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for verdict in (
        "gpu/timeout", "comm/ring_socket", "disk/enospc", "crash/segfault", "crash/killed",
        "http/server_error", "timeout/no_progress", "succeeded",
    ):  # fmt: skip
        assert verdict in result.stdout
    assert "7 of 8 workers failed" in result.stdout


def test_embedding_snippet_serves_a_jobs_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The five lines of "Embedding in a training server" give a working, token-guarded endpoint."""
    blocks = _python_blocks(_section("Embedding in a training server"))
    assert list(blocks) == ["training_server.py"]
    code = blocks["training_server.py"]
    assert len([line for line in code.splitlines() if line.strip()]) == 5
    for folder in ("jobs/reports", "jobs/logs"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "jobs/logs/7f3a.log").write_text(
        "[2025-12-10 03:58:22] [trainer] [ERROR] [EVAL] torch.OutOfMemoryError: CUDA out of "
        "memory. Tried to allocate 2.00 GiB.\n"
    )
    token = "readme-token-0123456789abcdef"
    monkeypatch.setenv("CRASHSIGHT_TOKEN", token)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(code, "training_server.py", "exec"), namespace)
    transport = httpx.ASGITransport(app=namespace["app"])  # type: ignore[arg-type]

    async def ask(headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
            return await client.get("/crashsight/jobs/7f3a/errors", headers=headers)

    assert anyio.run(ask, {}).status_code == 401
    response = anyio.run(ask, {"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["analysis"]["phase_kind"] == "evaluation"


def test_hang_example_says_where_it_is_stuck(tmp_path: Path) -> None:
    """The "Hangs" example, run as shown, prints the verdict shown (pids and seconds aside)."""
    section = _section("Hangs: every thread's stack at the stop")
    (tmp_path / "writer.py").write_text(_python_blocks(section)["writer.py"])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crashsight",
            "run",
            "--no-progress-timeout",
            "6",
            "--",
            sys.executable,
            "writer.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 124, result.stderr

    def verdict(text: str) -> str:
        found = re.search(r"^crashsight: timeout/.*$", text, flags=re.M)
        assert found is not None, text
        return re.sub(r"\d+ s;|pid \d+", "N", found.group())

    assert verdict(result.stderr) == verdict(section)
