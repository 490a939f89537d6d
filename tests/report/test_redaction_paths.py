"""Secrets in the places a report takes text from: argv, context, shard files, key=value pairs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crashsight.redact import Redactor


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param("password=plainpw42 ok", "plainpw42", id="key-equals"),
        pytest.param("db_password: 'abcd1234'", "abcd1234", id="quoted-key-colon"),
        pytest.param("X-Api-Key: XAPIKEYVALUE123", "XAPIKEYVALUE123", id="api-key-header"),
        pytest.param('{"api_key": "abcdefgh"}', "abcdefgh", id="json"),
        pytest.param("python train.py --password argvpw77 --epochs 3", "argvpw77", id="flag"),
        pytest.param("use sk-proj-abcdefghijklmnopqrstuvwx now", "abcdefghijklmnop", id="sk-key"),
    ],
)
def test_credentials_named_by_their_key_are_masked(text: str, secret: str) -> None:
    """A value whose key, header or flag names a credential is masked; the key stays."""
    assert secret not in Redactor({}).text(text)


@pytest.mark.parametrize(
    "text", ["max_new_tokens: 512", "tokenizer: gpt2", "invalid token provided", "the secret sauce"]
)
def test_ordinary_words_near_key_names_are_kept(text: str) -> None:
    """Words that merely contain or follow a key name are not mistaken for credentials."""
    assert Redactor({}).text(text) == text


def test_long_lines_without_spaces_are_redacted_whole() -> None:
    """A megabyte line with no spaces (base64, a minified blob) is processed, secrets and all."""
    blob = "A" * 500_000 + "=https://user:hunter22@host/" + "_" * 500_000
    out = Redactor({}).text(blob)
    assert "hunter22" not in out
    assert len(out) == len(blob) - len("user:hunter22") + len("***")


def test_argv_and_context_are_redacted_in_the_report(tmp_path: Path) -> None:
    """The value after --password in argv and a context value keyed like a secret never appear."""
    report = tmp_path / "r.json"
    subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--report", str(report),
         "--context", "api_token=CTXVALUE66", "--",
         sys.executable, "-c", "raise SystemExit(1)", "--password", "argvpw77"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    text = report.read_text()
    assert "argvpw77" not in text
    assert "CTXVALUE66" not in text
    assert json.loads(text)["command"][-2:] == ["--password", "***"]


def test_aggregate_redacts_every_output_format(tmp_path: Path) -> None:
    """Secrets in shard reports are masked in the markdown, JSON and HTML of `aggregate`."""
    token = "hf_" + "a" * 30
    shard = tmp_path / "shard.json"
    shard.write_text(
        json.dumps(
            {
                "name": f"fetch {token}",
                "status": "failed",
                "category": "http",
                "summary": f"http/client_error: 401 for https://u:pw12345@h/?token={token}",
                "context": {"shard": 3, "source": f"https://h/x?access_token={token}"},
            }
        )
    )
    for extra in ([], ["--format", "json"], ["--html", str(tmp_path / "a.html")]):
        result = subprocess.run(
            [sys.executable, "-m", "crashsight", "aggregate", str(shard), *extra],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        outputs = result.stdout + (Path(extra[1]).read_text() if "--html" in extra else "")
        assert token not in outputs
        assert "pw12345" not in outputs
