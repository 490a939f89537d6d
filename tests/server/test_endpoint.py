"""The error endpoint mounted in a real FastAPI app, called over HTTP through a real uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from crashsight.diagnostics.analysis import analyze_file
from crashsight.diagnostics.analysis_model import AnalyzeResult
from crashsight.server import JobErrors, JobList

from .conftest import TOKEN, TOKEN_ENV, Site

WORKER = """
import sys
print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a "
      "total capacity of 79.15 GiB of which 1.23 GiB is free.", file=sys.stderr, flush=True)
print("retrying with token {token}", file=sys.stderr, flush=True)

def load(path):
    open(path)

try:
    load("/nonexistent/shard-7.tar")
except OSError as error:
    raise RuntimeError("cannot fetch shard 7") from error
"""

EVAL_OOM = """\
[2025-12-10 04:10:00] [trainer] [INFO] [EVAL] Running evaluation
[2025-12-10 04:10:02] [trainer] [ERROR] [EVAL] evaluation failed
Traceback (most recent call last):
  File "/app/eval.py", line 40, in evaluate
    logits = model(batch)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.95 GiB. GPU 0 has a total \
capacity of 14.57 GiB of which 1.58 GiB is free.
"""


def training_log(errors: int = 47, steps_between: int = 1) -> str:
    """A training log: steps, ``errors`` PreTokenize errors of one template, then an eval OOM."""
    lines = []
    for i in range(errors):
        lines += [
            f"[2025-12-10 03:58:{i % 60:02d}] [trainer] [INFO] [SFT] step {i * steps_between + j}"
            for j in range(steps_between)
        ]
        lines.append(
            f"[2025-12-10 03:59:{i % 60:02d}] [__main__] [ERROR] [PreTokenize] Failed to "
            f"tokenize /data/shard_{i:05d}.jsonl at line {i * 31}"
        )
    return "\n".join(lines) + "\n" + EVAL_OOM


def crashsight_run(report: Path, *command: str) -> None:
    """``python -m crashsight run --report REPORT -- COMMAND`` without the server's token."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--report", str(report), "--", *command],
        capture_output=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert report.is_file()


def errors(client: httpx.Client, job_id: str) -> JobErrors:
    response = client.get(f"/jobs/{job_id}/errors")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return JobErrors.model_validate_json(response.content)


def test_failed_job_with_report(site: Site, client: httpx.Client, tmp_path: Path) -> None:
    """A real `crashsight run` report: verdict, counted diagnostics, chained error, redaction."""
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(token=TOKEN))
    crashsight_run(site.reports / "7f3a.json", sys.executable, str(worker))
    response = client.get("/jobs/7f3a/errors")
    answer = errors(client, "7f3a")
    assert (answer.status, answer.source) == ("failed", "report")
    assert answer.summary.startswith("gpu/oom")
    [row] = answer.errors
    assert (row.kind, row.signatures, row.count) == ("diagnostic", ["cuda.oom"], 1)
    assert row.message.startswith("torch.OutOfMemoryError: CUDA out of memory")
    error = answer.termination_error
    assert error is not None
    assert (error.type, error.message) == ("RuntimeError", "cannot fetch shard 7")
    assert error.frames[-1].file == str(worker)
    assert error.cause is not None
    assert error.cause.frames[-1].function == "load"
    assert [(link.relation, link.type) for link in answer.chain] == [
        ("raised", "RuntimeError"),
        ("cause", "FileNotFoundError"),
    ]
    assert answer.analysis is not None
    assert (answer.analysis.category, answer.analysis.subcategory) == ("gpu", "oom")
    assert "CUDA caching allocator" in answer.analysis.description
    assert answer.analysis.confidence is None
    assert answer.analysis.suggestions
    assert TOKEN not in response.text, "the server's own secrets are redacted from reports"


def test_failed_job_with_only_a_log(site: Site, client: httpx.Client) -> None:
    """Without a report the log is analysed: 47 deduplicated rows, gpu/oom in the eval phase."""
    (site.logs / "run-47.log").write_text(training_log() + f"token in a log: {TOKEN}\n")
    response = client.get("/jobs/run-47/errors")
    answer = JobErrors.model_validate_json(response.content)
    assert (answer.status, answer.source) == ("failed", "log")
    rows = {row.phase: row for row in answer.errors}
    assert rows["PreTokenize"].count == 47
    assert rows["PreTokenize"].template == "Failed to tokenize <path> at line <n>"
    analysis = answer.analysis
    assert analysis is not None
    assert (analysis.category, analysis.subcategory) == ("gpu", "oom")
    assert (analysis.phase, analysis.phase_kind) == ("EVAL", "evaluation")
    assert analysis.confidence == pytest.approx(0.9)
    assert any("eval_batch_size" in s for s in analysis.suggestions)
    assert answer.termination_error is not None
    assert answer.termination_error.frames[-1].function == "evaluate"
    assert [link.type for link in answer.chain] == ["OutOfMemoryError"]
    assert "gpu/oom during evaluation (phase 'EVAL')" in answer.summary
    assert TOKEN not in response.text
    assert str(site.logs) not in response.text, "no server path leaks"


@pytest.mark.parametrize(
    ("files", "status", "source"),
    [
        pytest.param({"r1.running": "", "r1.log": training_log(3)}, "running", "marker", id="running"),
        pytest.param({"r1.log": "[2025-12-10 03:58:00] [t] [INFO] [SFT] step 1\n"}, "clean", "log", id="clean-log"),
        pytest.param({"r1.log": ""}, "clean", "log", id="empty-log"),
    ],
)  # fmt: skip
def test_jobs_without_errors_answer_an_empty_list(
    site: Site, client: httpx.Client, files: dict[str, str], status: str, source: str
) -> None:
    """A running job (marker, whatever its log says so far) or a clean log lists no errors."""
    for name, text in files.items():
        folder = site.logs if name.endswith(".log") else site.reports
        (folder / name).write_text(text)
    answer = errors(client, "r1")
    assert (answer.status, answer.source, answer.errors) == (status, source, [])


def test_succeeded_job_and_the_job_list(site: Site, client: httpx.Client) -> None:
    """A succeeded run lists no errors; /jobs lists every job's verdict, newest first."""
    crashsight_run(site.reports / "ok.json", sys.executable, "-c", "pass")
    answer = errors(client, "ok")
    assert (answer.status, answer.errors, answer.analysis) == ("succeeded", [], None)
    (site.logs / "old.log").write_text(training_log(2))
    os.utime(site.logs / "old.log", (1_000_000_000, 1_000_000_000))
    (site.reports / "new.running").write_text("")
    response = client.get("/jobs")
    assert response.status_code == 200
    listed = JobList.model_validate_json(response.content)
    assert [(j.job_id, j.status, j.category) for j in listed.jobs] == [
        ("new", "running", None),
        ("ok", "succeeded", None),
        ("old", "failed", "gpu"),
    ]


def test_unknown_job_is_404(client: httpx.Client) -> None:
    """A valid id with no file at all is a 404 that names the job."""
    response = client.get("/jobs/nope/errors")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "no job 'nope': no report, running marker or log",
        "job_id": "nope",
    }


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        pytest.param({}, 'Bearer realm="crashsight"', id="missing"),
        pytest.param({"Authorization": "Bearer not-the-token-0123456789"},
                     'Bearer realm="crashsight", error="invalid_token"', id="wrong"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, 'Bearer realm="crashsight"', id="basic"),
        pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}"},
                     'Bearer realm="crashsight", error="invalid_token"', id="prefix"),
    ],
)  # fmt: skip
def test_requests_without_the_token_are_401(
    site: Site, headers: dict[str, str], challenge: str
) -> None:
    """Every route answers 401 with a Bearer challenge unless the exact token is sent."""
    (site.logs / "7f3a.log").write_text(training_log(1))
    with httpx.Client(base_url=site.url, headers=headers, timeout=30) as anonymous:
        for path in ("/jobs", "/jobs/7f3a", "/jobs/7f3a/errors", "/jobs/nope/errors"):
            response = anonymous.get(path)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == challenge
            assert response.json()["error"] == "unauthorized"
            assert "Failed to tokenize" not in response.text


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        pytest.param("..%2F..%2Fetc%2Fpasswd/errors", 404, "not_found", id="encoded-slash"),
        pytest.param("%2e%2e/errors", 400, "invalid_job_id", id="encoded-dots"),
        pytest.param("%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404, "not_found", id="encoded-dots-slash"),
        pytest.param("....//errors", 404, "not_found", id="dots-double-slash"),
        pytest.param("....", 400, "invalid_job_id", id="dots-page"),
        pytest.param("%2Fetc%2Fpasswd/errors", 404, "not_found", id="absolute-encoded"),
        pytest.param("/etc/passwd/errors", 404, "not_found", id="absolute"),
        pytest.param("x%00y/errors", 400, "invalid_job_id", id="nul"),
        pytest.param("..%5C..%5Cetc%5Cpasswd/errors", 400, "invalid_job_id", id="backslash"),
        pytest.param(".hidden/errors", 400, "invalid_job_id", id="dotfile"),
        pytest.param("a" * 129 + "/errors", 400, "invalid_job_id", id="too-long"),
        pytest.param("leak/errors", 403, "outside_folder", id="report-symlink-out"),
        pytest.param("leaklog/errors", 403, "outside_folder", id="log-symlink-out"),
        pytest.param("leak", 403, "outside_folder", id="page-symlink-out"),
    ],
)
def test_no_request_reads_outside_the_folders(
    site: Site, client: httpx.Client, tmp_path: Path, path: str, status: int, error: str
) -> None:
    """Traversal, encoded separators, NUL and symlinks out are refused with a JSON error body."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = "SECRET-OUTSIDE-THE-FOLDERS"
    crashsight_run(outside / "r.json", sys.executable, "-c", f"raise SystemExit({secret!r})")
    (outside / "l.log").write_text(f"[2025-12-10 03:58:00] [t] [ERROR] [SFT] {secret}\n")
    (site.reports / "leak.json").symlink_to(outside / "r.json")
    (site.logs / "leaklog.log").symlink_to(outside / "l.log")
    response = client.get(f"/jobs/{path}")
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert secret not in response.text
    assert "root:" not in response.text
    assert response.headers["content-type"] == "application/json"


def test_unusable_files_are_clear_json_errors(
    site: Site, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A binary log or a non-report is 422; a file the server cannot read is 500."""
    (site.logs / "bin.log").write_bytes(bytes(range(256)) * 64)
    (site.reports / "bad.json").write_text('{"status": "failed"}')
    response = client.get("/jobs/bin/errors")
    assert response.status_code == 422
    assert response.json() == {
        "error": "unprocessable",
        "detail": "bin.log: not a text log (binary data); nothing to analyse",
        "job_id": "bin",
    }
    response = client.get("/jobs/bad/errors")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("bad.json is not a crashsight report: ")
    # Tests run as root, which chmod cannot lock out; the read fails as a full disk's would.
    (site.reports / "eio.json").write_text("{}")
    real = Path.read_bytes

    def failing(path: Path) -> bytes:
        if path.name == "eio.json":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", failing)
    response = client.get("/jobs/eio/errors")
    assert response.status_code == 500
    assert response.json()["error"] == "unreadable"
    assert response.json()["detail"] == "cannot read eio.json: Permission denied"
    listed = JobList.model_validate_json(client.get("/jobs").content)
    assert {j.job_id: j.status for j in listed.jobs} == {
        "bin": "unreadable",
        "bad": "unreadable",
        "eio": "unreadable",
    }


def test_html_panel_route(site: Site, client: httpx.Client) -> None:
    """``GET /jobs/{id}`` is the `--html` panel, with a policy that lets it load nothing else."""
    (site.logs / "run-47.log").write_text(training_log())
    response = client.get("/jobs/run-47")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert '<span class="verdict failed" id="verdict">gpu/oom</span>' in response.text
    assert "crashsight analyze: run-47.log" in response.text


@pytest.fixture
def analyses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the logs the server analyses, in order, through the real analyzer."""
    calls: list[str] = []

    def counting(path: str | os.PathLike[str], **options: Any) -> AnalyzeResult:
        calls.append(Path(path).name)
        return analyze_file(path, **options)

    monkeypatch.setattr("crashsight.server.jobs.analyze_file", counting)
    return calls


def test_a_large_log_is_analysed_once_until_it_changes(
    site: Site, client: httpx.Client, analyses: list[str]
) -> None:
    """Repeated calls on an unchanged log reuse the analysis; a changed log is analysed again."""
    log = site.logs / "big.log"
    log.write_text(training_log(errors=3000, steps_between=20))
    assert log.stat().st_size > 3 << 20
    first = errors(client, "big")
    assert errors(client, "big") == first
    assert client.get("/jobs").status_code == 200
    assert client.get("/jobs/big").status_code == 200
    assert analyses == ["big.log"]
    with log.open("a") as handle:
        handle.write("[2025-12-10 04:20:00] [trainer] [ERROR] [SAVE] No space left on device\n")
    changed = errors(client, "big")
    assert analyses == ["big.log", "big.log"]
    assert len(changed.errors) == len(first.errors) + 1


def test_analysis_runs_off_the_event_loop(
    site: Site, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one log is being analysed, other requests are answered; concurrent callers share it."""
    (site.logs / "slow.log").write_text(training_log(3))
    (site.reports / "r1.running").write_text("")
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(path: str | os.PathLike[str], **options: Any) -> AnalyzeResult:
        calls.append(Path(path).name)
        started.set()
        assert release.wait(timeout=20)
        return analyze_file(path, **options)

    monkeypatch.setattr("crashsight.server.jobs.analyze_file", slow)
    with ThreadPoolExecutor(max_workers=3) as pool:
        waiting = [pool.submit(errors, client, "slow") for _ in range(3)]
        assert started.wait(timeout=20)
        assert errors(client, "r1").status == "running"  # served while the analysis runs
        release.set()
        answers = [future.result(timeout=20) for future in waiting]
    assert calls == ["slow.log"]
    assert all(answer == answers[0] and answer.status == "failed" for answer in answers)
