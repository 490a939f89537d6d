"""`crashsight run` in a job of many ranks: identity options, per-rank paths, torchrun's file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CRASHSIGHT = [sys.executable, "-m", "crashsight", "run"]
FAIL = ["--", sys.executable, "-c", "raise ValueError('bad batch')"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("RANK", "TORCHELASTIC_ERROR_FILE")}
    return subprocess.run(
        [*CRASHSIGHT, *args], capture_output=True, text=True, timeout=60, check=False,
        env={**clean, **(env or {})},
    )  # fmt: skip


def test_placeholders_give_each_rank_its_own_files(tmp_path: Path) -> None:
    """{rank}, {local_rank}, {host} and {pid} are filled in from the launcher's variables."""
    env = {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8"}
    result = run(
        "--report", f"{tmp_path}/r{{rank}}-{{local_rank}}-{{host}}.json",
        "--html", f"{tmp_path}/p{{rank}}-{{pid}}.html",
        "--termination-log", f"{tmp_path}/t{{rank}}.log", *FAIL, env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads((tmp_path / f"r5-1-{socket.gethostname()}.json").read_text())
    assert (report["rank"], report["local_rank"], report["world_size"]) == (5, 1, 8)
    assert report["role"] == "root_cause"
    assert report["first_error_at"] <= report["ended_at"]
    assert len(list(tmp_path.glob("p5-*.html"))) == 1
    assert (tmp_path / "t5.log").read_text().startswith("python/ValueError: ")
    assert f"  rank:      5 of 8 on {socket.gethostname()}, its own fault\n" in result.stderr


def test_explicit_rank_options_win_and_leave_the_workers_variables_alone(tmp_path: Path) -> None:
    """--rank/--world-size name the rank in the report without setting RANK for the worker."""
    show = "import os; print(os.environ.get('RANK', 'unset')); raise SystemExit(2)"
    result = run(
        "--rank", "2", "--world-size", "4", "--report", f"{tmp_path}/rank{{rank}}.json",
        "--", sys.executable, "-c", show,
    )  # fmt: skip
    assert result.stdout.strip() == "unset"
    report = json.loads((tmp_path / "rank2.json").read_text())
    assert (report["rank"], report["world_size"]) == (2, 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--report", "r/{rnk}.json"], "unknown placeholder {rnk}", id="unknown"),
        pytest.param(["--report", "r/{rank}.json"], "{rank} is not known here", id="no-rank"),
        pytest.param(["--html", "r/{rank.html"], "expected '}'", id="unbalanced"),
        pytest.param(["--report", "r/{rank:03d}.json", "--rank", "1"], "no format spec", id="spec"),
        pytest.param(["--rank", "4", "--world-size", "4"], "is not below --world-size", id="size"),
        pytest.param(["--world-size", "4"], "need --rank", id="size-alone"),
    ],
)
def test_bad_rank_options_are_a_clear_error(args: list[str], message: str) -> None:
    """A bad placeholder or rank fails before anything starts, with exit status 2."""
    result = run(*args, "--", "true")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_torchrun_error_file_gets_the_verdict_once(tmp_path: Path) -> None:
    """With TORCHELASTIC_ERROR_FILE set, the verdict lands there in torchrun's format."""
    error_file = tmp_path / "error.json"
    result = run(*FAIL, env={"TORCHELASTIC_ERROR_FILE": str(error_file), "RANK": "1"})
    assert result.returncode == 1
    message = json.loads(error_file.read_text())["message"]
    assert message["message"] == "python/ValueError: bad batch [its own fault]"
    callstack = message["extraInfo"]["py_callstack"]
    assert callstack.startswith("crashsight: python/ValueError: bad batch [its own fault]\n")
    assert "Traceback (most recent call last):" in callstack
    assert callstack.rstrip().endswith("ValueError: bad batch")
    assert message["extraInfo"]["timestamp"].isdigit()


def test_torchrun_error_file_of_the_worker_is_never_replaced(tmp_path: Path) -> None:
    """A file the worker wrote itself (torch's @record) stays exactly as it was."""
    error_file = tmp_path / "error.json"
    own = '{"message": {"message": "ValueError: mine", "extraInfo": {"timestamp": "1"}}}'
    script = f"open({str(error_file)!r}, 'w').write({own!r}); raise SystemExit(1)"
    result = run(
        "--", sys.executable, "-c", script, env={"TORCHELASTIC_ERROR_FILE": str(error_file)}
    )
    assert result.returncode == 1
    assert error_file.read_text() == own


@pytest.mark.parametrize(
    ("printed", "role", "verdict"),
    [
        pytest.param("", "collateral", None, id="nothing-of-its-own"),
        pytest.param(
            "RuntimeError: Connection closed by peer [10.0.0.7]:4100",
            "consequence",
            "comm",
            id="after-a-comm-error",
        ),
    ],
)
def test_a_launchers_sigterm_makes_the_rank_collateral_or_a_consequence(
    tmp_path: Path, printed: str, role: str, verdict: str | None
) -> None:
    """torchrun stops the survivors by signalling crashsight: the report says what they were."""
    script = (
        f"import sys, time; print({printed!r}, file=sys.stderr, flush=True); "
        "print('ready', flush=True); time.sleep(60)"
    )
    clean = {k: v for k, v in os.environ.items() if k != "TORCHELASTIC_ERROR_FILE"}
    with subprocess.Popen(
        [*CRASHSIGHT, "--report", f"{tmp_path}/r.json", "--", sys.executable, "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**clean, "RANK": "1", "WORLD_SIZE": "2"},
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
            proc.terminate()
            assert proc.wait(timeout=60) == 143
        finally:
            proc.kill()
            proc.wait()
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["status"], report["role"], report["category"]) == ("cancelled", role, verdict)
    if verdict:
        assert report["blamed_peers"] == ["[10.0.0.7]:4100"]
        assert report["summary"].startswith("comm/gloo: RuntimeError: Connection closed by peer")
        assert report["first_error_at"] < report["ended_at"]
