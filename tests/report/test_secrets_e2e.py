"""Secrets never reach a report, end to end through ``crashsight run`` and every sink it writes.

For each shape of credential, a real worker prints the secret on its stderr and raises an exception
whose message contains it. The secret must appear nowhere in the JSON report, the HTML panel, the
Kubernetes termination log, the GitHub step summary and outputs, and the verdict block crashsight
prints on its stderr; the child's own stderr, which crashsight passes
through unchanged by design, still shows it (that is the control: the secret really was there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crashsight import Supervisor

WORKERS = Path(__file__).resolve().parent.parent / "verdict_workers.py"


def shape(case_id: str, template: str, secret: str, env_name: str | None = None) -> object:
    """A row: the text the worker leaks (``template`` with the secret at ``{}``) and the secret.

    With ``env_name``, the secret is also the value of that variable in crashsight's and the
    worker's environment.
    """
    env = {env_name: secret} if env_name else {}
    return pytest.param(template.format(secret), secret, env, id=case_id)


# fmt: off
SHAPES = [
    shape("url-userinfo", "cloning https://deploy:{}@git.example.com/org/repo.git", "Zx9vQw7TqP4mLk2"),
    # The summary keeps 300 characters of the error: here the password straddles that cut.
    shape("url-userinfo-at-summary-cut", "x" * 240 + " https://deploy:{}@git.example.com/org/repo.git", "Zx9vQw7TqP4mLk2"),
    shape("query-token", "401 Client Error: Unauthorized for url: https://api.example.com/v1/items?page=2&token={}", "t0kV4lue9QwErTy"),
    shape("query-access-token", "GET https://graph.example.com/me?access_token={}", "ya29.A0ARrdaMkq3lSecretX"),
    shape("query-key", "GET https://maps.example.com/api/geocode?key={}&q=paris", "AIzaSyD9tSrke72PouQMnMX"),
    shape("query-sig", "PUT https://acct.blob.core.windows.net/c/b.bin?sv=2022-11-02&sp=rw&sig={}", "Qm9vU2VjcmV0U2ln%3D"),
    shape("query-signature", "GET https://cdn.example.com/v.mp4?Expires=1715680000&signature={}", "dGhpc2lzYXNpZ25hdHVyZQ"),
    shape(
        "query-x-amz-signature",
        "403 Client Error: Forbidden for url: https://bucket.s3.amazonaws.com/k.tar?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={}",
        "4f1e8a9c0d2b7e6f5a4c3b2a1908f7e6d5c4b3a2",
    ),
    shape("authorization-bearer", "headers={{'Authorization': 'Bearer {}'}}", "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.abc123XYZ"),
    shape("authorization-basic", "request header Authorization: Basic {}", "ZGVwbG95Omh1bnRlcjI5OQ=="),
    shape("huggingface-token", "login failed for token {}", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"),
    shape("github-ghp", "push rejected for {}", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    shape("github-fine-grained-pat", "auth {}", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLM"),
    shape("aws-access-key-id", "aws_access_key_id={}", "AKIAZ7QX3M5N9P2R4T6V"),
    shape("env-my-api-token", "{}", "mT-7f3c9a1e5b42", env_name="MY_API_TOKEN"),
    shape("env-db-password", "{}", "correct-horse-battery-staple", env_name="DB_PASSWORD"),
]
# fmt: on


def _fragments(secret: str, size: int = 10) -> set[str]:
    """Every run of ``size`` characters of the secret: a cut secret leaks one of these."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def _verdict_block(stderr: str) -> tuple[str, str]:
    """Split crashsight's stderr into the child's pass-through and crashsight's verdict block.

    The block is the last line starting with ``crashsight:`` and the indented lines after it
    (evidence lines quote stderr, which is where a secret could slip through).
    """
    lines = stderr.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("crashsight:"))
    end = start + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    assert end == len(lines), "nothing follows the verdict block"
    return "\n".join(lines[:start]), "\n".join(lines[start:end])


@pytest.mark.parametrize(("leak", "secret", "env"), SHAPES)
def test_secret_reaches_neither_report_nor_verdict(
    tmp_path: Path, leak: str, secret: str, env: dict[str, str]
) -> None:
    """A secret in the worker's stderr and exception message is masked in the report and verdict.

    Not even ten characters of it survive, so a secret cut by a length limit counts as a leak.
    """
    sinks = {
        name: tmp_path / name
        for name in ("r.json", "panel.html", "termination-log", "step-summary.md", "outputs")
    }
    github = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(sinks["step-summary.md"]),
        "GITHUB_OUTPUT": str(sinks["outputs"]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--report", str(sinks["r.json"]),
         "--html", str(sinks["panel.html"]), "--termination-log", str(sinks["termination-log"]),
         "--", sys.executable, str(WORKERS), "leak"],
        env={**os.environ, **env, **github, "LEAK": leak},
        capture_output=True, text=True, timeout=50, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    passed_through, verdict = _verdict_block(result.stderr)
    assert secret in passed_through, "control: the child really printed the secret"
    written = {name: path.read_text() for name, path in sinks.items()}
    for name in ("r.json", "panel.html", "step-summary.md"):
        assert "upload failed after 3 attempts" in written[name], f"control: {name} quotes it"
    for name in ("r.json", "panel.html", "step-summary.md", "outputs"):
        assert "***" in written[name], f"control: {name} masked the secret, kept its line"
    assert "\nhint: " in written["termination-log"], "control: the verdict and hint were written"
    for fragment in _fragments(secret):
        assert fragment not in verdict
        for name, text in written.items():
            assert fragment not in text, name


@pytest.mark.asyncio
async def test_each_runner_is_redacted_for_its_own_environment() -> None:
    """One supervisor, two runners printing the same value: a secret in the environment of the
    first, plain text for the second. Each status is redacted for its own runner's secrets,
    also the second time round (the supervisor remembers redactions per set of secrets)."""
    value = "pl41n-or-s3cret-v4lue"
    printer = [sys.executable, "-c", f"import sys; print('value: {value}', file=sys.stderr)"]
    with_secret = {**os.environ, "MY_SERVICE_TOKEN": value}
    without = {k: v for k, v in os.environ.items() if v != value}
    async with Supervisor(output="discard") as supervisor:
        tails = []
        for env in (with_secret, without, with_secret, without):
            runner = await supervisor.spawn_command(printer, env=env)
            tails.append((await runner.wait()).stderr_tail)
    assert tails[0] == tails[2] == ["value: ***"]
    assert tails[1] == tails[3] == [f"value: {value}"]
