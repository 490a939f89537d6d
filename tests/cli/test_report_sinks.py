"""Where `crashsight run` puts its verdict: Kubernetes termination log, context, schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from crashsight.report.kubernetes import termination_message
from crashsight.report.model import Report


def _crashsight(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crashsight", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_termination_log_carries_verdict_and_hint(tmp_path: Path) -> None:
    """`--termination-log` gets `category/subcategory: summary` and the hint, for the cluster."""
    log = tmp_path / "termination-log"
    code = "open('/dev/full', 'w').write('x' * 65536)"
    result = _crashsight("run", "--termination-log", str(log), "--", sys.executable, "-c", code)
    assert result.returncode == 1
    message = log.read_text()
    assert message.startswith("disk/enospc: ")
    assert "No space left on device" in message.splitlines()[0]
    assert message.splitlines()[1].startswith("hint: ")


def test_termination_message_fits_kubernetes_limit(tmp_path: Path) -> None:
    """A huge summary is cut to Kubernetes' 4096-byte limit at a character boundary."""
    report = tmp_path / "r.json"
    _crashsight("run", "--report", str(report), "--", sys.executable, "-c", "raise SystemExit(3)")
    data = json.loads(report.read_text())
    data["summary"] = "é" * 5000
    message = termination_message(Report.model_validate(data))
    assert len(message.encode()) <= 4096
    assert message.endswith("...\n")


def test_context_is_logged_attached_and_redacted(tmp_path: Path) -> None:
    """`--context` lands in the report and on stderr at start, with secrets masked in both."""
    report = tmp_path / "r.json"
    url = "https://user:hunter2@mirror.example/ambientcg/2k.zip?token=abc123secret"
    result = _crashsight(
        "run", "--report", str(report), "--context", f"source={url}", "--context", "shard=7",
        "--", sys.executable, "-c", "pass",
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stderr.startswith("crashsight: context source=https://***@mirror.example/")
    context = json.loads(report.read_text())["context"]
    assert context["shard"] == "7"
    assert "hunter2" not in context["source"]
    assert "abc123secret" not in context["source"]


def test_schema_is_the_report_contract() -> None:
    """`crashsight schema` prints a JSON Schema that names the contract fields."""
    result = _crashsight("schema")
    schema = json.loads(result.stdout)
    for field in ("status", "category", "subcategory", "summary", "exit", "termination_error",
                  "diagnostics", "stderr_tail", "tasks", "command", "pid", "started_at",
                  "duration_s", "peak_rss_bytes"):  # fmt: skip
        assert field in schema["properties"], field
